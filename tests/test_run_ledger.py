"""What an audit that raised had trained reaches its report through a typed `RunLedger` the caller passes, not
an attribute on the exception: the failing look's plan and new models, plus every earlier look's models."""

from __future__ import annotations

import pytest
from torch import nn

from pytest_kernelbias import LowPass, TrainConfig, run_audit, synthfaces
from pytest_kernelbias.errors import AuditConfigError, KernelBiasError
from pytest_kernelbias.execution import RunLedger
from pytest_kernelbias.training import train


def cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 2))


class NodeLost(RuntimeError):
    pass


def trainer(model, data, seed):
    if seed >= 3:  # the second look's new seed: the audit stops there
        raise NodeLost("the training node went away")
    return train(model, data, seed, TrainConfig(epochs=1, batch_size=32))


SETS = dict(data=synthfaces(200, 0, "planted"), test_data=synthfaces(100, 0, "planted", split="test"),
            perturbation=LowPass(0.4), device="cpu", require_learning=False, workers=1, spectral_cutoff=None,
            placebos=(), min_group_size=5, progress=None)


def test_a_look_that_raises_leaves_what_every_look_trained_in_the_ledger(tmp_path):
    ledger = RunLedger()
    with pytest.raises(NodeLost):
        # A threshold this small leaves look 1 (3 seeds) undecided, so look 2 trains seed 3 and raises.
        run_audit(cnn, "0", [3, 5], seeds="auto", min_seeds=3, max_seeds=5, threshold=0.005, trainer=trainer,
                  cache_key="v1", cache=tmp_path, ledger=ledger, **SETS)
    # Look 2 planned 8 models; look 1 trained 6 of them, which this audit trained, not loaded.
    assert ledger.as_dict() == {"models": 8, "trained": 6, "from_cache": 0, "cache": str(tmp_path)}


def test_an_audit_that_raises_before_training_leaves_an_empty_ledger():
    ledger = RunLedger()
    with pytest.raises(KernelBiasError):
        run_audit(cnn, "nope", [3, 5], seeds=2, ledger=ledger, **SETS)
    assert ledger == RunLedger()


def test_a_ledger_of_another_type_is_refused_naming_the_fix():
    with pytest.raises(AuditConfigError, match="ledger must be an execution.RunLedger or None"):
        run_audit(cnn, "0", [3, 5], seeds=2, ledger={"trained": 0}, **SETS)
