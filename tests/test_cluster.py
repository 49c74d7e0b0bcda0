import socket
import sys
import warnings

import pytest
import torch

from pytest_kernelbias import AuditConfigError, TrainConfig, run_audit, synthfaces
from pytest_kernelbias.execution._ray_connect import check_reachable

from .conftest import tiny_cnn
from .test_cache import warning_trainer

TRAIN = dict(data=synthfaces(300, 0, "planted"), test_data=synthfaces(200, 0, "planted", split="test"),
             train_config=TrainConfig(epochs=1, batch_size=32), progress=None, seeds=2, spectral_cutoff=None,
             # One epoch on 300 images tests the plumbing, not the task: these models stay near chance.
             require_learning=False)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens here once the socket is closed


@pytest.mark.slow
def test_ray_tasks_on_a_local_instance_give_the_same_numbers_as_local_training(tmp_path):
    pytest.importorskip("ray", reason="Ray is in the [test] and [ray] extras")
    torch.set_num_threads(1)  # each Ray task reserves one core and runs one thread: same reduction order
    serial = run_audit(tiny_cnn, "0", [3, 5], **TRAIN)
    on_ray = run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path, executor="ray", **TRAIN)
    assert on_ray.settings["executor"] == "ray" and on_ray.settings["trained"] == 4
    assert len(list(tmp_path.glob("*/*/weights.safetensors"))) == 4  # the weights came back into the cache
    assert [r.as_dict() for r in on_ray.outcomes.rows] == [r.as_dict() for r in serial.outcomes.rows]
    again = run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path, executor="ray", **TRAIN)
    assert again.settings["from_cache"] == 4 and again.effect.estimate == on_ray.effect.estimate


@pytest.mark.slow
def test_warnings_raised_in_ray_tasks_reach_the_audits_process():
    pytest.importorskip("ray", reason="Ray is in the [test] and [ray] extras")
    # Ray runs with log_to_driver=False, so before this a task's warnings were lost altogether.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        on_ray = run_audit(tiny_cnn, "0", [3, 5], executor="ray", trainer=warning_trainer, **TRAIN)
    assert on_ray.settings["trained"] == 4
    seen = [w for w in caught if "warning_trainer" in str(w.message)]
    assert len(seen) == 4 and {w.category for w in seen} == {UserWarning}


def test_an_unreachable_ray_address_is_named_in_the_error_within_seconds():
    pytest.importorskip("ray", reason="Ray is in the [test] and [ray] extras")
    address = f"127.0.0.1:{_closed_port()}"
    with pytest.raises(AuditConfigError, match=f"Ray cluster at '{address}' is unreachable"):
        run_audit(tiny_cnn, "0", [3, 5], executor="ray", ray_address=address, **TRAIN)


@pytest.mark.parametrize("address", ["10.0.0.5", "ray://head", "head:port"])
def test_a_malformed_ray_address_says_which_forms_work(address):
    with pytest.raises(AuditConfigError, match="is not HOST:PORT, ray://HOST:PORT or 'auto'"):
        check_reachable(address)


def test_a_ray_client_address_without_grpcio_names_the_extra_it_needs(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "grpc" else real(name, *a))
    with pytest.raises(AuditConfigError, match=r"goes through Ray Client, which needs grpcio: .*ray\[client\]"):
        check_reachable("ray://127.0.0.1:10001")


def test_without_ray_installed_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail as if it were absent
    with pytest.raises(AuditConfigError, match=r"pip install 'pytest-kernelbias\[ray\]'"):
        run_audit(tiny_cnn, "0", [3, 5], executor="ray", **TRAIN)


def test_an_unknown_executor_is_refused_before_training():
    with pytest.raises(AuditConfigError, match="executor must be one of"):
        run_audit(tiny_cnn, "0", [3, 5], executor="dask", **TRAIN)


def crashing_trainer(model, data, seed):
    """A trainer whose process dies outright (as on an out-of-memory kill), every time it runs."""
    import os

    os._exit(1)


def _ray_job():
    from pytest_kernelbias import AuditSpec
    from pytest_kernelbias.audit import prepare_plan as prepare

    plan, job, _ = prepare(AuditSpec.from_kwargs(tiny_cnn, "0", [3, 5], workers=1, **TRAIN))
    return plan, job


@pytest.mark.slow
def test_a_ray_task_that_dies_past_its_retries_is_a_package_error_with_the_resume_hint():
    pytest.importorskip("ray", reason="Ray is in the [test] and [ray] extras")
    from pytest_kernelbias.errors import WorkerDiedError

    with pytest.raises(WorkerDiedError, match=r"failed 2 times .*0 of 4 variants finished.*run the audit again"):
        run_audit(tiny_cnn, "0", [3, 5], executor="ray", trainer=crashing_trainer, **TRAIN)


@pytest.mark.slow
def test_a_task_no_node_can_run_is_refused_before_it_is_submitted():
    pytest.importorskip("ray", reason="Ray is in the [test] and [ray] extras")
    from pytest_kernelbias.execution import MemoryStore
    from pytest_kernelbias.execution._ray import train_on_ray
    from pytest_kernelbias.execution._ray_options import RayOptions

    plan, job = _ray_job()
    with pytest.raises(AuditConfigError, match=r"each asks \{CPU: 10000\}, the largest node has \{CPU: \d"):
        train_on_ray(job, plan.variants, MemoryStore(), options=RayOptions(num_cpus=10_000))


@pytest.mark.slow
def test_tasks_waiting_for_busy_resources_are_reported_with_what_is_free_and_what_they_ask():
    ray = pytest.importorskip("ray", reason="Ray is in the [test] and [ray] extras")
    from pytest_kernelbias.execution import MemoryStore
    from pytest_kernelbias.execution._ray import train_on_ray
    from pytest_kernelbias.execution._ray_connect import connect
    from pytest_kernelbias.execution._ray_options import RayOptions

    connect(None)
    cpus = ray.cluster_resources()["CPU"]
    blocker = ray.remote(num_cpus=1)(lambda: __import__("time").sleep(6)).remote()  # another job holds a CPU
    plan, job = _ray_job()
    lines: list[str] = []
    store = MemoryStore()
    train_on_ray(job, plan.variants[:1], store, options=RayOptions(num_cpus=cpus), progress=lines.append,
                 wait_report=2.0)
    ray.get(blocker)
    waits = [line for line in lines if line.startswith("Ray: no training task finished")]
    assert waits, lines
    assert f"free of {{CPU: {cpus:g}}}, each task asks {{CPU: {cpus:g}}}" in waits[0]
    assert store.has(plan.variants[0].key)  # it ran once the CPU was free


@pytest.mark.slow
def test_without_an_address_the_audit_starts_its_own_instance_whatever_ray_address_says(monkeypatch):
    ray = pytest.importorskip("ray", reason="Ray is in the [test] and [ray] extras")
    from pytest_kernelbias.execution._threads import usable_cores

    ray.shutdown()  # as a fresh process: no connection to reuse
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{_closed_port()}")  # a cluster ray.init() alone would try to join
    lines: list[str] = []
    result = run_audit(tiny_cnn, "0", [3, 5], executor="ray", **{**TRAIN, "progress": lines.append})
    assert result.run.executor_used == "ray" and result.run.trained == 4
    started = next(line for line in lines if "private local Ray instance" in line)
    assert f"{usable_cores()} CPUs" in started
    ray.shutdown()
