"""do(kernel_size = k) and other conv-hyperparameter interventions: layer selection, surgery, paired factories."""

from ._intervene import KernelIntervention, describe_intervention, intervene
from ._levels import Dilation, Intervention, KernelSize, Stride
from ._select import Each, Select, conv_layers, each, find_stem
from ._surgery import check_init

__all__ = [
    "Dilation",
    "Each",
    "Intervention",
    "KernelIntervention",
    "KernelSize",
    "Select",
    "Stride",
    "check_init",
    "conv_layers",
    "describe_intervention",
    "each",
    "find_stem",
    "intervene",
]
