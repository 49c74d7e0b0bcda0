import json
import re

import pytest

AUDIT_TEST = '''
import pytest
from torch import nn
from pytest_kernelbias import LowPass, TrainConfig, synthfaces

def cnn():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2))

@pytest.mark.kernel_audit(seeds=2, threshold=0.0, rule="estimate")
def test_tiny_audit(kernel_audit):
    result = kernel_audit(cnn, layer="0", levels=[3, 7], data=synthfaces(600, 0, "planted"),
                          test_data=synthfaces(300, 0, "planted", split="test"), perturbation=LowPass(0.4),
                          train_config=TrainConfig(epochs=3, batch_size=32), device="cpu")
    result.assert_below()
'''

SETTINGS_TEST = '''
import pytest

@pytest.mark.kernel_audit(rule="upper")
def test_settings(kernel_audit_settings):
    s = kernel_audit_settings
    print("SETTINGS", s.seeds, s.threshold, s.rule)
'''


def test_audits_are_skipped_without_the_flag_and_the_reason_names_it(pytester):
    pytester.makepyfile(AUDIT_TEST)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*run pytest with --kernel-audit*"])


def test_marker_is_registered_so_strict_markers_is_clean(pytester):
    pytester.makepyfile(SETTINGS_TEST)
    result = pytester.runpytest("--strict-markers", "--markers")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["@pytest.mark.kernel_audit(**overrides)*"])


@pytest.mark.slow
def test_failing_audit_prints_table_and_summary_and_writes_json(pytester):
    pytester.makepyfile(AUDIT_TEST)
    # A subprocess: torch operators first registered inside an in-process run cannot be registered again by
    # later tests in this process, once pytester has dropped the modules that run imported.
    result = pytester.runpytest_subprocess("--kernel-audit", "--kernel-audit-json", "out/report.json", "--tb=short")
    result.assert_outcomes(failed=1)
    # The failure is the test's own line and the audit's table: no frame of the plugin or of assert_below.
    assert re.findall(r"^(\S+\.py):\d+: in ", result.stdout.str(), re.M) == ["test_failing_audit_prints_table_and_"
                                                                         "summary_and_writes_json.py"]
    result.stdout.fnmatch_lines([
        "*kernel audit failed: kernel_size=7 vs kernel_size=3: spread of drop*",
        "*estimate rule: fails when |estimate| > threshold;*> threshold 0 by*",
        "*level*subgroup*clean*perturbed*drop*(LowPass(0.4))",
        "*kernel_size=3*skin_tone=dark*±*",
        "*paired change in drop at kernel_size=7 vs kernel_size=3, largest first: skin_tone=*",
        "*effect*95% CI*p=*n=2 seeds*",
        "*the gap itself at kernel_size=3: *",
        "*kernel audit summary*",
        "  level k*perturbation*effect*CI*p adj*verdict*gap at k0 [[]CI[]]*clean acc k",
        "test_failing_audit_prints_table_and_summary_and_writes_json.py::test_tiny_audit",
        "  failed; k0 = kernel_size=3 (clean acc *, majority class *); threshold 0, rule estimate; 95% CI (test-set*",
        "  kernel_size=7*LowPass(0.4)*fail*",
        "verdict: pass = within | undecided = *| warn = *| fail = *| error = raised",
    ])
    # Only the plugin's own section: pytest's short summary after it follows the terminal width (COLUMNS).
    summary = result.stdout.str().split("kernel audit summary")[1].split("\n=")[0].splitlines()[1:]
    assert len(summary) >= 5 and max(len(line) for line in summary) <= 120
    result.stdout.fnmatch_lines(["*[[]kernel-audit 1/1[]] setup: 4 models (2 levels x 2 runs), 4 to train and 0 in the "
                                 "cache, on cpu;*first estimate *s of training from one timed step per level",
                                 "*[[]kernel-audit 1/1[]] test_tiny_audit kernel_size=3 seed 1/2 trained+evaluated*"])
    report = json.loads((pytester.path / "out" / "report.json").read_text())
    assert report["schema_version"] == 1
    (audit,) = report["audits"]
    assert audit["verdict"] == "fail" and audit["test_outcome"] == "failed"
    assert len(audit["outcomes"]) == 2 * 2 * 2  # levels x seeds x subgroups


def test_marker_overrides_command_line_which_overrides_ini(pytester):
    pytester.makeini("[pytest]\nkernel_audit_seeds = 3\nkernel_audit_threshold = 0.2\nkernel_audit_rule = lower\n")
    pytester.makepyfile(SETTINGS_TEST)
    result = pytester.runpytest("--kernel-audit", "--kernel-audit-threshold", "0.1", "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*SETTINGS 3 0.1 upper*"])


def test_report_header_shows_active_settings(pytester):
    pytester.makeini("[pytest]\nkernel_audit_seeds = 4\n")
    pytester.makepyfile(SETTINGS_TEST)
    result = pytester.runpytest("--kernel-audit-device", "cpu")
    result.stdout.fnmatch_lines(["kernel-audit defaults (a marker overrides them): seeds=4, threshold=0.05, "
                                 "rule=evidence, device=cpu, workers=auto x 1 torch thread, audits off*"])
    result = pytester.runpytest("--kernel-audit-device", "cpu", "--kernel-audit-strict")
    result.stdout.fnmatch_lines(["kernel-audit defaults (a marker overrides them): seeds=4, threshold=0.05, "
                                 "rule=evidence, strict, device=cpu, *"])


def test_header_names_the_ray_cluster_when_audits_train_there(pytester):
    pytester.makepyfile(SETTINGS_TEST)
    result = pytester.runpytest("--kernel-audit-executor", "ray", "--kernel-audit-ray-address", "10.0.0.5:6379")
    result.stdout.fnmatch_lines(["kernel-audit defaults *executor=ray, ray_address=10.0.0.5:6379*"])


@pytest.mark.slow
def test_executor_ray_trains_on_a_local_ray_instance_and_reports_it(pytester):
    pytest.importorskip("ray", reason="Ray is in the [test] and [ray] extras")
    pytester.makepyfile(AUDIT_TEST.replace("result.assert_below()", "pass"))
    result = pytester.runpytest_subprocess("--kernel-audit", "--kernel-audit-executor", "ray",
                                           "--kernel-audit-json", "audit.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["1 audit test; models: 4 trained, 0 loaded from the cache, 4 evaluated*"])
    audit = json.loads((pytester.path / "audit.json").read_text())["audits"][0]
    assert audit["settings"]["executor"] == "ray" and audit["settings"]["trained"] == 4


@pytest.mark.parametrize("args,message", [
    (["--kernel-audit-seeds", "1"], "at least 2 seeds*seeds=N on @pytest.mark.kernel_audit or run_audit, or "
                                    "--kernel-audit-seeds=N*"),
    (["--kernel-audit-seeds", "many"], "--kernel-audit-seeds='many' is not a valid int*"),
    (["--kernel-audit-rule", "mean"], "rule must be one of*"),
    (["--kernel-audit-device", "gpu0"], "device 'gpu0' is not a torch device*"),
    (["--kernel-audit-executor", "dask"], "executor must be one of*"),
])
def test_bad_options_are_usage_errors_that_name_the_fix(pytester, args, message):
    # The device and executor checks import torch, so they run once audits are on (--kernel-audit), still at startup.
    pytester.makepyfile(SETTINGS_TEST)
    result = pytester.runpytest("--kernel-audit", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}"])


def test_bad_marker_value_is_reported_against_the_test(pytester):
    pytester.makepyfile(SETTINGS_TEST.replace('rule="upper"', "seeds=1"))
    result = pytester.runpytest("--kernel-audit")
    result.stdout.fnmatch_lines(
        ["*kernel_audit on test_bad_marker_value_is_reported_against_the_test.py::test_settings*at least 2 seeds*"])


@pytest.mark.slow
def test_second_run_loads_variants_from_the_cache_and_says_so(pytester):
    pytester.makepyfile(AUDIT_TEST)
    # Subprocesses: in-process reruns would re-import torch submodules that register operators once only.
    first = pytester.runpytest_subprocess("--kernel-audit", "--kernel-audit-cache", "variants")
    first.stdout.fnmatch_lines(["1 audit test; models: 4 trained, 0 loaded from the cache, 4 evaluated; cache *"])
    second = pytester.runpytest_subprocess("--kernel-audit", "--kernel-audit-cache", "variants")
    second.stdout.fnmatch_lines(["*loaded from cache+evaluated*"])
    second.stdout.fnmatch_lines(["1 audit test; models: 0 trained, 4 loaded from the cache, 0 evaluated; cache *"])
    third = pytester.runpytest_subprocess("--kernel-audit", "--kernel-audit-cache", "variants",
                                          "--kernel-audit-retrain")
    third.stdout.fnmatch_lines(["1 audit test; models: 4 trained, 0 loaded from the cache, 4 evaluated; cache *"])


@pytest.mark.slow
def test_xdist_workers_merge_into_one_summary_and_one_json_report(pytester):
    pytest.importorskip("xdist")
    second = AUDIT_TEST.replace("def test_tiny_audit", "def test_tiny_audit_again")
    pytester.makepyfile(test_one=AUDIT_TEST, test_two=second)
    result = pytester.runpytest_subprocess("-n", "2", "--kernel-audit", "--kernel-audit-json", "report.json",
                                           "--kernel-audit-cache", "variants")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*kernel audit summary*"])
    result.stdout.fnmatch_lines(["test_one.py::test_tiny_audit", "  failed; k0 = kernel_size=3*",
                                 "  kernel_size=7*LowPass(0.4)*fail*"])
    result.stdout.fnmatch_lines(["test_two.py::test_tiny_audit_again", "  failed; k0 = kernel_size=3*",
                                 "  kernel_size=7*LowPass(0.4)*fail*"])
    report = json.loads((pytester.path / "report.json").read_text())
    assert sorted(a["test"] for a in report["audits"]) == ["test_one.py::test_tiny_audit",
                                                           "test_two.py::test_tiny_audit_again"]
    # Both tests audit the same variants: the shared cache means they agree exactly.
    effects = {a["test"]: a["effects"][0]["effect"] for a in report["audits"]}
    assert len(set(effects.values())) == 1


@pytest.mark.slow
def test_baseline_save_with_junit_properties_compare_and_regression_failure(pytester):
    pytester.makepyfile(AUDIT_TEST.replace("result.assert_below()", "pass"))
    common = ("--kernel-audit", "--kernel-audit-cache", "variants")
    saved = pytester.runpytest_subprocess(*common, "--kernel-audit-save", "main", "--junitxml", "junit.xml")
    saved.assert_outcomes(passed=1)
    assert (pytester.path / ".kernel-audit" / "baselines" / "main.json").exists()
    xml = (pytester.path / "junit.xml").read_text()
    assert 'name="kernel_audit[kernel_size=7 vs kernel_size=3 | LowPass(0.4)]"' in xml
    assert '"examples"' not in xml and len(xml) < 20_000  # the whole record (images too) stays out of the XML
    assert re.search(r'value="effect=[+-]\d\.\d{4} ci=\[[+-]\d\.\d{4}, [+-]\d\.\d{4}\] p=[\d.e-]+ p_adj=[\d.e-]+ '
                     r'verdict=(pass|warn|fail)"', xml)
    # The newest baseline (no name given) with a negative tolerance, which turns "no change" into a regression:
    # the comparison line and the failing path end to end, in one run.
    strict = pytester.runpytest_subprocess(*common, "--kernel-audit-compare", "--kernel-audit-compare-fail", "-5")
    strict.assert_outcomes(failed=1)
    unwrapped = re.sub(r"\n {4}", "", strict.stdout.str())  # a long line continues on indented lines
    assert re.search(r"^baseline: \S*test_tiny_audit \| kernel_size=7 vs kernel_size=3 \| LowPass\(0\.4\): effect .*"
                     r"\(\|effect\| change \+0\.0000\)$", unwrapped, re.M), unwrapped
    strict.stdout.fnmatch_lines(["*kernel audit regression against baseline*main.json*", "*beyond both intervals*"])
    # The levels changed since the baseline: nothing matches, the summary says why, and a gate that compared
    # nothing fails instead of passing.
    pytester.makepyfile(AUDIT_TEST.replace("result.assert_below()", "pass").replace("[3, 7]", "[3, 5]"))
    gated = pytester.runpytest_subprocess(*common, "--kernel-audit-compare", "main", "--kernel-audit-compare-fail", "0")
    gated.assert_outcomes(failed=1)
    unwrapped = re.sub(r"\n {4}", "", gated.stdout.str())
    assert re.search(r"^baseline: no match: \S*test_tiny_audit: 1 of 1 effects have no match in baseline main.json "
                     r"\(the levels or perturbations changed\): now \['kernel_size=5 vs kernel_size=3 \| "
                     r"LowPass\(0.4\)'\], the baseline has \['kernel_size=7", unwrapped, re.M), unwrapped
    gated.stdout.fnmatch_lines(["*--kernel-audit-compare-fail 0: nothing of this audit matches baseline*"])


def test_a_misspelt_marker_keyword_is_a_usage_error_listing_the_valid_names(pytester):
    pytester.makepyfile(SETTINGS_TEST.replace('rule="upper"', "seed=4"))
    result = pytester.runpytest("--kernel-audit")
    result.stdout.fnmatch_lines(["*@pytest.mark.kernel_audit got an unknown setting 'seed'; did you mean 'seeds'?*"
                                 "valid settings are*threshold*"])
    result.assert_outcomes(errors=1)


def test_help_shows_one_default_per_option_and_typed_ini_settings(pytester):
    result = pytester.runpytest("--help")
    out = result.stdout.str()
    text = " ".join(out.split())
    # The option group runs from its title to the blank line that ends it.
    group = " ".join(out.split("causal kernel-size bias audits:")[1].split("\n\n")[0].split())
    options = re.split(r" (?=--kernel-audit)", " " + group)[1:]
    assert len(options) == 20
    for option in options:
        assert option.count("(default:") == 1, option
    assert "folder of trained variants (default: kernel-audit/ in pytest's cache dir; ini: kernel_audit_cache)" in text
    expected = {"seeds": "int | 'auto'", "threshold": "float", "retrain": "bool", "workers": "int | 'auto'",
                "rule": "string", "strict": "bool"}
    for name, kind in expected.items():
        since = {"seeds": (9, 2), "threshold": (8, 4), "workers": (9, 2)}.get(name, (7, 0))
        kind = kind if pytest.version_tuple[:2] >= since else "string"
        assert f"kernel_audit_{name} ({kind}):" in text


def test_typed_ini_settings_are_read_and_a_bad_one_names_the_setting(pytester):
    pytester.makeini("[pytest]\nkernel_audit_seeds = 3\nkernel_audit_threshold = 0.2\nkernel_audit_retrain = yes\n"
                     "kernel_audit_workers = 2\n")
    pytester.makepyfile(SETTINGS_TEST.replace('print("SETTINGS", s.seeds, s.threshold, s.rule)',
                                              'print("SETTINGS", s.seeds, s.threshold, s.retrain, s.workers)'))
    result = pytester.runpytest("--kernel-audit", "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*SETTINGS 3 0.2 True 2*"])
    pytester.makeini("[pytest]\nkernel_audit_workers = auto\n")
    result = pytester.runpytest("--kernel-audit", "-s")
    result.stdout.fnmatch_lines(["*SETTINGS auto 0.05 False None*"])
    pytester.makeini("[pytest]\nkernel_audit_seeds = many\n")
    result = pytester.runpytest("--kernel-audit")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*kernel_audit_seeds*many*seeds per intervention level*"])


@pytest.mark.slow
def test_an_undecided_audit_warns_by_default_and_fails_under_kernel_audit_strict(pytester):
    # Two seeds: a t(1) interval far wider than the threshold, so the verdict is undecided.
    pytester.makepyfile(AUDIT_TEST.replace('seeds=2, threshold=0.0, rule="estimate"', 'seeds=2, threshold=0.05'))
    result = pytester.runpytest_subprocess("--kernel-audit", "-W", "default")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*KernelAuditWarning*undecided: the 95.00% CI*reaches both within and beyond*",
                                 "*kernel_size=7*LowPass(0.4)*undecided*"])
    result = pytester.runpytest_subprocess("--kernel-audit", "--kernel-audit-strict")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*AuditFailure: test_tiny_audit: strict: 1 effect(s) not settled within the "
                                 "threshold 0.05*"])


@pytest.mark.slow
def test_progress_counts_only_the_audit_tests_that_will_run(pytester):
    second = AUDIT_TEST[AUDIT_TEST.index("@pytest.mark.kernel_audit"):].replace("test_tiny_audit", "test_other_audit")
    pytester.makepyfile(AUDIT_TEST + "\n" + second)
    result = pytester.runpytest("--kernel-audit", "-p", "no:cacheprovider", "-k", "other", "-s")
    result.stdout.fnmatch_lines(["*[[]kernel-audit 1/1[]] setup:*"])  # not 2/2: test_tiny_audit was deselected
    assert "kernel-audit 2/2" not in result.stdout.str() and "1/2]" not in result.stdout.str()
