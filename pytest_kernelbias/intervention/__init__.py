"""do(kernel_size = k), the other conv hyperparameters and how a layer downsamples (anti-aliasing, the pooling
kind): layer selection, surgery, paired factories."""

from __future__ import annotations

from .._lazy import lazy_api

# Each name this part offers and the module that defines it; loaded on first use (_lazy.py).
_HOMES = {
    **dict.fromkeys(["aliases", "describe_intervention", "intervene", "KernelIntervention",
                     "model_source"], "._intervene"),
    **dict.fromkeys(["Cell", "Contrast", "design_of", "Factor", "Factorial", "FactorialDesign", "factorial"],
                    "._factorial"),
    **dict.fromkeys(["is_cond_conv"], "._kinds"),
    **dict.fromkeys(["AntiAliased", "BlurPool", "binomial_filter", "is_pool", "POOLING_KINDS"], "._downsample"),
    **dict.fromkeys(["AntiAlias", "AsBuilt", "as_intervention", "check_levels", "Dilation", "HYPERPARAMETERS",
                     "Intervention", "KernelSize", "layer_seed", "Level", "level_label", "Pooling", "SETTINGS",
                     "Stride"], "._levels"),
    **dict.fromkeys(["conv_layers", "Each", "each", "find_stem", "Select"], "._select"),
    **dict.fromkeys(["check_init"], "._surgery"),
}
__getattr__, __dir__ = lazy_api(__name__, _HOMES)
__all__ = sorted(_HOMES)
