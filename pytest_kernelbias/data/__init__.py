"""Subgroup datasets: SynthFaces, real face-dataset loaders, in-memory sets and splits."""

from ._faces import load_celeba, load_csv_manifest, load_fairface, load_utkface
from ._in_memory import from_tensors, from_torch_dataset
from ._splits import balance, stratified_split
from ._subgroups import SubgroupDataset
from ._synthfaces import NULL, PLANTED, SynthFacesConfig, synthfaces

__all__ = ["NULL", "PLANTED", "SubgroupDataset", "SynthFacesConfig", "balance", "from_tensors", "from_torch_dataset",
           "load_celeba", "load_csv_manifest", "load_fairface", "load_utkface", "stratified_split", "synthfaces"]
