"""pytest wiring only: options, marker, fixtures, header, summary and report.

pytest imports this module in every run of a project that has the package installed, so it imports only
what reads options and records: the audit's own modules (torch, scipy) load when an audit fixture is
used, and a run without audits pays nothing for them (benchmarks/plugin_cost.py).
"""

from __future__ import annotations

import json
import time

import pytest

from ._frames import hide_package_frames
from ._lines import RELAY_KEY, lines, progress_for, session_line
from ._options import (
    FLAGS,
    OPTIONS,
    SESSION_OPTIONS,
    AuditSettings,
    check_baseline_names,
    from_sources,
    ini_type,
)
from .errors import AuditConfigError
from .reporting import AuditSession, ProgressRelay, attach, error_record, junit_properties, report_reason

MARKER = "kernel_audit"
RECORDS_ATTR = "kernel_audit_records"  # on the teardown report; xdist carries report attributes to the controller
SKIP_REASON = "kernel audit not requested: run pytest with --kernel-audit to train and audit the models"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kernel-audit", "causal kernel-size bias audits")
    for session in SESSION_OPTIONS:
        group.addoption(session.flag, **session.kwargs, help=f"{session.help} (default: {session.shown})")
    for name, option in OPTIONS.items():
        kind = ({"action": "store_true", "default": False} if name in FLAGS else
                {"default": None, "metavar": option.metavar})
        group.addoption(option.flag, **kind, help=f"{option.help} (default: {option.shown}; ini: kernel_audit_{name})")
        # default=None: an ini setting left out defers to the command line's and AuditSettings' defaults.
        parser.addini(f"kernel_audit_{name}", f"{option.help} (default: {option.shown})",
                      type=ini_type(name, pytest.version_tuple), default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(**overrides): a causal kernel-size bias audit; runs only with --kernel-audit. "
        "Keyword arguments (seeds, threshold, rule, device, or any run_audit argument) override the options.")
    cli = {name: config.getoption(f"kernel_audit_{name}") for name in OPTIONS}
    ini = {}
    for name, option in OPTIONS.items():
        try:
            ini[name] = config.getini(f"kernel_audit_{name}")
        except pytest.UsageError as exc:  # pytest's own type check names neither the setting's meaning nor its fix
            raise pytest.UsageError(f"ini kernel_audit_{name}: {exc} (kernel_audit_{name}: {option.help})") from None
    try:
        config.stash[_SETTINGS] = from_sources(cli, ini, checked=config.getoption("kernel_audit"))
        check_baseline_names(config.getoption("kernel_audit_save"), config.getoption("kernel_audit_compare"))
    except AuditConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.pluginmanager.register(AuditRecorder(config), "kernel-audit-recorder")


_SETTINGS = pytest.StashKey[AuditSettings]()


def pytest_report_header(config: pytest.Config) -> str:
    state = "on" if config.getoption("kernel_audit") else "off (use --kernel-audit)"
    return f"{config.stash[_SETTINGS].header()}, audits {state}"


def pytest_collection_finish(session: pytest.Session) -> None:
    # The session's audit tests in order, for "audit 2/4" in progress lines (each xdist worker collects all):
    # read once collection is final, so tests that -k or -m deselected are not counted.
    if session.config.getoption("kernel_audit"):
        session.config.stash[_AUDIT_TESTS] = [i.nodeid for i in session.items
                                              if i.get_closest_marker(MARKER) is not None]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("kernel_audit"):
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if item.get_closest_marker(MARKER) is not None:
            item.add_marker(skip)


def _settings_for(request: pytest.FixtureRequest) -> tuple[AuditSettings, dict]:
    markers = list(request.node.iter_markers(MARKER))
    if len(markers) > 1:  # one would silently override the other's settings
        raise pytest.UsageError(f"{request.node.nodeid} has {len(markers)} @pytest.mark.{MARKER} markers (on the test, "
                                "its class or module); give one, with every setting in it")
    marker = markers[0] if markers else None
    overrides = dict(marker.kwargs) if marker else {}
    try:
        from .spec import check_keywords

        # A misspelt keyword is refused when the test is set up, not deep inside the audit.
        check_keywords([k for k in overrides if k not in OPTIONS and k != "compare_fail"],
                       where=f"@pytest.mark.{MARKER}")
        settings = request.config.stash[_SETTINGS].override(overrides)
    except AuditConfigError as exc:
        raise pytest.UsageError(f"@pytest.mark.{MARKER} on {request.node.nodeid}: {exc}") from None
    extra = {k: v for k, v in overrides.items() if k not in OPTIONS}
    return settings, extra


@pytest.fixture
def kernel_audit_settings(request: pytest.FixtureRequest) -> AuditSettings:
    """The audit settings in force for this test (marker > command line > ini > default)."""
    return _settings_for(request)[0]


@pytest.fixture
def kernel_intervention():
    """`kernel_intervention(model, layer, levels, reference=None)` -> KernelIntervention with one factory per level."""
    from .intervention import KernelIntervention

    return KernelIntervention


@pytest.fixture
def subgroup_loaders(kernel_audit_settings: AuditSettings):
    """`subgroup_loaders(dataset, attributes, perturbation)` -> per-subgroup clean/perturbed loaders."""
    from ._devices import resolve_device
    from .evaluation import SubgroupLoaders

    device = resolve_device(kernel_audit_settings.device)
    return lambda data, attributes, perturbation, **kw: SubgroupLoaders(data, attributes, perturbation,
                                                                          device=kw.pop("device", device), **kw)


@pytest.fixture
def causal_effect():
    """`causal_effect(outcomes, reference, **options)` -> {level: Effect}, each with `.assert_below`."""
    from .stats import estimate_effects

    return estimate_effects


@pytest.fixture
def kernel_audit(request: pytest.FixtureRequest, kernel_audit_settings: AuditSettings):
    """`kernel_audit(model, layer, levels, **run_audit_options)` -> AuditResult, recorded for the summary."""
    from .audit import run_audit
    from .execution import RunLedger

    settings, extra = _settings_for(request)
    session: AuditSession = request.config.stash[_SESSION]
    runs: list[dict] = []
    tests = request.config.stash.get(_AUDIT_TESTS, [])
    index = tests.index(request.node.nodeid) + 1 if request.node.nodeid in tests else len(tests)
    position = f" {index}/{len(tests)}" if request.node.nodeid in tests else ""
    progress = progress_for(request.config, position)

    def audit(model, layer, levels, **kwargs):
        __tracebackhide__ = True  # a failure shows the user's test line, not this wrapper
        options = {"seeds": settings.seeds, "threshold": settings.threshold, "rule": settings.rule,
                   "strict": settings.strict,
                   "device": settings.device, "name": request.node.name, "progress": progress,
                   "cache": _variant_cache(request.config, settings), "retrain": settings.retrain,
                   "workers": settings.workers, "executor": settings.executor, "ray_address": settings.ray_address,
                   "ray_options": settings.ray_options, "budget": settings.budget, "ledger": RunLedger(), **extra,
                   **kwargs}
        if options["seeds"] != "auto" and "budget" not in kwargs:
            options["budget"] = None  # a session-wide budget is for seeds="auto" audits; this one has fixed seeds
        compare_fail = options.pop("compare_fail", request.config.getoption("kernel_audit_compare_fail"))
        run = {"result": None, "baseline": None, "error": None}
        runs.append(run)
        started = time.time()
        progress(f"session: audit{position} started: {request.node.nodeid}")
        try:
            audited = run_audit(model, layer, levels, **options)
            session_line(request.config, len(tests) - index, position, time.time() - started, progress)
        except Exception as exc:  # reported as it ran (class, message, what trained), then raised as is
            ledger = options["ledger"]
            run["error"] = error_record(request.node.nodeid, options["name"], options, exc,
                                        ledger.as_dict() if isinstance(ledger, RunLedger) else None)
            raise
        run["result"] = result = audited
        run["baseline"], failure = session.gate({**result.to_dict(), "test": request.node.nodeid}, compare_fail)
        if failure:
            pytest.fail(failure, pytrace=False)
        return result

    yield audit
    for run in runs:
        if run["error"] is None and run["result"] is None:
            continue  # stopped while it ran (Ctrl-C, pytest.exit): the session summary marks it interrupted
        # Recorded at teardown, with the verdict assert_below reached.
        record = run["error"] or {**run["result"].to_dict(run["result"].asserted), "test": request.node.nodeid,
                                  "baseline": run["baseline"]}
        request.node.stash.setdefault(_RECORDS, []).append(json.dumps(record))
        request.node.user_properties.extend(junit_properties(record))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if call.when == "teardown" and _RECORDS in item.stash:
        # A report attribute, not a user property: whole records (example images included) stay out of JUnit XML.
        setattr(report, RECORDS_ATTR, item.stash[_RECORDS])
    if call.when == "call" and report.failed and call.excinfo is not None:
        hide_package_frames(item, call.excinfo, report)


_RECORDS = pytest.StashKey[list]()
_AUDIT_TESTS = pytest.StashKey[list]()
_CACHE = pytest.StashKey[object]()  # the session's VariantCache
_SESSION = pytest.StashKey[AuditSession]()


def _variant_cache(config: pytest.Config, settings: AuditSettings):
    """One cache per session (a VariantCache): --kernel-audit-cache, else kernel-audit/ in pytest's own cache dir."""
    from .execution import VariantCache

    if _CACHE not in config.stash:
        cache = getattr(config, "cache", None)  # absent under -p no:cacheprovider
        root = settings.cache or (cache.mkdir("kernel-audit") if cache is not None else None)
        config.stash[_CACHE] = VariantCache(root or ".kernel-audit-cache")
    return config.stash[_CACHE]


class AuditRecorder:
    """pytest's hooks, handed to the session's AuditSession (reporting/_audit_session.py)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.session = config.stash[_SESSION] = AuditSession(
            config.rootpath, config.getoption("kernel_audit_compare"), config.getoption("kernel_audit_save"),
            config.getoption("kernel_audit_save_merge"))
        self.relay: ProgressRelay | None = None  # made when xdist starts its first worker
        self.detach = attach(progress_for(config, ""))  # the data loaders' decoding progress

    @pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook, on the controller: tell each worker the relay folder
    def pytest_configure_node(self, node) -> None:
        if self.config.getoption("kernel_audit"):
            self.relay = self.relay or ProgressRelay(lines(self.config))
            node.workerinput[RELAY_KEY] = str(self.relay.folder)

    def pytest_unconfigure(self) -> None:
        self.detach()
        if self.relay is not None:
            self.relay.close()

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.session.progress.start(nodeid)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo) -> None:
        # Ctrl-C, pytest.exit, or collection errors (pytest stops with its Interrupted exception).
        self.session.progress.interrupt(str(excinfo.value) or excinfo.typename)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown":
            self.session.progress.finish(report.nodeid)
        if MARKER in report.keywords and (report.when == "call" or not report.passed):
            self.session.outcome(report.nodeid, _outcome(report), report_reason(report), report.when == "call")
        for value in getattr(report, RECORDS_ATTR, ()):
            self.session.add(value)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        lines = self.session.summary()
        if lines:
            terminalreporter.write_sep("=", "kernel audit summary")
            for line in lines:
                terminalreporter.write_line(line)
        notes = self.session.notes
        if notes and not lines:
            terminalreporter.write_sep("=", "kernel audit")
        for note in notes:
            terminalreporter.write_line(f"kernel-audit: {note}", yellow=True, bold=True)
        for line in notes.done:
            terminalreporter.write_line(f"kernel-audit: {line}")

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # Runs before pytest's terminal summary, which then shows the session's notes.
        if hasattr(self.config, "workerinput"):
            return  # xdist workers report to the controller, which writes one merged report
        if self.relay is not None:
            self.relay.close()  # the workers are done: their last lines go before the summary
            self.relay = None
        stopped = session.shouldfail or session.shouldstop
        notes = self.session.finish(self.config.stash[_SETTINGS].as_dict(), exitstatus == pytest.ExitCode.INTERRUPTED,
                                    stopped if isinstance(stopped, str) else "", getattr(session, "testscollected", 0))
        if notes.as_errors and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # -W error::ReportWarning: fail, without a traceback


def _outcome(report: pytest.TestReport) -> str:
    """A marked test's pytest outcome: the call's, or a setup that failed or skipped (then there is no call)."""
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.when == "call":
        return report.outcome
    return "skipped" if report.skipped else "error"
