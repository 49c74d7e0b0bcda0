"""Image files to fixed-size tensors: decoding, short-side resize with centre crop, and an LRU decode cache
keyed by content."""

from __future__ import annotations

import hashlib
import io
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from .._stored import read_regular


class DecodeCache:
    """LRU of decoded uint8 (3, size, size) tensors keyed by the file's content (SHA-256 of its bytes) and size.

    A file rewritten in place is decoded again even if its size and modification time were kept: the key is
    what the file holds, not where it is or when it changed. Reading and hashing cost far less than decoding.
    `max_bytes` bounds the memory held (bytes); `decodes` counts real decodes, `hits` cache hits.
    """

    def __init__(self, max_bytes: int = 512 * 2**20):
        self.max_bytes = max_bytes
        self.decodes = 0
        self.hits = 0
        self._items: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._bytes = 0

    def load(self, path: Path, size: int) -> torch.Tensor:
        """Float (3, size, size) image in [0, 1]; decodes only on a miss. Raises OSError/ValueError if unreadable
        (a FIFO, device or link is a ValueError, never a wait)."""
        data = read_regular(path, follow_links=True)  # the loaders decide which links a dataset may hold
        key = (hashlib.sha256(data).digest(), size)
        if key in self._items:
            self.hits += 1
            self._items.move_to_end(key)
            return self._items[key].float() / 255
        pixels = decode_bytes(data, size)
        self.decodes += 1
        self._items[key] = pixels
        self._bytes += pixels.numel()
        while self._bytes > self.max_bytes and self._items:
            self._bytes -= self._items.popitem(last=False)[1].numel()
        return pixels.float() / 255

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0


DEFAULT_CACHE = DecodeCache()


def decode_image(path: Path, size: int) -> torch.Tensor:
    """Decode `path` (a regular file) to RGB, resize the short side to `size` px and centre-crop: uint8 (3, size,
    size)."""
    return decode_bytes(read_regular(path, follow_links=True), size)


def decode_bytes(data: bytes, size: int) -> torch.Tensor:
    """`decode_image` of an encoded image's bytes."""
    try:
        from PIL import Image  # optional dependency, only needed for on-disk images
    except ImportError as exc:
        raise ImportError("reading image files needs Pillow: pip install pillow") from exc

    with Image.open(io.BytesIO(data)) as im:
        im.load()  # force a full decode so a truncated file fails here, not later
        rgb = _to_rgb(im, Image)
    new_w, new_h, left, top = _fit_geometry(*rgb.size, size)
    rgb = rgb.resize((new_w, new_h), Image.Resampling.BILINEAR).crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def _to_rgb(im, Image):
    """8-bit RGB with every bit depth read as value / max: PIL's convert("RGB") clips a 16-bit grey value of 4000
    (of 65535) to 255, a white image; here it is 4000 / 65535 of white. Float images are taken as 0..1."""
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        grey = np.asarray(im, dtype=np.float64)
        if im.mode != "F":
            grey = grey / (65535.0 if im.mode.startswith("I;16") or grey.max(initial=0) <= 65535 else 4294967295.0)
        grey = np.round(np.clip(grey, 0.0, 1.0) * 255).astype(np.uint8)
        return Image.fromarray(np.stack([grey] * 3, axis=-1), "RGB")
    return im.convert("RGB")


def _fit_geometry(w: int, h: int, size: int) -> tuple[int, int, int, int]:
    """(resized width, height, crop left, top) in px so the short side becomes `size` and the crop is centred."""
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    return new_w, new_h, (new_w - size) // 2, (new_h - size) // 2


def fit_tensor(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a float (C, H, W) tensor's short side to `size` px and centre-crop it."""
    new_w, new_h, left, top = _fit_geometry(image.shape[-1], image.shape[-2], size)
    out = torch.nn.functional.interpolate(image[None], (new_h, new_w), mode="bilinear", antialias=True)[0]
    return out[:, top:top + size, left:left + size].clamp(0, 1)


__all__ = ["DecodeCache", "DEFAULT_CACHE", "decode_image", "fit_tensor"]
