"""Audit settings and their precedence: marker > command line > ini > default.

Imported by the plugin in every pytest run, so it stays free of torch, numpy and scipy: the checks that
need them (the device, the executor, the budget) run in `AuditSettings.checked`, once audits are on.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Literal, Mapping

from . import _defaults
from .analysis import check_rule, check_seeds, check_threshold
from .errors import AuditConfigError
from .reporting import GITHUB_SUMMARY, check_name


def _parse_seeds(raw: object) -> int | str:
    text = str(raw).strip().lower()
    return "auto" if text == "auto" else int(text)


def _parse_workers(raw: object) -> int | None:
    text = str(raw).strip().lower()
    return None if text == "auto" else int(text)


@dataclass(frozen=True)
class Option:
    """One audit setting, declared once: `--kernel-audit-NAME` on the command line, `kernel_audit_NAME` in ini,
    NAME on the marker and in `run_audit`. The pytest options, AuditSettings' defaults, the marker's keyword
    check and the table in docs/reference.md (`python -m pytest_kernelbias._options`) all come from these."""

    name: str
    default: Any  # AuditSettings' value when nothing sets it
    shown: str  # the default as --help and the docs show it
    parse: Callable[[object], Any] | None  # None: a flag, given without a value (true/false in ini)
    help: str
    ini: tuple[Any, tuple[int, int]] = ("string", (0, 0))  # ini type, and the first pytest release to accept it
    metavar: str = "VALUE"  # the value's name in --help and the docs

    @property
    def flag(self) -> str:
        return f"--kernel-audit-{flag(self.name)}"


_AUTO_INT = int | Literal["auto"]
OPTIONS: dict[str, Option] = {o.name: o for o in (
    Option("seeds", _defaults.SEEDS, "auto", _parse_seeds,
           "seeds per intervention level: auto trains more only while the verdict is undecided (min_seeds, "
           "max_seeds, seed_round on the marker), or a fixed N >= 2", (_AUTO_INT, (9, 2)), metavar="N"),
    Option("threshold", _defaults.THRESHOLD, str(_defaults.THRESHOLD), float,
           "largest tolerated |effect| on the bias, in metric units", ("float", (8, 4)), metavar="X"),
    Option("rule", _defaults.RULE, _defaults.RULE, str,
           "how the family-adjusted CI is read against the threshold: evidence (fail when beyond, pass when "
           "inside, else undecided), estimate, upper or lower", metavar="R"),
    Option("strict", _defaults.STRICT, "off", None,
           "a warn or undecided verdict fails the test too (for merge gates; marker strict=True)", ("bool", (7, 0))),
    Option("budget", None, "off", str,
           "for seeds=auto: the time training may take, e.g. 10m, 90s, 1.5h; max_seeds is cut to what the first "
           "estimate says fits, before any model trains, and an undecided verdict says how long settling it "
           "would take", metavar="TIME"),
    Option("device", _defaults.DEVICE, _defaults.DEVICE, str,
           "torch device for training and evaluation; auto picks cuda when available", metavar="D"),
    Option("json", None, "off", str, "write a JSON report of every audit to this path (docs/report-schema.md)",
           metavar="PATH"),
    Option("html", None, "off", str,
           "write a self-contained HTML report (a verdict card per audit, then tables and plots) to this path",
           metavar="PATH"),
    Option("md", None, "$GITHUB_STEP_SUMMARY when set, else off", str,
           "write a Markdown summary (one row per audit, for a CI job page) to this path", metavar="PATH"),
    Option("cache", None, "kernel-audit/ in pytest's cache dir", str, "folder of trained variants", metavar="DIR"),
    Option("retrain", _defaults.RETRAIN, "off", None,
           "ignore cached variants: train every one again and overwrite the cache", ("bool", (7, 0))),
    Option("workers", _defaults.WORKERS, "auto", _parse_workers,
           "processes that train and measure variants in parallel, one torch thread each; auto is one per usable "
           "core, shared out among pytest-xdist workers", (_AUTO_INT, (9, 2)), metavar="N"),
    Option("executor", _defaults.EXECUTOR, _defaults.EXECUTOR, str,
           "where variants train: local (seed-batched where it can win: a GPU, or seed_batching='vmap'; else a "
           "process pool with workers > 1; else serial), serial, seed-batched, pool or ray", metavar="NAME"),
    Option("ray_address", None, "a local Ray instance", str,
           "Ray cluster to train on with executor ray: HOST:PORT, ray://HOST:PORT or auto", metavar="ADDR"),
    Option("ray_options", None, "off", str,
           "per-task Ray settings as a JSON object or TOML inline table: num_cpus, num_gpus, resources, "
           "max_retries, retry_exceptions, runtime_env, scheduling_strategy, namespace, wait_timeout, "
           "allow_mixed_environments (docs/cache-and-cluster.md)", metavar="MAP"),
)}
FLAGS = {name for name, option in OPTIONS.items() if option.parse is None}  # given without a value


@dataclass(frozen=True)
class SessionOption:
    """A command-line option of the session (not a per-audit setting): the gate, baselines, the switch."""

    flag: str
    shown: str
    help: str
    kwargs: Mapping[str, Any]


SESSION_OPTIONS = (
    SessionOption("--kernel-audit", "off", "run tests marked kernel_audit (otherwise skipped)",
                  {"action": "store_true", "default": False}),
    SessionOption("--kernel-audit-save", "off", "save this run's effects as baseline NAME in "
                  ".kernel-audit/baselines/NAME.json; the summary says where and how many",
                  {"metavar": "NAME", "default": None}),
    SessionOption("--kernel-audit-save-merge", "off", "when saving a baseline: keep its audits of tests this run did "
                  "not run (adds a pull request's new audits without rerunning the rest)",
                  {"action": "store_true", "default": False}),
    SessionOption("--kernel-audit-compare", "off", "compare effects with baseline NAME, or the newest one",
                  {"metavar": "NAME", "nargs": "?", "const": "", "default": None}),
    SessionOption("--kernel-audit-compare-fail", "off", "fail an audit whose |effect| grew by more than DELTA "
                  "beyond both runs' intervals (per test: marker compare_fail=DELTA); an audit new to the baseline "
                  "is reported as new, not failed (docs/ci.md)",
                  {"metavar": "DELTA", "type": float, "default": None}),
)


def ini_type(name: str, pytest_version: tuple) -> Any:
    """The `type=` for parser.addini of option `name` under a pytest of `pytest_version` (major, minor, ...): an
    older pytest reads the value as a string, which the option's parser converts all the same."""
    kind, since = OPTIONS[name].ini
    return kind if tuple(pytest_version[:2]) >= since else "string"


def flag(name: str) -> str:
    """The command-line spelling of an option: ray_address -> ray-address."""
    return name.replace("_", "-")


def reference_table() -> str:
    """The options table of docs/reference.md, made from the declarations above."""
    rows = ["| command line | ini | default | meaning |", "| --- | --- | --- | --- |"]
    for option in SESSION_OPTIONS:
        value = f" {option.kwargs['metavar']}" if "metavar" in option.kwargs else ""
        value = f" [{value.strip()}]" if option.kwargs.get("nargs") == "?" else value
        rows.append(f"| `{option.flag}{value}` | – | {option.shown} | {_cell(option.help)} |")
    for o in OPTIONS.values():
        value = "" if o.parse is None else f" {o.metavar}"
        rows.append(f"| `{o.flag}{value}` | `kernel_audit_{o.name}` | {o.shown} | {_cell(o.help)} |")
    return "\n".join(rows) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a pipe would end the table cell


def _parse_bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(text)


def _default(name: str) -> Any:
    return OPTIONS[name].default


@dataclass(frozen=True)
class AuditSettings:
    """The settings in force for an audit under pytest: one field per Option, in its order, with its default."""

    seeds: int | str = _default("seeds")  # "auto", or a fixed count >= 2
    threshold: float = _default("threshold")
    rule: str = _default("rule")
    strict: bool = _default("strict")
    budget: str | None = _default("budget")
    device: str = _default("device")
    json: str | None = _default("json")
    html: str | None = _default("html")
    md: str | None = _default("md")
    cache: str | None = _default("cache")
    retrain: bool = _default("retrain")
    workers: int | None = _default("workers")  # None ("auto"): one per usable core
    executor: str = _default("executor")
    ray_address: str | None = _default("ray_address")
    ray_options: str | None = _default("ray_options")

    def __post_init__(self) -> None:
        if self.seeds != "auto":
            check_seeds(self.seeds)
        check_threshold(self.threshold)
        check_rule(self.rule)

    def checked(self) -> "AuditSettings":
        """These settings, once the checks that need the audit's own modules (torch) pass: the plugin calls it
        when audits are on and before an audit fixture is used."""
        from ._devices import resolve_device
        from .execution import parse_budget
        from .spec import ExecutionSpec

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
                + (f", executor={self.executor}" if self.executor != _defaults.EXECUTOR else "")
                + (f", ray_address={self.ray_address}" if self.ray_address else "")
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
    for name, option in OPTIONS.items():
        parse = option.parse or _parse_bool
        raw = cli.get(name)
        if name in FLAGS and raw is False:
            raw = None  # a flag not given on the command line leaves the ini value in force
        source = option.flag
        if raw is None and ini.get(name) not in (None, ""):
            raw, source = ini[name], f"ini kernel_audit_{name}"
        if raw is None:
            continue  # AuditSettings' own default, the option's
        try:
            values[name] = parse(raw)
        except (TypeError, ValueError):
            kind = {_parse_bool: "true/false", _parse_workers: "int >= 1 or auto",
                    _parse_seeds: "int >= 2 or auto"}.get(parse, parse.__name__)
            raise AuditConfigError(f"{source}={raw!r} is not a valid {kind}: {option.help}") from None
    if "md" not in values and os.environ.get(GITHUB_SUMMARY):
        values["md"] = os.environ[GITHUB_SUMMARY]  # GitHub Actions: the job page shows the summary by default
    settings = AuditSettings(**values)
    return settings.checked() if checked else settings


if __name__ == "__main__":  # python -m pytest_kernelbias._options: the table for docs/reference.md
    print(reference_table(), end="")
