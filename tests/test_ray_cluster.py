"""Audits on a real multi-node Ray cluster (`ray.cluster_utils.Cluster`, every node on loopback, its own ports):
the serial numbers from any node split, a node lost halfway, tasks pinned by resources, tasks that cannot be
scheduled, and nodes whose numeric environments differ.

Each node is a separate raylet with its own worker processes, so a node started with
ATEN_CPU_CAPABILITY=default really runs torch's non-vectorized kernels: a different numeric environment,
as an AVX2 node beside an AVX-512 one is.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import warnings
from contextlib import contextmanager

import pytest

from pytest_kernelbias import AuditConfigError, KernelAuditWarning, run_audit
from pytest_kernelbias.errors import ClusterWaitError, MixedEnvironmentError

from .conftest import tiny_cnn
from .test_cluster import TRAIN

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray", reason="Ray is in the [test] and [ray] extras")
from ray.cluster_utils import Cluster  # noqa: E402 - after the importorskip that guards it


def _ports(base: int, i: int) -> dict:
    """Every port a node opens, distinct per node and per test run (RAY.md)."""
    p = base + 200 * i
    return dict(node_manager_port=p, metrics_export_port=p + 1, dashboard_agent_listen_port=p + 2,
                metrics_agent_port=p + 3, runtime_env_agent_port=p + 4, min_worker_port=p + 100,
                max_worker_port=p + 199)


@contextmanager
def cluster(tmp_path, nodes: list[dict], env: dict | None = None):
    """A head (one CPU) and `nodes` (each node's extra args), on loopback; ended by this test only."""
    # Ray's socket paths must stay under 108 bytes: a short private folder, not pytest's tmp_path.
    # (conftest.py sets the loopback switches Ray reads on import.)
    short = tempfile.mkdtemp(prefix="kr-", dir="/tmp")
    before = {"RAY_TMPDIR": os.environ.get("RAY_TMPDIR")}
    os.environ["RAY_TMPDIR"] = short
    base = random.Random(os.getpid() ^ id(tmp_path)).randrange(20_000, 50_000, 1000)
    common = dict(num_cpus=1, object_store_memory=150 * 2**20)
    made = Cluster(initialize_head=True, head_node_args=dict(include_dashboard=False, gcs_server_port=base + 199 * 5,
                                                             node_ip_address="127.0.0.1", **common, **_ports(base, 0)))
    try:
        added = []
        for i, extra in enumerate(nodes, start=1):
            saved = {k: os.environ.get(k) for k in (extra.get("env") or {})}
            os.environ.update(extra.get("env") or {})  # the node's raylet and workers inherit it
            try:
                added.append(made.add_node(node_ip_address="127.0.0.1", **common, **_ports(base, i),
                                           **{k: v for k, v in extra.items() if k != "env"}))
            finally:
                _restore(saved)
        made.wait_for_nodes()
        yield made, added
    finally:
        ray.shutdown()
        made.shutdown()
        _restore(before)
        shutil.rmtree(short, ignore_errors=True)


def _restore(saved: dict) -> None:
    for k, v in saved.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def _trained_on(cache) -> list[dict | None]:
    """What each cache entry records of the node and numeric environment it was trained in."""
    from pytest_kernelbias.execution._store import VariantCache

    store = VariantCache(cache)
    return [store.trained_on(p.parent.name) for p in cache.glob("*/*/weights.safetensors")]


def test_a_two_node_audit_gives_the_serial_numbers_and_records_each_variants_node(tmp_path):
    serial = run_audit(tiny_cnn, "0", [3, 5], **TRAIN)
    lines: list[str] = []
    with cluster(tmp_path, [{}]) as (made, _):
        spread = run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path / "c", executor="ray", ray_address=made.address,
                           ray_options={"scheduling_strategy": "SPREAD"}, **{**TRAIN, "progress": lines.append})
    assert [r.as_dict() for r in spread.outcomes.rows] == [r.as_dict() for r in serial.outcomes.rows]
    where = _trained_on(tmp_path / "c")
    assert len(where) == 4 and len({w["node"] for w in where}) == 2  # both nodes trained
    assert all(w["environment"]["threads"] == 1 and "cpu_capability" in w["environment"] for w in where)
    assert spread.run.environments["mixed"] is False
    for variant in ("kernel_size=3 seed 1/2", "kernel_size=5 seed 2/2"):  # each task says where it started, then ends
        began = next(i for i, line in enumerate(lines) if variant in line and "started on Ray node" in line)
        assert began < next(i for i, line in enumerate(lines) if variant in line and "trained+evaluated on" in line)
    assert spread.settings["ray_options"]["scheduling_strategy"] == "SPREAD"


def test_a_node_removed_halfway_leaves_the_serial_numbers(tmp_path):
    serial = run_audit(tiny_cnn, "0", [3, 5], **{**TRAIN, "seeds": 3})
    with cluster(tmp_path, [{}]) as (made, (worker,)):
        lines: list[str] = []

        def progress(line: str) -> None:
            lines.append(line)
            if "trained+evaluated on Ray node" in line and worker in made.worker_nodes:
                made.remove_node(worker)  # the second node fails after the first variant is stored

        lost = run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path / "c", executor="ray", ray_address=made.address,
                         ray_options={"max_retries": 3}, **{**TRAIN, "seeds": 3, "progress": progress})
    assert worker not in made.worker_nodes
    assert [r.as_dict() for r in lost.outcomes.rows] == [r.as_dict() for r in serial.outcomes.rows]


def test_tasks_pinned_by_a_resource_run_only_on_the_node_that_has_it(tmp_path):
    with cluster(tmp_path, [{"resources": {"big_gpu_box": 1}}]) as (made, (worker,)):
        run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path / "c", executor="ray", ray_address=made.address,
                  ray_options={"resources": {"big_gpu_box": 1}}, **TRAIN)
    assert {w["node"] for w in _trained_on(tmp_path / "c")} == {worker.node_id}


def test_tasks_that_cannot_be_scheduled_are_refused_or_time_out_with_what_they_ask(tmp_path):
    with cluster(tmp_path, [{"resources": {"licence": 1}}]) as (made, _):
        with pytest.raises(AuditConfigError, match=r"no node of the Ray cluster can run a training task: each asks "
                                                   r"\{CPU: 1, tpu: 1\}"):
            run_audit(tiny_cnn, "0", [3, 5], executor="ray", ray_address=made.address,
                      ray_options={"resources": {"tpu": 1}}, **TRAIN)
        ray.init(address=made.address, ignore_reinit_error=True)
        holder = ray.remote(resources={"licence": 1}, num_cpus=0)(lambda: __import__("time").sleep(20)).remote()
        with pytest.raises(ClusterWaitError, match=r"no training task finished in 3 s.*asks \{CPU: 1, licence: 1\}"
                                                   r".*rerun trains only the rest"):
            run_audit(tiny_cnn, "0", [3, 5], executor="ray", ray_address=made.address,
                      ray_options={"resources": {"licence": 1}, "wait_timeout": 3}, **TRAIN)
        ray.cancel(holder, force=True)


def test_nodes_with_different_numeric_environments_are_refused_unless_allowed(tmp_path):
    with cluster(tmp_path, [{"env": {"ATEN_CPU_CAPABILITY": "default"}}]) as (made, _):
        options = {"scheduling_strategy": "SPREAD"}
        with pytest.raises(MixedEnvironmentError, match=r"2 numeric environments .*cpu_capability='DEFAULT'.*"
                                                        r"allow_mixed_environments=True"):
            run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path / "c", executor="ray", ray_address=made.address,
                      ray_options=options, **TRAIN)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mixed = run_audit(tiny_cnn, "0", [3, 5], cache=tmp_path / "c", executor="ray", ray_address=made.address,
                              ray_options={**options, "allow_mixed_environments": True}, **TRAIN)
    assert mixed.run.environments["mixed"] and mixed.run.trained == 0  # the refused audit's variants were kept
    assert any(issubclass(w.category, KernelAuditWarning) and "compared anyway" in str(w.message) for w in caught)
    from pytest_kernelbias.reporting._text import summary_lines

    assert "MIXED numeric environments (allowed)" in "\n".join(summary_lines([{**mixed.to_dict(), "test": "t"}]))
