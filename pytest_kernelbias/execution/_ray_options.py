"""Per-task settings of the Ray executor: one mapping, checked before anything is submitted.

`ray_options` comes from `run_audit(ray_options=...)`, the marker, `--kernel-audit-ray-options` or the ini
`kernel_audit_ray_options` (a JSON object, or a TOML inline table such as `{num_gpus = 0.25}`). Ray would
only find a bad value when the first task is submitted (or never: an unknown scheduling strategy waits
forever), so every key is checked here, naming the fix.
"""

from __future__ import annotations

import builtins
import difflib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .. import errors
from ..errors import AuditConfigError

# The runtime_env keys Ray documents; anything else is a typo Ray would reject only on the first task.
RUNTIME_ENV_KEYS = ("working_dir", "py_modules", "pip", "uv", "conda", "env_vars", "excludes", "container",
                    "config", "image_uri", "java_jars", "nsight", "py_executable")
STRATEGIES = ("DEFAULT", "SPREAD")


def _number(name: str, value: object, *, whole: bool = False, minimum: float = 0.0) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < minimum or (whole and value != int(value)):
        kind = "a whole number" if whole else "a number"
        raise AuditConfigError(f"ray_options {name} must be {kind} >= {minimum:g}, got {value!r}")
    return int(value) if whole else float(value)


def _resources(value: object) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise AuditConfigError(f"ray_options resources must map a custom resource name to an amount, e.g. "
                               f"{{'big_memory': 1}}; got {value!r}")
    out = {}
    for name, amount in value.items():
        if not isinstance(name, str) or not name or name in ("CPU", "GPU", "memory"):
            raise AuditConfigError(f"ray_options resources: {name!r} is not a custom resource name (CPU and GPU "
                                   "are num_cpus and num_gpus)")
        out[name] = _number(f"resources[{name!r}]", amount)
    return out


def _exception_class(name: object) -> type[BaseException]:
    """An exception class from its name: a builtin or one of this package's errors."""
    if isinstance(name, type) and issubclass(name, BaseException):
        return name
    found = getattr(builtins, str(name), None) or getattr(errors, str(name), None)
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise AuditConfigError(f"ray_options retry_exceptions: {name!r} is not a builtin exception or one of "
                               "pytest_kernelbias.errors; give true (retry on any error), false, or such names")
    return found


def _retry_exceptions(value: object) -> bool | tuple[type[BaseException], ...]:
    if isinstance(value, bool):
        return value
    if isinstance(value, (list, tuple)) and value:
        return tuple(_exception_class(v) for v in value)
    raise AuditConfigError(f"ray_options retry_exceptions must be true, false or a list of exception names "
                           f"(e.g. ['MemoryError']), got {value!r}")


def _runtime_env(value: object) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise AuditConfigError(f"ray_options runtime_env must be a mapping such as {{'working_dir': '.'}}, "
                               f"got {value!r}")
    for key in value:
        if key not in RUNTIME_ENV_KEYS:
            near = difflib.get_close_matches(str(key), RUNTIME_ENV_KEYS, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise AuditConfigError(f"ray_options runtime_env has an unknown key {key!r}{hint}; Ray takes "
                                   f"{', '.join(RUNTIME_ENV_KEYS)}")
    local = value.get("working_dir")
    if isinstance(local, str) and "://" not in local and not Path(local).is_dir():
        raise AuditConfigError(f"ray_options runtime_env working_dir {local!r} is not a folder here; give the "
                               "folder holding your test's modules (it is uploaded to every node)")
    modules = value.get("py_modules") or ()
    if isinstance(modules, (str, bytes)) or not isinstance(modules, (list, tuple)):
        raise AuditConfigError(f"ray_options runtime_env py_modules must be a list of module folders, files or "
                               f"imported modules, got {modules!r}; write [{modules!r}] for one")
    for module in modules:
        if isinstance(module, str) and "://" not in module and not Path(module).exists():
            raise AuditConfigError(f"ray_options runtime_env py_modules entry {module!r} does not exist here; "
                                   "give a module's folder or file, or an imported module object")
    return dict(value)


def _strategy(value: object) -> str | dict | None:
    if value is None or value in STRATEGIES:
        return value  # type: ignore[return-value]
    if isinstance(value, Mapping) and set(value) <= {"node_id", "soft"} and isinstance(value.get("node_id"), str):
        if not isinstance(value.get("soft", False), bool):
            raise AuditConfigError("ray_options scheduling_strategy soft must be true or false")
        return dict(value)
    raise AuditConfigError(f"ray_options scheduling_strategy must be 'DEFAULT', 'SPREAD' or "
                           f"{{'node_id': ID, 'soft': false}} (pin to one node), got {value!r}")


@dataclass(frozen=True)
class RayOptions:
    """How each training task is submitted to Ray, and how long the audit waits for the cluster.

    `num_gpus` None asks for one GPU when the audit's device is cuda, else none; a fraction packs several
    small models on one GPU. `wait_timeout` (seconds) stops an audit whose tasks cannot start; None waits,
    reporting every minute. `allow_mixed_environments` lets an audit compare variants trained on nodes
    whose numeric environments differ (marked in the report); by default that is refused.
    """

    num_cpus: float = 1.0
    num_gpus: float | None = None
    resources: dict = field(default_factory=dict)
    max_retries: int = 1
    retry_exceptions: Any = False
    runtime_env: dict | None = None
    scheduling_strategy: Any = None
    namespace: str | None = None
    wait_timeout: float | None = None
    allow_mixed_environments: bool = False

    def __post_init__(self) -> None:
        fix = object.__setattr__
        fix(self, "num_cpus", _number("num_cpus", self.num_cpus))
        if self.num_gpus is not None:
            fix(self, "num_gpus", _number("num_gpus", self.num_gpus))
        fix(self, "resources", _resources(self.resources))
        fix(self, "max_retries", int(_number("max_retries", self.max_retries, whole=True, minimum=-1)))
        fix(self, "retry_exceptions", _retry_exceptions(self.retry_exceptions))
        fix(self, "runtime_env", _runtime_env(self.runtime_env))
        fix(self, "scheduling_strategy", _strategy(self.scheduling_strategy))
        if self.namespace is not None and (not isinstance(self.namespace, str) or not self.namespace):
            raise AuditConfigError(f"ray_options namespace must be a non-empty name, got {self.namespace!r}")
        if self.wait_timeout is not None:
            fix(self, "wait_timeout", _number("wait_timeout", self.wait_timeout, minimum=1.0))
        if not isinstance(self.allow_mixed_environments, bool):
            raise AuditConfigError("ray_options allow_mixed_environments must be true or false")

    def gpus(self, device: str) -> float:
        """GPUs each task asks for: the setting, else one for a cuda audit."""
        return self.num_gpus if self.num_gpus is not None else (1.0 if device.startswith("cuda") else 0.0)

    def as_dict(self) -> dict:
        """JSON-ready, for reports: exception classes by name."""
        out = asdict(self)
        if isinstance(self.retry_exceptions, tuple):
            out["retry_exceptions"] = [e.__name__ for e in self.retry_exceptions]
        return out


def report_options(execution) -> dict | None:
    """The per-task settings a report states: a Ray audit's, none for an executor on this machine."""
    from ._base import trains_remotely

    return execution.ray_options.as_dict() if trains_remotely(execution.executor) else None


def audit_device(executor: object, options: object, device: str) -> str:
    """The device `device="auto"` means for an audit on `executor`: the tasks' (task_device) where they train
    remotely, else this machine's."""
    from ._base import trains_remotely

    return task_device(options, device) if isinstance(executor, str) and trains_remotely(executor) else device


def task_device(options: object, device: str) -> str:
    """The device of a Ray audit: "auto" is cuda when the tasks ask for GPUs (decided where the models train,
    so the driver needs none), else what "auto" means here."""
    if device != "auto":
        return device
    return "cuda" if (ray_options(options).num_gpus or 0) > 0 else "auto"


def ray_options(value: object) -> RayOptions:
    """A `RayOptions` from one, a mapping, or a JSON / TOML-inline-table string; unknown keys named with the valid."""
    if isinstance(value, RayOptions):
        return value
    if value is None:
        return RayOptions()
    if isinstance(value, str):
        value = _parse_text(value)
    if not isinstance(value, Mapping):
        raise AuditConfigError(f"ray_options must be a mapping such as {{'num_gpus': 0.25}}, got {value!r}")
    known = [f for f in RayOptions.__dataclass_fields__]
    for key in value:
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise AuditConfigError(f"ray_options has an unknown key {key!r}{hint}; the keys are {', '.join(known)}")
    return RayOptions(**value)


def _parse_text(text: str) -> object:
    """A JSON object, or a TOML inline table (how pyproject.toml would write the mapping)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        import tomllib  # Python 3.11+; on 3.10 a JSON object is the one form
    except ImportError:
        raise AuditConfigError(f"ray_options {text!r} is not a JSON object (TOML needs Python 3.11+); write e.g. "
                               "'{\"num_gpus\": 0.25}'") from None
    try:
        return tomllib.loads(f"options = {text}")["options"]
    except tomllib.TOMLDecodeError:
        raise AuditConfigError(f"ray_options {text!r} is neither a JSON object nor a TOML inline table; write "
                               "e.g. '{\"num_gpus\": 0.25}' or '{num_gpus = 0.25}'") from None
