"""Stored state never lends another model's numbers, never hangs an audit, and the caller's data never changes
(issue 34, items 2 to 5). Each test runs real tiny audits on a shared cache and checks the numbers against
an audit on a fresh one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from contextlib import contextmanager

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from pytest_kernelbias import Perturbation, run_audit
from pytest_kernelbias.errors import CacheWarning, PerturbationError
from pytest_kernelbias.execution._records import seal, sha256_file, unseal
from pytest_kernelbias.training import train

from .conftest import tiny_cnn
from .test_cache import TRAIN
from .test_cache_damage import cache_dir, cold, numbers, rerun  # noqa: F401  (fixtures)


@contextmanager
def no_hang(seconds: int = 120):
    """Fail instead of waiting forever: a blocked open() of a FIFO is interrupted by the alarm."""
    def stop(*_):
        raise TimeoutError(f"blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def fifo_in_place_of(path):
    path.unlink()
    os.mkfifo(path)


@pytest.mark.parametrize("name", ["meta.json", "weights.safetensors"])
def test_a_fifo_in_place_of_an_entry_file_is_retrained_not_waited_on(cold, cache_dir, name):  # noqa: F811
    fifo_in_place_of(sorted(cache_dir.glob(f"*/*/{name}"))[0])
    with no_hang():
        warm = rerun(cache_dir, "FIFO")
    assert warm.settings["trained"] == 1 and numbers(warm) == numbers(cold[1])


@pytest.mark.parametrize("suffix", [".json", ".safetensors"])
def test_a_fifo_in_place_of_an_evaluation_is_re_evaluated(cold, cache_dir, suffix):  # noqa: F811
    fifo_in_place_of(sorted(cache_dir.glob("*/*/eval-*.json"))[0].with_suffix(suffix))
    with no_hang():
        warm = rerun(cache_dir, "cached evaluation .* unusable")
    assert warm.settings["trained"] == 0 and numbers(warm) == numbers(cold[1])


def _forge(path, change):
    record = unseal(path)
    change(record)
    path.write_text(seal(record))  # a valid seal: only the recorded fingerprints can tell


def test_an_entry_recorded_for_another_model_is_retrained_not_read(cold, cache_dir):  # noqa: F811
    meta = sorted(cache_dir.glob("*/*/meta.json"))[0]
    _forge(meta, lambda r: r["spec"]["model"].update(behaviour="0" * 64))
    warm = rerun(cache_dir, "records another model than this audit.s")
    assert warm.settings["trained"] == 1 and numbers(warm) == numbers(cold[1])


def test_an_evaluation_recorded_for_other_conditions_is_measured_again(cold, cache_dir):  # noqa: F811
    _forge(sorted(cache_dir.glob("*/*/eval-*.json"))[0], lambda r: r["spec"].update(conditions=[]))
    warm = rerun(cache_dir, "records another conditions than this audit.s")
    assert warm.settings["trained"] == 0 and numbers(warm) == numbers(cold[1])


def test_weights_of_another_shape_under_the_key_are_retrained(cold, cache_dir):  # noqa: F811
    meta = sorted(cache_dir.glob("*/*/meta.json"))[0]
    save_file(nn.Linear(3, 2).state_dict(), str(meta.parent / "weights.safetensors"))
    _forge(meta, lambda r: r.update(sha256=sha256_file(meta.parent / "weights.safetensors")))
    for stale in meta.parent.glob("eval-*"):  # the evaluation too: else it is read before the weights load
        stale.unlink()
    warm = rerun(cache_dir, "other names or shapes than this audit's model.*retraining")
    assert warm.settings["trained"] == 1 and numbers(warm) == numbers(cold[1])


def test_an_edited_or_fifo_lr_probe_memo_is_measured_again(tmp_path):
    kw = {**TRAIN, "lr_probe": True, "workers": 1}
    first = run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path, **kw)
    memo = next((tmp_path / "decisions").glob("lr-probe-*.json"))
    record = json.loads(memo.read_text())
    record["lr"] = 0.5
    memo.write_text(json.dumps(record))  # a hand edit, not resealed
    edited = run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path, **kw)
    assert edited.settings["lr_probe"]["from_cache"] is False
    assert edited.settings["lr_probe"]["lr"] == first.settings["lr_probe"]["lr"] != 0.5
    fifo_in_place_of(memo)
    with no_hang():
        again = run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path, **kw)
    assert again.settings["lr_probe"]["lr"] == first.settings["lr_probe"]["lr"]


SCRIPT = textwrap.dedent("""
    import json, sys
    import torch
    from pytest_kernelbias import TrainConfig, run_audit, synthfaces
    from torch import nn

    def make(width):
        return lambda: nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                     nn.Flatten(), nn.Linear(width, 2))

    result = run_audit(make(8), "0", [3, 5], data=synthfaces(200, 0, "planted"),
                       test_data=synthfaces(120, 0, "planted", split="test"),
                       train_config=TrainConfig(epochs=1, batch_size=32), seeds=2, spectral_cutoff=None,
                       require_learning=False, progress=None, workers=1, cache=sys.argv[1])
    print(json.dumps({"trained": result.settings["trained"], "from_cache": result.settings["from_cache"],
                      "differences": list(result.effect.differences)}))
""")


@pytest.mark.slow
def test_two_fresh_processes_on_one_cache_hit_every_entry_of_an_unchanged_audit(tmp_path):
    script = tmp_path / "audit.py"
    script.write_text(SCRIPT)
    runs = []
    for seed in ("1", "2"):  # another string-hash seed per process: keys must not depend on it
        out = subprocess.run([sys.executable, str(script), str(tmp_path / "cache")], capture_output=True, text=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    assert runs[0]["trained"] == 4 and runs[1] == {**runs[0], "trained": 0, "from_cache": 4}


# ---------------------------------------------------------------- the caller's data never changes
class HalveInPlace(Perturbation):
    def apply(self, x):
        return x.mul_(0.5)


class Halve(Perturbation):
    def apply(self, x):
        return x * 0.5


class HalveOwnCall(Perturbation):
    def __call__(self, x):
        return x.mul_(0.5)


def test_a_perturbation_writing_into_its_input_leaves_the_test_images_and_numbers_as_a_pure_one(tmp_path):
    test = TRAIN["test_data"]
    before = test.images.clone()
    kw = {**TRAIN, "workers": 1, "placebos": ()}
    inplace = run_audit(tiny_cnn, "0", [3, 5], perturbation=HalveInPlace(), cache=tmp_path, **kw)
    pure = run_audit(tiny_cnn, "0", [3, 5], perturbation=Halve(), **kw)
    assert torch.equal(test.images, before)
    assert list(inplace.effect.differences) == list(pure.effect.differences)
    assert [r["perturbed"] for r in inplace.outcomes.as_records()] == \
        [r["perturbed"] for r in pure.outcomes.as_records()]


def test_a_perturbation_whose_own_call_writes_into_its_input_is_refused_before_training():
    with pytest.raises(PerturbationError, match="writes into the images it is given"):
        run_audit(tiny_cnn, "0", [3, 5], perturbation=HalveOwnCall(), **TRAIN)


def test_a_trainer_writing_into_its_data_changes_neither_the_callers_nor_the_next_variants(tmp_path):
    data, config = TRAIN["data"], TRAIN["train_config"]
    before = data.images.clone()

    def darkening(model, d, seed):
        d.images.mul_(0.5)  # an in-place augmentation
        return train(model, d, seed, config)

    def darkened(model, d, seed):
        return train(model, type(d)(d.images * 0.5, d.labels, d.attributes, d.name), seed, config)

    kw = {**TRAIN, "workers": 1, "placebos": ()}
    got = run_audit(tiny_cnn, "0", [3, 5], trainer=darkening, cache=tmp_path, **kw)
    assert torch.equal(data.images, before)
    assert numbers(got) == numbers(run_audit(tiny_cnn, "0", [3, 5], trainer=darkened, **kw))


class ScaleInPlace(nn.Module):
    def forward(self, x):
        return x.mul_(0.5)


def test_a_model_writing_into_its_input_leaves_the_callers_images_alone():
    before = {k: TRAIN[k].images.clone() for k in ("data", "test_data")}

    def model():
        return nn.Sequential(ScaleInPlace(), *tiny_cnn())

    run_audit(model, "1", [3, 5], **{**TRAIN, "workers": 1, "placebos": ()})
    assert all(torch.equal(TRAIN[k].images, before[k]) for k in before)


# ---------------------------------------------------------------- shared cache == fresh cache
def _wide(width):
    return lambda: nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(width, 2))


class Private(Perturbation):
    def __init__(self, f):
        self._f = f

    def apply(self, x):
        return x * self._f


@pytest.mark.slow
@pytest.mark.parametrize("first, second", [
    ({"model": _wide(8)}, {"model": _wide(16)}),
    ({"model": tiny_cnn(), "layer": "0"}, {"model": nn.Sequential(*[nn.Tanh() if isinstance(m, nn.ReLU) else m
                                                                   for m in tiny_cnn()]), "layer": "0"}),
    ({"perturbation": Private(0.5)}, {"perturbation": Private(0.25)}),
], ids=["parametrized-lambda", "module-instance-activation", "private-perturbation-parameter"])
def test_a_changed_audit_on_a_shared_cache_reports_what_a_fresh_cache_reports(tmp_path, first, second):
    kw = {**TRAIN, "workers": 1, "placebos": ()}

    def audit(change, cache):
        return run_audit(change.get("model", tiny_cnn), change.get("layer", "0"), [3, 5],
                         **{**kw, **{k: v for k, v in change.items() if k not in ("model", "layer")}}, cache=cache)

    audit(first, tmp_path / "shared")
    shared, fresh = audit(second, tmp_path / "shared"), audit(second, tmp_path / "fresh")
    assert numbers(shared) == numbers(fresh)
    assert list(shared.effect.differences) == list(fresh.effect.differences)
    if "perturbation" in first:
        assert shared.settings["trained"] == 0  # the same models: only their predictions are new
    else:
        assert shared.settings["trained"] == fresh.settings["trained"] == 4


def test_cache_warnings_are_cache_warnings():
    from pytest_kernelbias.errors import TrainerKeyWarning

    assert issubclass(TrainerKeyWarning, CacheWarning)


def test_the_report_names_the_fingerprints_its_numbers_belong_to():
    from pytest_kernelbias import KernelIntervention
    from pytest_kernelbias.fingerprints import model_fingerprint, perturbation_fingerprint, perturbation_probe

    result = run_audit(tiny_cnn, "0", [3, 5], perturbation=Halve(), **{**TRAIN, "workers": 1, "placebos": ()})
    reported = json.loads(json.dumps(result.settings["fingerprints"]))  # as the JSON report holds it
    def factory_at_seed_0():  # what the factory builds, before any intervention: the same whichever level is k0
        torch.manual_seed(0)
        return tiny_cnn()

    assert reported["model"] == model_fingerprint(factory_at_seed_0, TRAIN["data"].images)
    assert KernelIntervention(tiny_cnn, "0", [5, 3]).fingerprint(TRAIN["data"].images) == reported["model"]
    probe = perturbation_probe(TRAIN["test_data"].images)
    assert reported["conditions"] == json.loads(json.dumps({"Halve()": perturbation_fingerprint(Halve(), probe)}))
    assert reported["trainer"] == "default" and reported["cache_key"] is None


def test_only_regular_files_are_read_and_nothing_waits(tmp_path):
    import socket

    from pytest_kernelbias._stored import NotRegularFile, read_memo, read_regular, write_memo

    (tmp_path / "file").write_bytes(b"{}")
    (tmp_path / "link").symlink_to(tmp_path / "file")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "socket"))
    with no_hang(30):
        assert read_regular(tmp_path / "file") == b"{}"
        assert read_regular(tmp_path / "link", follow_links=True) == b"{}"  # a dataset's image may be a link
        for name, kind in (("link", "symbolic link"), ("fifo", "FIFO"), ("folder", "folder"), ("socket", "socket")):
            with pytest.raises(NotRegularFile, match=kind):
                read_regular(tmp_path / name)
    server.close()
    write_memo(tmp_path / "memos" / "m.json", {"lr": 0.1})
    assert read_memo(tmp_path / "memos" / "m.json") == {"lr": 0.1}
    (tmp_path / "linked").symlink_to(tmp_path / "memos", target_is_directory=True)
    assert read_memo(tmp_path / "linked" / "m.json") is None  # a memo folder linked out of the cache


PARAMETRIZED = '''
import pytest
from torch import nn
from pytest_kernelbias import TrainConfig, synthfaces

def net(width):
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, 2))

@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.kernel_audit(seeds=2, threshold=1.0, rule="estimate")
def test_width(kernel_audit, width):
    kernel_audit(lambda: net(width), layer="0", levels=[3, 5], data=synthfaces(200, 0, "planted"),
                 test_data=synthfaces(120, 0, "planted", split="test"), train_config=TrainConfig(epochs=1),
                 spectral_cutoff=None, require_learning=False, placebos=())
'''


@pytest.mark.slow
def test_a_parametrized_lambda_under_pytest_reports_each_widths_own_numbers(pytester):
    """The adversarial pass's first case, through the plugin: one cache, `width` in [8, 16] by parametrize."""
    def audits(widths, cache):
        pytester.makepyfile(test_widths=PARAMETRIZED.replace("WIDTHS", repr(widths)))
        result = pytester.runpytest_subprocess("--kernel-audit", "--kernel-audit-cache", cache,
                                               "--kernel-audit-json", "report.json", "-p", "no:cacheprovider")
        result.assert_outcomes(passed=len(widths))
        report = json.loads((pytester.path / "report.json").read_text())["audits"]
        return {a["test"].split("[")[1].rstrip("]"): a for a in report}

    shared, fresh = audits([8, 16], "shared"), audits([16], "fresh")
    assert shared["16"]["settings"]["trained"] == 4  # its own models, not width 8's
    assert shared["16"]["effects"] == fresh["16"]["effects"]
    assert shared["8"]["settings"]["fingerprints"]["model"] != shared["16"]["settings"]["fingerprints"]["model"]
