"""Audit settings and their precedence: marker > command line > ini > default.

Imported by the plugin in every pytest run, so it stays free of torch, numpy and scipy: the checks that
need them (the device, the executor, the budget) run in `AuditSettings.checked`, once audits are on.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, Mapping

from . import _defaults
from .analysis._checks import check_rule, check_seeds, check_threshold
from .errors import AuditConfigError
from .reporting._baseline import check_name
from .reporting._markdown import GITHUB_SUMMARY


def _parse_seeds(raw: object) -> int | str:
    text = str(raw).strip().lower()
    return "auto" if text == "auto" else int(text)


def _parse_workers(raw: object) -> int | None:
    text = str(raw).strip().lower()
    return None if text == "auto" else int(text)


# name -> (the default as --help shows it, parser, help). Option --kernel-audit-NAME, ini kernel_audit_NAME.
# The values themselves are AuditSettings' defaults, from _defaults; the help text states none of its own.
OPTIONS: dict[str, tuple[Any, Any, str]] = {
    "seeds": (_defaults.SEEDS, _parse_seeds,
              "seeds per intervention level: auto trains more only while the verdict is undecided (min_seeds, "
              "max_seeds, seed_round on the marker), or a fixed N >= 2"),
    "budget": ("off", str, "for seeds=auto: the time training may take, e.g. 10m; max_seeds is cut to what the first "
                          "estimate says fits, before any model trains, and an undecided verdict says how long "
                          "settling it would take"),
    "threshold": (_defaults.THRESHOLD, float,
                  "largest tolerated |effect| on the bias, in metric units"),
    "rule": (_defaults.RULE, str,
             "how the family-adjusted CI is read against the threshold: evidence (fail when beyond, pass when "
             "inside, else undecided), estimate, upper or lower"),
    "strict": ("off", None, "a warn or undecided verdict fails the test too (for merge gates)"),
    "device": (_defaults.DEVICE, str,
               "torch device for training and evaluation; auto picks cuda when available"),
    "json": ("off", str, "write a JSON report of every audit to this path"),
    "html": ("off", str, "write a self-contained HTML report (summary cards, tables, plots) to this path"),
    "md": ("$GITHUB_STEP_SUMMARY when set, else off", str, "write a Markdown summary (one row per audit, for a CI "
                                                          "job page) to this path"),
    "cache": ("kernel-audit/ in pytest's cache dir", str, "folder of trained variants"),
    "workers": ("auto", _parse_workers, "processes that train and measure variants in parallel, one torch thread "
                                        "each; auto is one per usable core, shared out among pytest-xdist workers"),
    "retrain": ("off", None, "ignore cached variants: train every one again and overwrite the cache"),
    "executor": (_defaults.EXECUTOR, str,
                 "where variants train: local (seed-batched where it can win: a GPU, or seed_batching='vmap'; else a "
                 "process pool with workers > 1; else serial), serial, seed-batched, pool or ray"),
    "ray_address": ("a local Ray instance", str, "Ray cluster to train on with executor ray: HOST:PORT, "
                                                 "ray://HOST:PORT or auto"),
    "ray_options": ("off", str, "per-task Ray settings as a JSON object or TOML inline table: num_cpus, num_gpus, "
                               "resources, max_retries, retry_exceptions, runtime_env, scheduling_strategy, "
                               "namespace, wait_timeout, allow_mixed_environments"),
}
# ini types other than "string", with the pytest release that first accepts each: an older pytest reads
# the value as a string, which the option's parser converts all the same.
INI_TYPES: dict[str, tuple[Any, tuple[int, int]]] = {
    "seeds": (int | Literal["auto"], (9, 2)),
    "threshold": ("float", (8, 4)),
    "retrain": ("bool", (7, 0)),
    "strict": ("bool", (7, 0)),
    "workers": (int | Literal["auto"], (9, 2)),
}


def ini_type(name: str, pytest_version: tuple) -> Any:
    """The `type=` for parser.addini of option `name` under a pytest of `pytest_version` (major, minor, ...)."""
    kind, since = INI_TYPES.get(name, ("string", (0, 0)))
    return kind if tuple(pytest_version[:2]) >= since else "string"


FLAGS = {"retrain", "strict"}  # options that take no value on the command line


def flag(name: str) -> str:
    """The command-line spelling of an option: ray_address -> ray-address."""
    return name.replace("_", "-")


def _parse_bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(text)


@dataclass(frozen=True)
class AuditSettings:
    seeds: int | str = _defaults.SEEDS  # "auto", or a fixed count >= 2
    budget: str | None = None
    threshold: float = _defaults.THRESHOLD
    rule: str = _defaults.RULE
    strict: bool = _defaults.STRICT
    device: str = _defaults.DEVICE
    json: str | None = None
    html: str | None = None
    md: str | None = None
    cache: str | None = None
    workers: int | None = _defaults.WORKERS  # None ("auto"): one per usable core
    retrain: bool = _defaults.RETRAIN
    executor: str = _defaults.EXECUTOR
    ray_address: str | None = None
    ray_options: str | None = None

    def __post_init__(self) -> None:
        if self.seeds != "auto":
            check_seeds(self.seeds)
        check_threshold(self.threshold)
        check_rule(self.rule)

    def checked(self) -> "AuditSettings":
        """These settings, once the checks that need the audit's own modules (torch) pass: the plugin calls it
        when audits are on and before an audit fixture is used."""
        from .execution._budget import parse_budget
        from .spec import ExecutionSpec, resolve_device

        parse_budget(self.budget)
        resolve_device(self.device)
        # The audit's own execution spec checks these, so the options and run_audit can never disagree.
        ExecutionSpec(executor=self.executor, workers=self.workers, ray_address=self.ray_address,
                      ray_options=self.ray_options, retrain=self.retrain)
        return self

    def override(self, overrides: Mapping[str, Any]) -> "AuditSettings":
        """A checked copy with the known keys of `overrides` applied (marker keyword arguments)."""
        known = {k: v for k, v in overrides.items() if k in OPTIONS}
        return (replace(self, **known) if known else self).checked()

    def header(self) -> str:
        # Defaults only: a test's marker overrides them, and the summary states each audit's own settings.
        return (f"kernel-audit defaults (a marker overrides them): seeds={self.seeds}"
                + (f" within {self.budget}" if self.budget else "") + f", threshold={self.threshold:g}, "
                f"rule={self.rule}, "
                + ("strict, " if self.strict else "") +
                f"device={self.device}, workers={self.workers or 'auto'} x 1 torch thread"
                + (f", json={self.json}" if self.json else "")
                + (f", html={self.html}" if self.html else "") + (f", md={self.md}" if self.md else "")
                + (f", cache={self.cache}" if self.cache else "") + (", retrain" if self.retrain else "")
                + (f", executor=ray ({self.ray_address or 'local instance'})" if self.executor == "ray" else "")
                + (f", ray_options={self.ray_options}" if self.ray_options else ""))

    def as_dict(self) -> dict:
        return asdict(self)


def check_baseline_names(save: str | None, compare: str | None) -> None:
    """Refuse at startup a baseline name that is not a plain name: it would be a path outside the baselines folder,
    found out only when the session ends (saving) or inside an audit test (comparing)."""
    if save is not None:
        check_name(save, "--kernel-audit-save")
    if compare:  # "" (the option without a value) means the newest baseline
        check_name(compare, "--kernel-audit-compare")


def from_sources(cli: Mapping[str, Any], ini: Mapping[str, Any], checked: bool = True) -> AuditSettings:
    """Settings from command-line values (None when not given) over ini strings over defaults; `checked=False`
    leaves out the checks that import torch (AuditSettings.checked), for a session without audits."""
    values = {}
    for name, (default, parse, _help) in OPTIONS.items():
        parse = parse or _parse_bool
        raw = cli.get(name)
        if name in FLAGS and raw is False:
            raw = None  # a flag not given on the command line leaves the ini value in force
        source = f"--kernel-audit-{flag(name)}"
        if raw is None and ini.get(name) not in (None, ""):
            raw, source = ini[name], f"ini kernel_audit_{name}"
        if raw is None:
            continue  # AuditSettings' own default, which `default` above only displays
        try:
            values[name] = parse(raw)
        except (TypeError, ValueError):
            kind = {_parse_bool: "true/false", _parse_workers: "int >= 1 or auto",
                    _parse_seeds: "int >= 2 or auto"}.get(parse, parse.__name__)
            raise AuditConfigError(f"{source}={raw!r} is not a valid {kind}: {_help}") from None
    if "md" not in values and os.environ.get(GITHUB_SUMMARY):
        values["md"] = os.environ[GITHUB_SUMMARY]  # GitHub Actions: the job page shows the summary by default
    settings = AuditSettings(**values)
    return settings.checked() if checked else settings
