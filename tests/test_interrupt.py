"""Ctrl-C while a pool of workers trains: the workers end at once (they do not train on for minutes), the
cache keeps only whole entries, and the next audit starts a fresh pool and loads what was finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

SCRIPT = textwrap.dedent('''
    import json, os, signal, sys
    from torch import nn
    from pytest_kernelbias import LowPass, TrainConfig, run_audit, synthfaces
    from pytest_kernelbias.execution import _pool

    def cnn():
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(4, 2))

    def progress(msg):
        # After the first model: record the workers, then Ctrl-C (SIGINT) this process, as a user would.
        if "in worker" in msg and "pids" not in state and not os.environ.get("KB_NO_INTERRUPT"):
            state["pids"] = sorted(_pool._SHARED["pool"]._processes)
            print("PIDS " + json.dumps(state["pids"]), flush=True)
            os.kill(os.getpid(), signal.SIGINT)

    state = {}
    if __name__ == "__main__":
        try:
            result = run_audit(cnn, "0", [3, 5], seeds=int(sys.argv[2]), data=synthfaces(200, 0, "planted"),
                      test_data=synthfaces(100, 0, "planted", split="test"), perturbation=LowPass(0.4),
                      train_config=TrainConfig(epochs=int(sys.argv[3]), batch_size=32), device="cpu",
                      require_learning=False, workers=2, executor="pool", cache=sys.argv[1], progress=progress,
                      spectral_cutoff=None, placebos=())
        except KeyboardInterrupt:
            print("INTERRUPTED", flush=True)
            sys.exit(130)
        print("FROM_CACHE " + str(result.settings["from_cache"]), flush=True)
''')


def answer_ctrl_c() -> None:
    """In a child before it runs: take SIGINT as a terminal does. A job started in the background by a shell
    without job control (a CI step, `cmd &` in a script) inherits SIGINT ignored, and Python then keeps ignoring it,
    so the Ctrl-C these tests send would never arrive."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (ended, not yet reaped by its parent, which has exited) is not running
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc and sends SIGINT")
def test_ctrl_c_ends_the_pool_workers_and_the_cache_keeps_whole_entries(tmp_path):
    script = tmp_path / "audit.py"
    script.write_text(SCRIPT)
    cache = tmp_path / "cache"
    # 6 models of 6 epochs each: after the first one finishes, the rest would train on for many seconds.
    run = subprocess.run([sys.executable, str(script), str(cache), "3", "6"], capture_output=True, text=True,
                         timeout=600, cwd=tmp_path, preexec_fn=answer_ctrl_c)
    assert run.returncode == 130 and "INTERRUPTED" in run.stdout, run.stdout + run.stderr
    pids = json.loads(next(line for line in run.stdout.splitlines() if line.startswith("PIDS "))[5:])
    assert len(pids) == 2
    # The workers were terminated before the script returned (join), so none outlives it; a little grace for
    # the kernel to reap them, since their parent has exited.
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in pids)
    # The running trainings were stopped, not finished: the cache holds the model(s) done before Ctrl-C (the
    # other worker may have finished one at the same moment), not the 3 or more that waiting for the running
    # ones would store. A fresh run loads those whole entries and trains the rest.
    again = subprocess.run([sys.executable, str(script), str(cache), "3", "6"], capture_output=True, text=True,
                           timeout=600, cwd=tmp_path, env={**os.environ, "KB_NO_INTERRUPT": "1"})
    assert again.returncode == 0, again.stdout + again.stderr
    loaded = int(next(line for line in again.stdout.splitlines() if line.startswith("FROM_CACHE "))[11:])
    assert 1 <= loaded <= 2
