"""Progress everywhere: lines from xdist workers reach the controller's terminal while the audit runs, the data
loaders say how fast they decode, and the first time estimate says it is timing before it starts."""

from __future__ import annotations

import logging
import re

import pytest

from pytest_kernelbias.data import _files, load_utkface
from pytest_kernelbias.reporting._relay import LOGGER, ProgressRelay, attach, worker_writer
from tests.test_faces import make_utkface
from tests.test_plugin import AUDIT_TEST


def test_the_relay_shows_each_workers_complete_lines_once_and_removes_its_folder():
    shown: list[str] = []
    relay = ProgressRelay(shown.append)
    relay._stop.set()  # polled by hand below, so the test does not race the thread
    relay._thread.join()
    one, two = worker_writer(str(relay.folder), "gw0"), worker_writer(str(relay.folder), "gw1")
    one("[gw0] setup: 4 models")
    two("[gw1] setup: 2 models\nsecond half")  # a message with a newline stays one line
    with open(relay.folder / "gw0.log", "a") as fh:
        fh.write("[gw0] half a li")  # a line still being written is not shown yet
    relay.poll()
    assert shown == ["[gw0] setup: 4 models", "[gw1] setup: 2 models second half"]
    with open(relay.folder / "gw0.log", "a") as fh:
        fh.write("ne\n")
    one("[gw0] done")
    relay.poll()
    relay.poll()
    assert shown[2:] == ["[gw0] half a line", "[gw0] done"]
    relay.close()
    assert not relay.folder.exists() and len(shown) == 4


def test_a_worker_whose_folder_is_gone_loses_its_lines_without_an_error(tmp_path):
    worker_writer(str(tmp_path / "absent"), "gw3")("a line")  # no exception: progress is best effort


@pytest.mark.filterwarnings("ignore::pytest_kernelbias.errors.DatasetWarning")  # the folder's badly named files
def test_a_long_decode_logs_its_rate_and_finish(tmp_path, monkeypatch, caplog):
    root = make_utkface(tmp_path / "utk")
    files = len(list(root.iterdir()))
    monkeypatch.setattr(_files, "PROGRESS_SECONDS", 0.0)  # every file is "long": one line per file
    with caplog.at_level(logging.INFO, logger="pytest_kernelbias.data"):
        decodable = len(load_utkface(root, min_group_size=0))  # every well-named file decodes
    lines = [r.getMessage() for r in caplog.records if r.name == "pytest_kernelbias.data"]
    counts = [int(m.group(1)) for line in lines if (m := re.search(r"decoded (\d+)/(\d+) files", line))]
    assert counts == list(range(1, decodable))  # before each but the last file; then the finish line
    assert re.fullmatch(rf"data: utkface: decoded {decodable} files in \d+s \(\d+ files/s\)", lines[-1])
    assert all(f"/{decodable} files, " in line and "files/s, about " in line for line in lines[:-1])
    assert decodable <= files


@pytest.mark.filterwarnings("ignore::pytest_kernelbias.errors.DatasetWarning")
def test_a_short_decode_says_nothing(tmp_path, caplog):
    root = make_utkface(tmp_path / "utk")
    with caplog.at_level(logging.INFO, logger="pytest_kernelbias.data"):
        load_utkface(root, min_group_size=0)
    assert not [r for r in caplog.records if r.name == "pytest_kernelbias.data"]


def test_decode_lines_compute_rate_and_time_left():
    assert _files.decode_line("utkface", 300, 1200, 2.0) == ("data: utkface: decoded 300/1200 files, 150 files/s, "
                                                             "about 6s left")
    assert _files.decode_line("utkface", 1200, 1200, 8.0) == "data: utkface: decoded 1200 files in 8s (150 files/s)"


def test_attach_shows_the_package_loggers_records_and_detach_restores_it():
    logger = logging.getLogger(LOGGER)
    level, shown = logger.level, []
    detach = attach(shown.append)
    logging.getLogger("pytest_kernelbias.data").info("data: x: decoded 3 files in 1s (3 files/s)")
    logging.getLogger("pytest_kernelbias.data").debug("not shown")
    detach()
    logging.getLogger("pytest_kernelbias.data").info("after detach")
    assert shown == ["data: x: decoded 3 files in 1s (3 files/s)"] and logger.level == level


LOADING_TEST = '''
from pytest_kernelbias.data import _files, load_utkface

def test_load():
    _files.PROGRESS_SECONDS = 0.0
    assert len(load_utkface("utk", min_group_size=0)) > 0
'''


@pytest.mark.parametrize("args, prefix", [((), "[[]kernel-audit[]]"),
                                          pytest.param(("-n", "2", "--kernel-audit"), "[[]kernel-audit gw?[]]",
                                                       marks=pytest.mark.slow)])  # xdist's workers import torch
def test_the_plugin_shows_decoding_progress_past_capture_and_from_xdist_workers(pytester, args, prefix):
    if args:
        pytest.importorskip("xdist")
    make_utkface(pytester.path / "utk")
    pytester.makepyfile(LOADING_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"{prefix} data: utkface: decoded * files in *s (* files/s)"])


@pytest.mark.slow
def test_xdist_workers_audits_report_start_models_and_end_while_they_run(pytester, monkeypatch):
    pytest.importorskip("xdist")
    monkeypatch.setenv("TMPDIR", str(pytester.mkdir("tmp")))  # where the relay's folder goes, to see it removed
    pytester.makepyfile(test_one=AUDIT_TEST, test_two=AUDIT_TEST.replace("test_tiny_audit", "test_tiny_audit_b"))
    result = pytester.runpytest_subprocess("-n", "2", "--kernel-audit", "--kernel-audit-cache", "variants")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    for test in ("test_one.py::test_tiny_audit", "test_two.py::test_tiny_audit_b"):
        assert re.search(rf"\[kernel-audit gw\d [12]/2\] session: audit [12]/2 started: {re.escape(test)}", out)
    assert len(re.findall(r"\[kernel-audit gw\d [12]/2\] setup: timing 4 training steps", out)) == 2
    assert len(re.findall(r"\[kernel-audit gw\d [12]/2\] .*\+evaluated", out)) >= 4  # 4 models, one of each trains
    assert len(re.findall(r"\[kernel-audit gw\d [12]/2\] session: audit [12]/2 done in \d+s", out)) == 2
    assert out.index("done in") < out.index("kernel audit summary")  # shown as it ran, not after
    assert not list((pytester.path / "tmp").glob("kernel-audit-progress-*"))
