"""A part's API, loaded on first use.

Each part's `__init__` names what other parts and users may import from it and the private module that defines
each name. The modules load when a name is first read: the plugin imports parts in every pytest run, and a run
without audits must not pay for torch, numpy or scipy (docs/ci.md), so an `__init__` cannot import its modules
eagerly.
"""

from __future__ import annotations

import importlib
import sys
from typing import Callable, Mapping


def lazy_api(package: str, homes: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, whose names live in the modules `homes` gives (relative, such as
    ``"._effects"``)."""

    def __getattr__(name: str) -> object:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home, package), name)
        setattr(sys.modules[package], name, value)  # found directly from now on
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(homes))

    return __getattr__, __dir__
