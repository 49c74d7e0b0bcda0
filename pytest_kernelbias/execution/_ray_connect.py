"""Joining Ray: a private local instance when no address is given, else the cluster named; one per process.

With no address, `ray.init()` would join whatever cluster it finds (RAY_ADDRESS, or one started on this
machine) and then refuse the CPU count it was given; the audit starts its own instance instead
(`address="local"`), on loopback, with the cores this process may use. An address joins that
cluster and says which one it joined.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
from typing import Callable

from ..errors import AuditConfigError
from ._threads import usable_cores

RAY_HINT = "install Ray with `pip install 'pytest-kernelbias[ray]'` (or `pip install ray`)"
CLIENT_HINT = "pip install 'pytest-kernelbias[ray]' (it brings ray[client]) or pip install 'ray[client]'"
_connected_to: tuple | None = None  # (address, namespace, runtime_env) this process joined with


def ray_module():
    try:
        import ray
    except ImportError:
        raise AuditConfigError(f"executor 'ray' needs Ray: {RAY_HINT}, or use the local executor") from None
    return ray


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse an address whose Ray head does not answer, within seconds (ray.init itself waits minutes)."""
    if address == "auto":
        return  # Ray finds the cluster this machine belongs to, and says so quickly when there is none
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise AuditConfigError(f"Ray address {address!r} is not HOST:PORT, ray://HOST:PORT or 'auto' "
                               "(e.g. 10.0.0.5:6379 for a head node started with `ray start --head`)")
    if address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
        raise AuditConfigError(f"Ray address {address!r} goes through Ray Client, which needs grpcio: {CLIENT_HINT}; "
                               "or give the head's GCS address HOST:6379 from a machine inside the cluster")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise AuditConfigError(
            f"Ray cluster at {address!r} is unreachable ({exc}). Start its head node with `ray start --head "
            f"--port={port}`, check the address and firewall, or leave the address empty to start a local "
            "Ray instance") from None


def connect(address: str | None, namespace: str | None = None, runtime_env: dict | None = None,
            progress: Callable[[str], None] | None = None) -> None:
    """Join the Ray cluster at `address`, or start a private local instance on loopback when it is None.

    `runtime_env` is the job's: Ray uploads a local `working_dir` or `py_modules` only at the job level
    (a task's runtime_env takes URIs alone), so it is given here, and a new one means a new connection.
    """
    global _connected_to
    ray = ray_module()
    wanted = (address or None, namespace, json.dumps(runtime_env, sort_keys=True, default=str))
    if ray.is_initialized():
        if _connected_to == wanted:
            return  # one connection per process, reused by every later audit
        ray.shutdown()  # Ray joins one cluster per process; leave the old one for the one asked for
    if address:
        check_reachable(address)
    try:
        if address:
            ray.init(address=address, namespace=namespace, runtime_env=runtime_env, log_to_driver=False)
        else:
            ray.init(address="local", namespace=namespace, runtime_env=runtime_env, num_cpus=usable_cores(),
                     include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    except Exception as exc:  # noqa: BLE001 - Ray raises a bare Exception when its node times out starting
        where = f"the Ray cluster at {address!r}" if address else "a private local Ray instance"
        why = " with ray_options runtime_env " + json.dumps(runtime_env, default=str) if runtime_env else ""
        fix = ("" if address else "; if it timed out starting (a loaded machine), start one with `ray start "
               "--head` and pass --kernel-audit-ray-address auto, or train without Ray (--kernel-audit-executor local)")
        raise AuditConfigError(f"could not connect to {where}{why}: {exc}{fix}") from None
    _connected_to = wanted
    if progress is not None:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        cpus = ray.cluster_resources().get("CPU", 0)
        which = (f"joined the Ray cluster at {address!r}" if address
                 else f"started a private local Ray instance (pid {os.getpid()}'s, {usable_cores()} usable cores)")
        gpus = ray.cluster_resources().get("GPU", 0)
        progress(f"Ray: {which}: {len(nodes)} node(s), {cpus:g} CPUs, {gpus:g} GPUs"
                 + (f", namespace {namespace!r}" if namespace else ""))
