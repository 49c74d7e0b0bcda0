"""How parallel executors order and run their work: cost order, longest first, workers that keep their memory."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from pytest_kernelbias import KernelIntervention, SynthFacesCNN, synthfaces
from pytest_kernelbias.execution._base import longest_first
from pytest_kernelbias.execution._eta import PoolEta
from pytest_kernelbias.execution._job import TrainingJob
from pytest_kernelbias.intervention._levels import Intervention
from pytest_kernelbias.plan import Variant
from pytest_kernelbias.training._trainer import TrainConfig


def _layer_flops(model: torch.nn.Module, layer: str, size: int) -> tuple[int, tuple[int, int]]:
    """torch's own count of the forward FLOPs of `layer` on one image, and the layer's input height x width."""
    seen = {}

    def record(_module, args, _out) -> None:  # returns None: the layer's output stays as it is
        seen["hw"] = tuple(args[0].shape[-2:])

    handle = model.get_submodule(layer).register_forward_hook(record)
    with FlopCounterMode(display=False) as counter:
        model.eval()(torch.zeros(1, 3, size, size))
    handle.remove()
    counts = counter.get_flop_counts()
    name = next(k for k in counts if k.endswith("." + layer))
    return sum(counts[name].values()), seen["hw"]


@pytest.mark.parametrize("model, layer, levels, size", [
    (SynthFacesCNN, "conv1", [3, 5, 9, Intervention(kernel_size=7, stride=2)], 32),
    ("resnet18", "layer2.0.conv1", [3, 5, Intervention(kernel_size=5, dilation=2)], 64),  # its own stride 2
    ("mobilenetv3_small_050", "blocks.1.0.conv_dw", [3, 5, 7], 64),  # depthwise: groups = channels
])
def test_cost_is_the_intervened_layers_multiply_adds_per_input_pixel_as_torch_counts_them(model, layer, levels, size):
    intervention = KernelIntervention(model, layer, levels, num_classes=2)
    for level in levels:
        flops, (h, w) = _layer_flops(intervention.build(level, 0), layer, size)
        # FlopCounterMode counts 2 FLOPs per multiply-add, over every output pixel; stride s keeps
        # one output pixel in s x s, which `cost` spreads over the input pixels.
        assert flops == 2 * h * w * intervention.cost(level), (model, level)


def _variant(level, seed: int) -> Variant:
    return Variant(level=level, seed=seed, role="audit", key=f"{level}-{seed}", eval_key="e", order_seed=seed,
                   label=f"k={level} s={seed}", spectra=False, heat_map=False)


def test_longest_first_starts_the_costliest_level_and_keeps_seed_order_within_a_level():
    job = TrainingJob(model=SynthFacesCNN, layers=("conv1",), levels=(3, 9, 5), reference=3, num_classes=2,
                      init="fresh", paired=True, data=synthfaces(64, 0), train_config=TrainConfig(), trainer=None,
                      device="cpu")
    plan_order = [_variant(level, seed) for seed in range(3) for level in (3, 9, 5)]
    ordered = longest_first(plan_order, job)
    assert [(v.level, v.seed) for v in ordered] == [(k, s) for k in (9, 5, 3) for s in range(3)]
    assert sorted(ordered, key=plan_order.index) == plan_order  # a reordering: nothing lost or added


_FAULTS = """
import resource, sys, torch
# What a pool worker has imported before it trains (the fault count depends on the heap's state: in a bare
# process a small allocation can split the freed buffer's hole, and the next fill faults a fresh one).
import pytest_kernelbias.evaluation, pytest_kernelbias.execution._pool, pytest_kernelbias.training
from pytest_kernelbias.execution._memory import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
for _ in range(3):  # the heap takes up to two buffers' room before it settles
    torch.ones(16 * 2**20)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.ones(16 * 2**20)  # 64 MiB, touched by the fill, freed at once
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_a_worker_that_keeps_freed_memory_stops_faulting_its_buffers_back_in():
    def faults(mode: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True)
        kept, count = out.stdout.split()
        return kept, int(count)

    pages = 64 * 2**20 // 4096  # one buffer's 4 KiB pages
    kept, with_keep = faults("keep")
    _, without = faults("default")
    assert kept == "True"
    # glibc mmaps a 64 MiB request (above its 32 MiB adaptive ceiling) and unmaps it on free, so each of
    # the 10 counted fills faults every page again. Kept memory was faulted in by the warm-up fills and
    # the counted ones map no new page; a tenth of one buffer leaves room for Python's own allocations.
    assert without >= 10 * pages
    assert with_keep <= pages // 10


def _fifo_schedule(times: list[float], workers: int) -> list[tuple[float, int, float]]:
    """(finish time, worker, seconds) of each model when `workers` take `times` in order, each as it frees."""
    free = [(0.0, w) for w in range(workers)]
    events = []
    for t in times:
        free.sort()
        start, w = free.pop(0)
        events.append((start + t, w, t))
        free.append((start + t, w))
    return sorted(events)


@pytest.mark.parametrize("n, workers", [(6, 2), (7, 2), (9, 3), (4, 4), (3, 5)])
def test_the_pools_time_left_is_exact_when_every_model_takes_as_long(n, workers):
    events = _fifo_schedule([10.0] * n, workers)
    end = events[-1][0]
    eta = PoolEta(workers, n, start=0.0)
    for finish, worker, seconds in events:
        # With equal models the mean is the true model time, so the estimate is the schedule's own.
        assert eta.finished(worker, seconds, finish) == pytest.approx(end - finish, abs=1e-9)


def test_the_pools_time_left_counts_the_models_still_running():
    # Longest first, as the pool hands them out: three 25 s models, then three 17 s ones, on 2 workers.
    events = _fifo_schedule([25.0] * 3 + [17.0] * 3, 2)
    end = events[-1][0]
    eta = PoolEta(2, 6, start=0.0)
    first_finish, worker, seconds = events[0]
    left = eta.finished(worker, seconds, first_finish)
    naive = first_finish / 1 * 5  # elapsed per finished model x models left: every other worker idle
    # 42 s are left; the naive estimate says 125 s. This one gives the three 17 s models the 25 s of
    # the first, so it is off by their difference, 8 s, on the chain of the worker that ends last.
    assert end - first_finish == 42.0 and naive == 125.0
    assert left == pytest.approx(42.0 + (25.0 - 17.0))
    for finish, worker, seconds in events[1:]:
        left = eta.finished(worker, seconds, finish)
    assert left == 0.0


def test_the_time_left_never_reads_zero_while_models_remain():
    from pytest_kernelbias.execution._estimate import eta_text

    assert eta_text(0.0, 3) == "ETA <1s" and eta_text(0.4, 1) == "ETA <1s"
    assert eta_text(12.4, 2) == "ETA 12s" and eta_text(0.0, 0) == "done"


def test_the_first_estimate_is_the_timed_step_times_the_recipe_s_steps_over_the_workers(monkeypatch):
    from dataclasses import replace

    from pytest_kernelbias import AuditSpec
    from pytest_kernelbias.audit import prepare_plan as prepare
    from pytest_kernelbias.execution import _estimate

    from .conftest import tiny_cnn

    spec = AuditSpec.from_kwargs(tiny_cnn, "0", [3, 5], data=synthfaces(100, 0, "planted"), seeds=3, workers=1,
                                 test_data=synthfaces(60, 0, "planted", split="test"), progress=None,
                                 train_config=TrainConfig(epochs=2, batch_size=32), min_group_size=1)
    plan, job, _ = prepare(spec)
    assert _estimate.step_seconds(job.build(plan.variants[0]), job.data.images[:32], job.data.labels[:32], "cpu") > 0
    timed = {3: 0.25, 5: 0.5}  # fixed step times per level (a real step's time varies): the arithmetic is checked
    monkeypatch.setattr(_estimate, "step_seconds", lambda model, x, y, device: timed[model[0].kernel_size[0]])
    one = _estimate.first_estimate(job, plan.variants, 1)
    two = _estimate.first_estimate(job, plan.variants, 2)
    steps = 2 * 4  # epochs x ceil(100 / 32)
    assert one == pytest.approx(3 * (0.25 + 0.5) * steps) and two == pytest.approx(one / 2)
    assert _estimate.first_estimate(replace(job, trainer=lambda m, d, s: m), plan.variants, 1) is None
