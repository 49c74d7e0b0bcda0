"""Getting batches onto the device: page-locked host memory and asynchronous copies on CUDA."""

from __future__ import annotations

import torch

from .errors import AuditConfigError

RESIDENT_SHARE = 0.25  # at most this share of free GPU memory holds a whole training set


def staged(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`tensor` on `device` when it fits comfortably there (one copy instead of one per step), else as is."""
    if device.type != "cuda" or tensor.is_cuda:
        return tensor
    free, _total = torch.cuda.mem_get_info(device)
    if tensor.numel() * tensor.element_size() > RESIDENT_SHARE * free:
        return tensor  # too big: batches are gathered on the host and copied asynchronously instead
    return tensor.to(device)


def gather(source: torch.Tensor, index: torch.Tensor, device: torch.device,
           memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """The rows `index` of `source` on `device`; a host-to-CUDA copy goes through page-locked memory."""
    if source.device == device or device.type != "cuda":
        return source[index.to(source.device)].to(device).contiguous(memory_format=memory_format)
    # index_select straight into pinned memory: the copy then runs asynchronously, overlapping compute.
    out = torch.empty((len(index), *source.shape[1:]), dtype=source.dtype, pin_memory=True)
    torch.index_select(source, 0, index, out=out)
    return out.to(device, non_blocking=True).contiguous(memory_format=memory_format)


def host_to(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A copy of a host batch on `device` (pinned and asynchronous on CUDA): never a view of the caller's
    images, which a model writing into its input (an in-place first activation) would rewrite."""
    if device.type != "cuda" or batch.is_cuda:
        return batch.to(device, copy=True)
    return batch.pin_memory().to(device, non_blocking=True)


def resolve_device(device: str) -> str:
    """A torch device name; "auto" is cuda when available, else cpu (the one default, notebook and pytest)."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return str(torch.device(device))
    except (RuntimeError, TypeError) as exc:
        raise AuditConfigError(f"device {device!r} is not a torch device ({exc}); use cpu, cuda, cuda:1 or "
                               "auto") from None
