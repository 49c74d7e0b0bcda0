import os

# Ray reads these when it is imported: every Ray instance the tests start (local or a multi-node
# `ray.cluster_utils.Cluster`) stays on 127.0.0.1 and sends no usage statistics (../shared/RAY.md).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import pytest  # noqa: E402 - after the environment Ray reads on import
import torch  # noqa: E402

# Property tests draw their examples from a fixed seed, like every other statistical test here: a run that
# passes passes again, and a counterexample found once is kept as an @example.
from hypothesis import settings as _hypothesis  # noqa: E402
from torch import nn  # noqa: E402

# The plugin loads the audit's modules only when an audit runs. Loaded here first: pytester's in-process runs drop
# the modules first imported inside them, and numpy's C extensions cannot load twice in one process.
import pytest_kernelbias.audit  # noqa: E402, F401
import pytest_kernelbias.reporting._html  # noqa: E402, F401

_hypothesis.register_profile("fixed-seed", derandomize=True)
_hypothesis.load_profile("fixed-seed")


def tiny_cnn() -> nn.Module:
    """A two-conv CNN small enough to train in well under a second per epoch."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2),
    )


@pytest.fixture
def cnn_factory():
    return tiny_cnn


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(2)


def trainer_killed_once(model: nn.Module, data, seed: int) -> nn.Module:
    """The default trainer, except that while $KB_KILL_FLAG exists the process training seed 1 is SIGKILLed
    halfway: a worker dying mid-training. The flag is removed first, so only one worker dies, once."""
    import os
    import signal

    from pytest_kernelbias import TrainConfig
    from pytest_kernelbias.training import train

    cfg = TrainConfig(epochs=1, batch_size=32)
    claimed = False
    if seed == 1:
        try:
            os.unlink(os.environ["KB_KILL_FLAG"])  # atomic: exactly one worker claims the kill
            claimed = True
        except (KeyError, FileNotFoundError):
            pass
    if claimed:
        train(model, data, seed, cfg)  # work that is lost with the process
        os.kill(os.getpid(), signal.SIGKILL)
    return train(model, data, seed, cfg)


@pytest.fixture(autouse=True)
def _no_ci_job_summary(monkeypatch):
    # On GitHub Actions every pytester run would append its audits to the real job page.
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
