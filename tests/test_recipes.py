import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_kernelbias.data._synthfaces import synthfaces
from pytest_kernelbias.errors import AuditConfigError
from pytest_kernelbias.training import TrainConfig, preset_for, train
from pytest_kernelbias.training._lr_probe import GRID, chance_loss, choose_lr, lr_probe, probe_steps
from pytest_kernelbias.training._presets import PRESETS
from pytest_kernelbias.training._seed_batched import _vmapped_losses
from pytest_kernelbias.training._trainer import Stepper, cosine_schedule, loss_function, steps_per_epoch

from .conftest import tiny_cnn


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # as the audit runs; these tests train only tiny models


def lrs_of(config: TrainConfig, n: int) -> list[float]:
    """The lr of every step of a real `Stepper`, read before each step, and the one after the last."""
    stepper = Stepper.for_model(nn.Linear(2, 2), config, n, torch.device("cpu"))
    seen = []
    for _ in range(config.epochs * steps_per_epoch(n, config)):
        seen.append(stepper.opt.param_groups[0]["lr"])
        stepper.step()  # no gradients: the optimizer skips every parameter, the schedule advances
    return seen + [stepper.opt.param_groups[0]["lr"]]


def test_no_warmup_gives_exactly_the_cosine_schedule_of_before():
    cfg = TrainConfig(epochs=3, batch_size=16)
    total = 3 * math.ceil(100 / 16)
    assert lrs_of(cfg, 100) == [cfg.lr * (0.5 * (1 + math.cos(math.pi * t / total))) for t in range(total + 1)]
    assert lrs_of(cfg, 100) == [cfg.lr * cosine_schedule(total)(t) for t in range(total + 1)]


@pytest.mark.parametrize("warmup", [0.01, 0.1, 0.25, 0.9])
def test_warmup_rises_linearly_to_the_peak_then_follows_the_cosine(warmup):
    cfg = TrainConfig(epochs=4, batch_size=10, lr=1e-3, warmup=warmup)
    total = 4 * 10
    warm = math.ceil(warmup * total)

    def want(t: int) -> float:
        if t < warm:
            return cfg.lr * (t + 1) / warm
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * (t - warm) / (total - warm)))

    got = lrs_of(cfg, 100)
    assert got == pytest.approx([want(t) for t in range(total + 1)], rel=1e-12, abs=0)
    assert got[warm - 1] == pytest.approx(cfg.lr) and got[-1] == pytest.approx(0.0, abs=1e-18)


def test_label_smoothing_is_torchs_cross_entropy_with_label_smoothing():
    torch.manual_seed(0)
    logits, y = torch.randn(12, 3), torch.randint(0, 3, (12,))
    eps = 0.1
    logp = logits.log_softmax(1)
    # torch's definition: the target is (1 - eps) * one-hot + eps / C
    by_hand = -((1 - eps) * logp.gather(1, y[:, None]).squeeze(1) + eps / 3 * logp.sum(1)).mean()
    got = loss_function(TrainConfig(label_smoothing=eps))(logits, y)
    torch.testing.assert_close(got, by_hand)
    torch.testing.assert_close(got, F.cross_entropy(logits, y, label_smoothing=eps))
    assert torch.equal(loss_function(TrainConfig())(logits, y), F.cross_entropy(logits, y))


def test_the_trainer_minimizes_the_smoothed_loss():
    data = synthfaces(16, 0)
    torch.manual_seed(0)
    model = tiny_cnn()
    with torch.no_grad():  # one batch of all 16 images: its mean loss does not depend on their order
        want = F.cross_entropy(model(data.images), data.labels, label_smoothing=0.2).item()
    lines = []
    train(model, data, 0, TrainConfig(epochs=1, batch_size=16, label_smoothing=0.2), progress=lines.append)
    assert float(lines[0].split(" loss ")[1].split()[0]) == pytest.approx(want, abs=1e-4)


def test_seed_batched_losses_use_the_same_label_smoothing():
    torch.manual_seed(0)
    models = [tiny_cnn() for _ in range(2)]
    x, y = torch.randn(2, 8, 3, 16, 16), torch.randint(0, 2, (2, 8))
    cfg = TrainConfig(label_smoothing=0.3)
    params = {n: torch.stack([dict(m.named_parameters())[n] for m in models]) for n, _ in models[0].named_parameters()}
    got = _vmapped_losses(models, cfg)(params, {}, x, y)
    want = torch.stack([F.cross_entropy(m(x[i]), y[i], label_smoothing=0.3) for i, m in enumerate(models)])
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("field, value, fix", [
    ("warmup", -0.1, "warmup=0.1"), ("warmup", 1.0, "warmup=0.1"), ("warmup", float("nan"), "warmup=0.1"),
    ("label_smoothing", -0.01, "label_smoothing=0.1"), ("label_smoothing", 1.0, "label_smoothing=0.1"),
    ("label_smoothing", float("nan"), "label_smoothing=0.1"),
])
def test_out_of_range_warmup_and_label_smoothing_are_refused_with_the_range_and_a_fix(field, value, fix):
    with pytest.raises(AuditConfigError, match=rf"{field}.*\[0, 1\).*{fix}"):
        TrainConfig(**{field: value})


def test_warmup_and_label_smoothing_are_in_the_recipe_that_keys_the_cache():
    base = TrainConfig().recipe()
    assert base["warmup"] == 0.0 and base["label_smoothing"] == 0.0
    assert TrainConfig(warmup=0.1).recipe() != base and TrainConfig(label_smoothing=0.1).recipe() != base
    assert set(base) == {f.name for f in dataclasses.fields(TrainConfig)} - {"seed_batching"}


def cnn_with(norm: type | None) -> nn.Module:
    layers = {nn.BatchNorm2d: lambda c: nn.BatchNorm2d(c), nn.GroupNorm: lambda c: nn.GroupNorm(2, c),
              nn.LayerNorm: lambda c: nn.LayerNorm([c, 16, 16]), None: lambda c: nn.Identity()}[norm]
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), layers(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 2))


@pytest.mark.parametrize("norm, name", [(nn.BatchNorm2d, "batchnorm"), (nn.GroupNorm, "layernorm"),
                                        (nn.LayerNorm, "layernorm"), (None, "none")])
def test_the_preset_follows_the_normalization_layers(norm, name):
    kind, config = preset_for(cnn_with(norm))
    assert kind == name and config == PRESETS[name]
    assert TrainConfig.for_model(cnn_with(norm)) == config


def test_batchnorm_and_plain_nets_keep_the_default_recipe_and_layernorm_nets_get_a_gentler_one():
    assert PRESETS["batchnorm"] == PRESETS["none"] == TrainConfig()
    gentle = PRESETS["layernorm"]
    assert gentle.lr < TrainConfig().lr and gentle.epochs > TrainConfig().epochs
    assert gentle.batch_size < TrainConfig().batch_size and gentle.warmup > 0 and gentle.label_smoothing > 0


def test_a_net_with_both_kinds_gets_the_layernorm_preset():
    both = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.GroupNorm(1, 4))
    assert preset_for(both)[0] == "layernorm"


@pytest.mark.parametrize("timm_name, name", [("convnext_atto", "layernorm"), ("resnet18", "batchnorm")])
def test_timm_names_and_factories_get_their_preset_without_moving_the_global_generator(timm_name, name):
    import timm

    state = torch.random.get_rng_state()
    assert TrainConfig.for_model(timm_name) == PRESETS[name]
    assert torch.equal(torch.random.get_rng_state(), state)
    assert preset_for(timm.create_model(timm_name, pretrained=False, num_classes=2))[0] == name


def test_for_model_applies_changes_on_top_of_the_preset():
    config = TrainConfig.for_model(lambda: cnn_with(nn.GroupNorm), epochs=2, seed_batching="sequential")
    assert config == dataclasses.replace(PRESETS["layernorm"], epochs=2, seed_batching="sequential")


def test_for_model_refuses_a_factory_that_returns_no_module():
    with pytest.raises(AuditConfigError, match="returned int, not an nn.Module"):
        TrainConfig.for_model(lambda: 3)


PROBE = dict(steps=8, config=TrainConfig(batch_size=16))


def test_the_lr_probe_is_deterministic_and_picks_from_its_grid():
    data = synthfaces(64, 0)
    state = torch.random.get_rng_state()
    a, b = lr_probe(tiny_cnn, data, **PROBE), lr_probe(tiny_cnn, data, **PROBE)
    assert dataclasses.replace(a, seconds=0) == dataclasses.replace(b, seconds=0)
    assert a.lr in a.lrs and a.lrs == GRID and len(a.losses) == 3 and a.steps == 8 and a.seconds > 0
    assert torch.equal(torch.random.get_rng_state(), state)


def test_the_lr_probe_does_not_pick_an_lr_that_diverges():
    probe = lr_probe(tiny_cnn, synthfaces(64, 0), steps=8, config=TrainConfig(batch_size=16, optimizer="sgd"),
                     lrs=(0.01, 0.1, 1e4))
    assert probe.diverged == (False, False, True) and probe.losses[-1] == math.inf
    assert probe.lr in (0.01, 0.1)


def test_the_lr_probe_says_so_when_every_lr_gives_a_non_finite_loss():
    with pytest.raises(AuditConfigError, match="NaN or infinite at every learning rate the probe tried.*try lower"):
        lr_probe(tiny_cnn, synthfaces(32, 0), steps=4, config=TrainConfig(batch_size=16, optimizer="sgd"),
                 lrs=(1e6, 1e7))


def test_the_probe_picks_the_largest_lr_that_gains_nearly_as_much_as_the_best():
    lrs = (1e-4, 1e-3, 1e-2, 1e-1)
    diverged = (False, False, False, True)
    # gains over chance 0.7: 0.2, 0.3, 0.25, (diverged)
    assert choose_lr(lrs, (0.5, 0.4, 0.45, math.inf), diverged, 0.7, margin=0.2, recipe_lr=3e-3) == 1e-2
    assert choose_lr(lrs, (0.5, 0.4, 0.45, math.inf), diverged, 0.7, margin=0.1, recipe_lr=3e-3) == 1e-3


def test_a_probe_too_short_to_tell_keeps_the_finite_lr_nearest_the_recipes():
    lrs = (1e-4, 1e-3, 1e-2, 1e-1)
    losses = (0.71, 0.69, 0.75, math.inf)  # the best gain over chance 0.7, 0.01, is within batch noise
    diverged = (False, False, True, True)
    assert choose_lr(lrs, losses, diverged, 0.7, margin=0.2, recipe_lr=3e-3) == 1e-3
    # 1e-1 gave a non-finite loss; 1e-2 only rose, which early BatchNorm nets do before they learn
    assert choose_lr(lrs, losses, diverged, 0.7, margin=0.2, recipe_lr=0.2) == 1e-2


def test_the_probe_spends_at_most_a_quarter_of_one_training_and_40_steps_per_lr():
    assert probe_steps(TrainConfig(epochs=8, batch_size=32), 2000, 3) == 40  # 504 steps: capped
    assert probe_steps(TrainConfig(), 2000, 3) == 10  # 128 steps: 32 for the probe
    assert probe_steps(TrainConfig(), 4000, 3) == 21
    assert probe_steps(TrainConfig(epochs=1), 64, 3) == 4  # the least that has a first and a last quarter
    assert lr_probe(tiny_cnn, synthfaces(64, 0), TrainConfig(epochs=12, batch_size=16)).steps == 4


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_chance_is_the_loss_of_predicting_the_smoothed_class_frequencies(eps):
    labels = torch.tensor([0] * 7 + [1] * 2 + [2] * 1)
    smoothed = (1 - eps) * torch.tensor([0.7, 0.2, 0.1]) + eps / 3
    constant = smoothed.log().expand(len(labels), 3)
    assert chance_loss(labels, eps) == pytest.approx(F.cross_entropy(constant, labels, label_smoothing=eps).item())
