"""What a piece of code can reach, encoded as JSON: the fingerprint of a thing that cannot be run to be probed.

A custom trainer is only ever called to train, so its key is everything the program can reach from it:
the compiled code of each function (not its source text, which `inspect` may read stale from disk and which
holds comments and line numbers), its defaults, closure cells and the module globals its code names,
an object's whole state (private attributes too), a class's methods and bases, followed recursively
through the user's own modules. Library code (the standard library, site-packages, this package) is named
with its version and not followed. A value with no stable encoding (a lock held in state, an object
known only by its address) is recorded in `unstable` with where it was reached.
"""

from __future__ import annotations

import collections
import enum
import functools
import hashlib
import io
import logging
import os
import random
import re
import sys
import sysconfig
import threading
import types
from importlib import metadata
from pathlib import Path, PurePath

import numpy as np
import torch
from torch import nn

from ..data import SubgroupDataset
from ._digest import array_digest, float_code
from ._model import module_tree

_LIBRARIES = tuple(sorted({str(Path(p).resolve()) for k in ("stdlib", "platstdlib", "purelib", "platlib")
                           if (p := sysconfig.get_paths().get(k))}))
_PACKAGE = str(Path(__file__).resolve().parents[1])
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")  # a memory address: differs in every process
_NODE_LIMIT = 50_000  # values followed from one root; a larger reach is not fingerprinted, but reported
_DEPTH_LIMIT = 150  # nesting followed (each level costs a few Python frames, under the recursion limit)
_BEHAVIOUR_FREE = (type(threading.Lock()), type(threading.RLock()), threading.Event, logging.Logger,
                   io.TextIOWrapper)  # kept in state for logging or locking: they shape no number
_SKIPPED_CLASS_KEYS = {"__dict__", "__weakref__", "__module__", "__doc__", "__qualname__", "__annotations__",
                       "__dataclass_fields__", "__dataclass_params__", "__match_args__", "__parameters__",
                       "__orig_bases__", "__static_attributes__", "__firstlineno__"}


@functools.lru_cache(maxsize=None)
def _is_own(module_name: str) -> bool:
    """Whether a module is the user's own code (followed), not a library's or this package's (named)."""
    if module_name == "__main__":
        return True
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if module is None or file is None:
        return False  # built-in or C extension
    path = str(Path(file).resolve())
    return not any(path == root or path.startswith(root + os.sep) for root in (_PACKAGE, *_LIBRARIES))


@functools.lru_cache(maxsize=None)
def _version(module_name: str) -> str:
    """The installed version of the distribution a module comes from (the interpreter's for the stdlib)."""
    top = module_name.partition(".")[0]
    found = getattr(sys.modules.get(top), "__version__", None)
    if isinstance(found, str):
        return found
    try:
        return metadata.version(top)
    except (metadata.PackageNotFoundError, ValueError):
        return f"python {sys.version.split()[0]}"


def _library(kind: str, value: object) -> dict:
    module = getattr(value, "__module__", None) or type(value).__module__
    name = getattr(value, "__qualname__", None) or getattr(value, "__name__", type(value).__qualname__)
    return {kind: f"{module}.{name}", "version": _version(str(module))}


class Reach:
    """Encodes the values reached from one root; `unstable` lists where no stable encoding exists."""

    def __init__(self) -> None:
        self.unstable: list[str] = []
        self._seen: dict[int, int] = {}  # id -> visit number: cycles and shared objects become references
        self._alive: list[object] = []  # keeps visited objects alive, so no id is reused during the walk
        self._nodes = 0
        self._depth = 0

    def encode(self, value: object, where: str) -> object:
        """A JSON value for `value`: equal encodings for values that behave alike as far as the walk can see."""
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int):  # JSON cannot print past 4,300 digits: a huge int by its bytes
            return value if abs(value) < 10**100 else {"int": _int_bytes(value)}
        if isinstance(value, float):
            return float_code(value)
        if isinstance(value, (complex, bytes, bytearray, range, slice)):
            return {type(value).__name__: repr(value)}
        if isinstance(value, (torch.Tensor, np.ndarray)):
            return self._array(value, where)
        if isinstance(value, (torch.dtype, torch.device, np.dtype, np.generic)):
            return {type(value).__name__: repr(value)}
        if isinstance(value, enum.Enum):  # by class and name: an Enum class's machinery is not user state
            kind = type(value)
            return {"enum": f"{kind.__module__}.{kind.__qualname__}", "name": value.name,
                    "value": self.encode(value.value, where)}
        if isinstance(value, PurePath):  # its str: a cached hash in its slots differs per process
            return {"path": str(value)}
        if id(value) in self._seen:
            return {"ref": self._seen[id(value)]}
        self._nodes += 1
        if self._nodes > _NODE_LIMIT:
            return self._unstable(where, f"reaches over {_NODE_LIMIT} values")
        if self._depth >= _DEPTH_LIMIT:
            return self._unstable(where, f"nested deeper than {_DEPTH_LIMIT} values")
        self._seen[id(value)] = len(self._seen)
        self._alive.append(value)
        self._depth += 1
        try:
            return self._compound(value, where)
        finally:
            self._depth -= 1

    def _compound(self, value: object, where: str) -> object:
        if isinstance(value, (list, tuple, dict, set, frozenset, collections.deque)):
            return self._container(value, where)
        if isinstance(value, types.ModuleType):
            return self._module(value, None, where)
        if isinstance(value, (types.FunctionType, types.LambdaType)):
            return self._function(value, where)
        if isinstance(value, types.MethodType):
            return {"method": self.encode(value.__func__, where), "self": self.encode(value.__self__, where)}
        if isinstance(value, functools.partial):
            return {"partial": [self.encode(value.func, where), self.encode(value.args, where),
                                self.encode(value.keywords, where)]}
        if isinstance(value, (staticmethod, classmethod)):
            return {type(value).__name__: self.encode(value.__func__, where)}
        if isinstance(value, property):
            return {"property": [self.encode(f, where) for f in (value.fget, value.fset, value.fdel)]}
        if isinstance(value, types.CodeType):
            return self._code(value, where)
        if isinstance(value, type):
            return self._class(value, where)
        return self._object(value, where)

    def _container(self, value, where: str) -> dict:
        """A list, tuple, dict, set or deque, with its class and state when a subclass (a namedtuple, a
        defaultdict's factory); set members each encoded alone, so their order cannot number references."""
        kind = type(value)
        if isinstance(value, dict):
            items = [[self.encode(k, where), self.encode(v, f"{where}[{_key(k)}]")] for k, v in value.items()]
            out: dict = {"dict": sorted(items, key=repr)}
        elif isinstance(value, (set, frozenset)):
            out = {"set": sorted((self._alone(v, where) for v in value), key=repr)}
        else:
            out = {"sequence": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if kind not in (list, tuple, dict, set, frozenset):
            out["class"] = self.encode(kind, where)
            out["state"] = self.encode(_state(value) or {}, where)
            if isinstance(value, collections.defaultdict):
                out["default"] = self.encode(value.default_factory, where)
        return out

    def _alone(self, value: object, where: str) -> object:
        """`value` encoded by a walk of its own: no reference numbers shared with the rest."""
        sub = Reach()
        encoded = sub.encode(value, where)
        self.unstable += sub.unstable
        return encoded

    def _module(self, module: types.ModuleType, names: list[str] | None, where: str,
                inside: tuple[str, ...] = ()) -> dict:
        """A library module by name and version; the user's own by the attributes `names` (all public ones
        when reached as a value), followed into its own submodules (once each along a path: no cycles)."""
        if module.__name__ in sys.modules and not _is_own(module.__name__):  # one never imported is followed
            return _library("module", module)
        if module.__name__ in inside:
            return {"module": module.__name__, "again": True}
        wanted = names if names is not None else sorted(n for n in vars(module) if not n.startswith("_"))
        attributes = {}
        for n in wanted:
            if hasattr(module, n):
                attr = getattr(module, n)
                attributes[n] = (self._module(attr, names, f"{where}.{n}", (*inside, module.__name__))
                                 if isinstance(attr, types.ModuleType) else self.encode(attr, f"{where}.{n}"))
        return {"module": module.__name__, "attributes": attributes}

    def _array(self, value: torch.Tensor | np.ndarray, where: str) -> object:
        try:
            digest = array_digest(np.ma.getdata(value) if isinstance(value, np.ma.MaskedArray) else value)
        except (TypeError, RuntimeError) as exc:  # an object array, a meta tensor
            return self._unstable(where, f"an array with no bytes to hash ({exc})")
        digest["class"] = f"{type(value).__module__}.{type(value).__qualname__}"
        if isinstance(value, np.ma.MaskedArray):
            digest["mask"] = array_digest(np.ma.getmaskarray(value))
        if isinstance(value, torch.Tensor):
            digest["requires_grad"] = value.requires_grad
        return digest

    def _function(self, fn: types.FunctionType, where: str) -> dict:
        module = fn.__module__ or ""
        if module in sys.modules and not _is_own(module):  # code of no known module (exec'd) is followed
            return _library("function", fn)
        here = f"{where} ({fn.__qualname__})"
        names = _names(fn.__code__)
        cells = {name: self._cell(cell, f"{here} closure {name!r}")
                 for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ())}
        return {"code": self._code(fn.__code__, here), "defaults": self.encode(fn.__defaults__, f"{here} defaults"),
                "kwdefaults": self.encode(fn.__kwdefaults__, f"{here} defaults"), "closure": cells,
                "globals": self._globals(fn.__globals__, names, here)}

    def _cell(self, cell: types.CellType, where: str) -> object:
        try:
            return self.encode(cell.cell_contents, where)
        except ValueError:  # an empty cell: the name is not bound yet
            return {"empty cell": True}

    def _globals(self, space: dict, names: list[str], where: str) -> dict:
        """The module globals among `names`; a user module global is followed into the attributes named."""
        out = {}
        for name in names:
            if name not in space:
                continue  # a builtin, or an attribute name
            value = space[name]
            if isinstance(value, types.ModuleType):
                out[name] = self._module(value, names, f"{where} {name}")
            else:
                out[name] = self.encode(value, f"{where} global {name!r}")
        return out

    def _code(self, code: types.CodeType, where: str) -> dict:
        """What runs, without where it was written: bytecode, constants (nested code too) and names."""
        consts = [self._code(c, where) if isinstance(c, types.CodeType) else self.encode(c, where)
                  for c in code.co_consts]
        return {"bytecode": code.co_code.hex(), "consts": consts, "names": list(code.co_names),
                "varnames": list(code.co_varnames), "freevars": list(code.co_freevars),
                "cellvars": list(code.co_cellvars), "args": [code.co_argcount, code.co_posonlyargcount,
                                                             code.co_kwonlyargcount, code.co_flags]}

    def _class(self, cls: type, where: str) -> dict:
        if cls.__module__ in sys.modules and not _is_own(cls.__module__):  # exec'd code is followed
            return _library("class", cls)
        if issubclass(cls, enum.Enum):  # its members and methods, not the Enum machinery it carries
            members = {m.name: self.encode(m.value, where) for m in cls}
            methods = {k: self.encode(v, where) for k, v in sorted(vars(cls).items())
                       if isinstance(v, (types.FunctionType, staticmethod, classmethod, property))}
            return {"enum class": cls.__qualname__, "members": members, "methods": methods}
        here = f"{where} (class {cls.__qualname__})"
        body = {k: self.encode(v, f"{here}.{k}") for k, v in sorted(vars(cls).items())
                if k not in _SKIPPED_CLASS_KEYS}
        return {"class": cls.__qualname__, "bases": [self.encode(b, here) for b in cls.__bases__], "body": body}

    def _object(self, value: object, where: str) -> object:
        if isinstance(value, _BEHAVIOUR_FREE) or any(value is s for s in (sys.stdout, sys.stderr)):
            return {"behaviour-free": type(value).__name__}
        if isinstance(value, types.BuiltinFunctionType):  # by name, and what it is bound to when not a type
            owner = value.__self__
            named = {"builtin": f"{getattr(owner, '__name__', type(owner).__name__)}.{value.__name__}"}
            return named if owner is None or isinstance(owner, (type, types.ModuleType)) else {
                **named, "self": self.encode(owner, where)}
        if isinstance(value, random.SystemRandom):
            return self._unstable(where, "random.SystemRandom draws from the system's entropy: no state to key")
        if isinstance(value, random.Random):
            return {"random": self.encode(value.getstate(), where)}
        if isinstance(value, io.BytesIO):
            return {"BytesIO": value.getvalue().hex()}
        if isinstance(value, np.random.Generator):
            return {"generator": self.encode(value.bit_generator.state, where)}
        if isinstance(value, torch.Generator):
            return {"torch generator": array_digest(value.get_state())}
        if isinstance(value, SubgroupDataset):  # its content, not its memo of tensor version counters
            return {"data": value.fingerprint(), "name": value.name}
        if isinstance(value, nn.Module):
            return self._nn_module(value, where)
        state = _state(value)
        if state is None:
            text = repr(value)
            if _ADDRESS.search(text):
                return self._unstable(where, f"a {type(value).__qualname__} known only by its address")
            return {"repr": [self.encode(type(value), where), text]}
        return {"object": self.encode(type(value), where), "state": self.encode(state, f"{where}.")}

    def _nn_module(self, module: nn.Module, where: str) -> dict:
        """A module a trainer holds (a teacher, a loss): every submodule's class (followed when the user's) and
        attributes, private ones too, and every parameter and buffer, saved or not, by its exact value."""
        tensors = {"parameters", "_parameters", "_buffers", "_modules"}
        parts = [[name, self.encode(type(m), f"{where}.{name}"),
                  self.encode({k: v for k, v in vars(m).items() if k not in tensors}, f"{where}.{name}")]
                 for name, m in module.named_modules(remove_duplicate=False)]
        values = [[n, self._array(t, where)] for n, t in (*module.named_parameters(remove_duplicate=False),
                                                          *module.named_buffers(remove_duplicate=False))]
        return {"nn.Module": module_tree(module), "modules": parts, "tensors": values}

    def _unstable(self, where: str, what: str) -> dict:
        where = _ADDRESS.sub("0x?", where)  # a key's repr may hold an address: the marker must not
        self.unstable.append(f"{where}: {what}")
        return {"unstable": where}


def _state(value: object) -> dict | None:
    """An object's attributes, private ones and slots included; None when it keeps none Python can see."""
    state = dict(getattr(value, "__dict__", None) or {})
    for cls in type(value).__mro__:
        slots = getattr(cls, "__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if not isinstance(slot, str) or slot in ("__dict__", "__weakref__"):
                continue
            name = f"_{cls.__name__.lstrip('_')}{slot}" if slot.startswith("__") and not slot.endswith("__") else slot
            if hasattr(value, name):
                state[slot] = getattr(value, name)
    if not state and not hasattr(value, "__dict__"):
        return None
    return state


def _key(key: object) -> str:
    """A dict key in a `where` path: its repr when plain, else its type (a repr may hold an address)."""
    return repr(key) if isinstance(key, (str, int, float, bool)) or key is None else f"<{type(key).__name__}>"


def _int_bytes(value: int) -> str:
    return hashlib.sha256(value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True)).hexdigest()


def _names(code: types.CodeType) -> list[str]:
    """Every global or attribute name `code` and the code nested in it use, sorted."""
    found = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found.update(_names(const))
    return sorted(found)
