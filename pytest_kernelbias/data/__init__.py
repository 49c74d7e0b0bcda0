"""Subgroup datasets: SynthFaces, real face-dataset loaders, in-memory sets and splits."""

from __future__ import annotations

from .._lazy import lazy_api

# Each name this part offers and the module that defines it; loaded on first use (_lazy.py).
_HOMES = {
    **dict.fromkeys(["load_celeba", "load_csv_manifest", "load_fairface", "load_utkface"], "._faces"),
    **dict.fromkeys(["from_tensors", "from_torch_dataset"], "._in_memory"),
    **dict.fromkeys(["balance", "stratified_split"], "._splits"),
    **dict.fromkeys(["check_group_sizes", "SubgroupDataset"], "._subgroups"),
    **dict.fromkeys(["CONFIGS", "NULL", "PLANTED", "synthfaces", "SynthFacesConfig"], "._synthfaces"),
}
__getattr__, __dir__ = lazy_api(__name__, _HOMES)
__all__ = sorted(_HOMES)
