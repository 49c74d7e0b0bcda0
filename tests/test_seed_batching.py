import math

import pytest
import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import nn

from pytest_kernelbias.data._synthfaces import synthfaces
from pytest_kernelbias.errors import AuditConfigError, NonFiniteLossError
from pytest_kernelbias.models import SynthFacesCNN
from pytest_kernelbias.training import _seed_batched as sb
from pytest_kernelbias.training._trainer import TrainConfig, train

SEEDS = [3, 7, 11]
EPS32 = torch.finfo(torch.float32).eps
# BatchNorm subtracts the batch mean, so a conv bias feeding it has true gradient exactly 0
# and the running mean right after it absorbs that bias; see `tolerances`.
GRADIENT_FREE = {f"conv{i}.bias" for i in (1, 2, 3)} | {f"bn{i}.running_mean" for i in (1, 2, 3)}


@pytest.fixture(autouse=True)
def _one_thread():
    # Results do not depend on it, and two OpenMP threads on a shared, busy 2-core machine ran 30x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return SynthFacesCNN()


def tolerances(cfg: TrainConfig, data) -> tuple[float, float]:
    """(tight, adam) absolute tolerances, for tensors of magnitude <= 1 (scale above that).

    tight: vmap turns each conv into a grouped conv, which changes float32 summation order.
    A sum of K terms then differs by ~eps * sqrt(K) relative; the longest sums of a step
    run over batch x pixels (BatchNorm statistics and conv1's weight gradient: K = B*H*W),
    and each of the T steps adds its own: T * eps * sqrt(B*H*W) = 2.4e-4 for 8 steps of
    64 images of 32x32. Measured (3 seeds, CPU): SGD 1.1e-5 (NCHW) and 1.6e-5
    (channels_last) at most; one seed trained on the wrong data order differs by 1.6e-3.

    adam: where a gradient is itself rounding noise (GRADIENT_FREE; and a few weights of
    near-dead channels), AdamW's normalised step m/sqrt(v) turns its random sign into a
    full step of up to lr_t (Kingma & Ba 2.1: |step| <~ lr), so two runs can walk apart by
    2 * sum_t lr_t = 0.027 here. Measured: 1.6e-2 in GRADIENT_FREE, 3.8e-4 at most on 5 of
    170,310 other coordinates; a wrong data order moves 88% of them. Sequential AdamW
    itself, NCHW against channels_last, differs on 1% (up to 6.2e-3): hence SGD below.
    """
    steps = cfg.epochs * math.ceil(len(data) / cfg.batch_size)
    _, _, h, w = data.images.shape
    tight = steps * EPS32 * math.sqrt(cfg.batch_size * h * w)
    lr_sum = sum(cfg.lr * 0.5 * (1 + math.cos(math.pi * t / steps)) for t in range(steps))
    return tight, 2 * lr_sum


def assert_same_training(sequential, batched, cfg, data) -> None:
    """Every parameter and buffer within `tolerances`; for AdamW, at most 1% of coordinates outside tight."""
    tight, adam = tolerances(cfg, data)
    for seed, a, b in zip(SEEDS, sequential, batched):
        want, got = a.state_dict(), b.state_dict()
        assert list(got) == list(want)
        outside = total = 0
        for name, w in want.items():
            if not w.is_floating_point():  # num_batches_tracked: counted exactly
                assert torch.equal(got[name], w), name
                continue
            scale = max(1.0, w.abs().max().item())
            atol = adam if cfg.optimizer == "adamw" else tight * scale
            torch.testing.assert_close(got[name], w, rtol=0, atol=atol, msg=lambda m: f"seed {seed} {name}: {m}")
            if name not in GRADIENT_FREE:
                outside += int(((got[name] - w).abs() > tight * scale).sum())
                total += w.numel()
        assert outside <= 0.01 * total, f"seed {seed}: {outside} of {total} coordinates differ by more than {tight:.1e}"


@pytest.mark.slow
@pytest.mark.parametrize("optimizer, recipe", [("sgd", {}), ("adamw", {}),
                                               ("sgd", {"warmup": 0.3, "label_smoothing": 0.1})])
def test_seed_batched_training_gives_the_weights_of_sequential_training(optimizer, recipe):
    data = synthfaces(256, 0, "planted", "train")
    # NCHW on both sides isolates batching from the memory-format change.
    cfg = TrainConfig(epochs=2, batch_size=64, optimizer=optimizer, channels_last=False, **recipe)
    sequential = [train(cnn(s), data, s, cfg) for s in SEEDS]
    given = [cnn(s) for s in SEEDS]
    batched = sb.train_seeds(given, data, SEEDS, cfg)
    assert all(b is g and not b.training for b, g in zip(batched, given))
    assert_same_training(sequential, batched, cfg, data)


@pytest.mark.slow
def test_seed_batched_channels_last_training_matches_sequential_channels_last():
    data = synthfaces(256, 0, "planted", "train")
    cfg = TrainConfig(epochs=2, batch_size=64, optimizer="sgd", channels_last=True)
    sequential = [train(cnn(s), data, s, cfg) for s in SEEDS[:2]]
    batched = sb.train_seeds([cnn(s) for s in SEEDS[:2]], data, SEEDS[:2], cfg)
    assert_same_training(sequential, batched, cfg, data)
    assert batched[0].conv2.weight.is_contiguous(memory_format=torch.channels_last)


def test_seed_batched_training_is_reproducible_bit_for_bit(cnn_factory):
    data, cfg = synthfaces(64, 0), TrainConfig(epochs=1, batch_size=16)

    def run():
        torch.manual_seed(0)
        return sb.train_seeds([cnn_factory(), cnn_factory()], data, [0, 1], cfg)

    for a, b in zip(run(), run()):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("drop, shown", [(nn.Dropout(0.2), "Dropout p=0.2"), (DropPath(0.1), "DropPath p=0.1")])
def test_stochastic_modules_are_refused_with_the_sequential_advice(cnn_factory, drop, shown):
    models = [nn.Sequential(cnn_factory(), drop) for _ in range(2)]
    with pytest.raises(AuditConfigError, match=rf"1 \({shown}\).*use the sequential strategy"):
        sb.train_seeds(models, synthfaces(16, 0), [0, 1], TrainConfig(epochs=1, batch_size=8))


class FunctionalDropout(nn.Module):
    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return F.dropout(self.inner(x), 0.5, self.training)


def test_random_draws_hidden_in_forward_are_refused_too(cnn_factory):
    models = [FunctionalDropout(cnn_factory()) for _ in range(2)]
    with pytest.raises(AuditConfigError, match="random numbers in forward.*use the sequential strategy"):
        sb.train_seeds(models, synthfaces(16, 0), [0, 1], TrainConfig(epochs=1, batch_size=8))


def test_models_of_different_architectures_are_refused(cnn_factory):
    with pytest.raises(AuditConfigError, match="share one architecture"):
        sb.train_seeds([cnn_factory(), cnn(0)], synthfaces(16, 0), [0, 1], TrainConfig(epochs=1))


def test_non_finite_loss_names_the_seed_that_diverged(cnn_factory):
    models = [cnn_factory(), cnn_factory()]
    with torch.no_grad():
        models[1][0].weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match=r"k=3 seed 2/2 \(order seed 5.*loss became nan at epoch 1, step 1.*"
                                                 r"Lower the learning rate"):
        sb.train_seeds(models, synthfaces(32, 0), [4, 5], TrainConfig(epochs=1, batch_size=16),
                       labels=["k=3 seed 1/2", "k=3 seed 2/2"])


def test_progress_reports_one_line_per_epoch_for_the_batch(cnn_factory):
    lines = []
    sb.train_seeds([cnn_factory(), cnn_factory()], synthfaces(32, 0), [0, 1], TrainConfig(epochs=2, batch_size=16),
                   labels=["k=5 seed 1/2", "k=5 seed 2/2"], progress=lines.append)
    assert [line.split(" loss")[0] for line in lines] == [
        "k=5 seed 1/2 + 1 more (seed-batched) epoch 1/2", "k=5 seed 1/2 + 1 more (seed-batched) epoch 2/2"]


@pytest.fixture
def probes(monkeypatch):
    """Count real probes, starting from an empty memo."""
    monkeypatch.setattr(sb, "_CHOICES", {})
    calls = []
    real = sb._probe
    monkeypatch.setattr(sb, "_probe", lambda *a: calls.append(a) or real(*a))
    return calls


def test_strategy_is_measured_once_then_memoized(cnn_factory, probes):
    data, cfg = synthfaces(32, 0), TrainConfig(batch_size=16, channels_last=False)
    choice = sb.choose_strategy(cnn_factory, data, cfg, "cpu", seeds=2, probe_steps=2)
    assert choice.strategy in sb.STRATEGIES
    assert choice.sequential_img_per_s > 0 and choice.vmap_img_per_s > 0
    assert "vmap/sequential" in choice.reason
    assert sb.choose_strategy(cnn_factory, data, cfg, "cpu", seeds=2, probe_steps=2) is choice
    assert len(probes) == 1


def test_one_seed_is_sequential_without_probing(cnn_factory, probes):
    choice = sb.choose_strategy(cnn_factory, synthfaces(32, 0), TrainConfig(), "cpu", seeds=1)
    assert choice.strategy == "sequential" and choice.vmap_img_per_s is None and probes == []


def test_stochastic_models_are_sequential_without_timing(cnn_factory, probes):
    choice = sb.choose_strategy(lambda: nn.Sequential(cnn_factory(), nn.Dropout(0.3)), synthfaces(32, 0),
                                TrainConfig(batch_size=16), "cpu", seeds=2)
    assert choice.strategy == "sequential" and choice.vmap_img_per_s is None
    assert "Dropout p=0.3" in choice.reason
