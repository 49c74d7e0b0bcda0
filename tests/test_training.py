import pytest
import torch

from pytest_kernelbias import KernelIntervention, TrainConfig, synthfaces
from pytest_kernelbias.data._subgroups import SubgroupDataset
from pytest_kernelbias.errors import NonFiniteLossError
from pytest_kernelbias.training import train


def test_non_finite_loss_stops_with_a_clear_error(cnn_factory):
    d = synthfaces(64, 0)
    bad = SubgroupDataset(d.images.clone(), d.labels, d.attributes)
    bad.images[5, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at epoch 1.*Lower the learning rate"):
        train(cnn_factory(), bad, seed=0, config=TrainConfig(epochs=1, batch_size=64), label="k=3 seed 1/2")


def test_paired_training_is_reproducible_so_a_level_against_itself_differs_by_exactly_zero(cnn_factory):
    d = synthfaces(128, 0)
    ki = KernelIntervention(cnn_factory, "0", [3, 5])
    cfg = TrainConfig(epochs=1, batch_size=32)
    a = train(ki.build(3, seed=2), d, seed=2, config=cfg)
    b = train(ki.build(3, seed=2), d, seed=2, config=cfg)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_progress_reports_variant_and_epoch(cnn_factory):
    lines = []
    train(cnn_factory(), synthfaces(32, 0), seed=0, config=TrainConfig(epochs=2, batch_size=16),
          label="k=5 seed 2/4", progress=lines.append)
    assert [line.split(" loss")[0] for line in lines] == ["k=5 seed 2/4 epoch 1/2", "k=5 seed 2/4 epoch 2/2"]


@pytest.mark.parametrize("kw", [{"epochs": 0}, {"lr": -1.0}, {"optimizer": "adam2"}])
def test_bad_training_config_is_a_clear_error(kw):
    with pytest.raises(ValueError):
        TrainConfig(**kw)


@pytest.mark.slow
def test_compiled_training_is_opt_in_reports_its_compile_time_and_learns(cnn_factory):
    import shutil

    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("torch.compile on CPU needs a C compiler (cc or gcc)")
    d = synthfaces(128, 0)
    assert TrainConfig().compile is False
    lines = []
    torch.manual_seed(0)
    model = cnn_factory()
    before = [p.detach().clone() for p in model.parameters()]
    train(model, d, seed=0, config=TrainConfig(epochs=1, batch_size=64, compile=True), label="k=3",
          progress=lines.append)
    assert lines[0].startswith("k=3 torch.compile: first step took") and lines[1].startswith("k=3 epoch 1/1")
    after = list(model.parameters())
    assert all(torch.isfinite(p).all() for p in after) and any(not torch.equal(a, b) for a, b in zip(before, after))
