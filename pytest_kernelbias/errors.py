"""Errors raised for bad audit input. Each message says what to change."""


class KernelBiasError(Exception):
    """Base class of every error this package raises on purpose."""


class UnknownLayerError(KernelBiasError, LookupError):
    """The named layer is not a convolution of the model."""


class InterventionError(KernelBiasError, ValueError):
    """The intervention cannot be applied as asked (bad kernel size, shape change)."""


class MissingAttributeError(KernelBiasError, KeyError):
    """The dataset has no subgroup attribute of that name."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class EmptySubgroupError(KernelBiasError, ValueError):
    """A subgroup has no test images, so its metric is undefined."""


class NonFiniteLossError(KernelBiasError, FloatingPointError):
    """Training produced a NaN or infinite loss."""


class AuditConfigError(KernelBiasError, ValueError):
    """An audit setting is out of range (seeds, threshold, rule, cutoff)."""


class WorkerDiedError(KernelBiasError, RuntimeError):
    """A training process ended abruptly (killed, out of memory); finished variants stay cached."""
