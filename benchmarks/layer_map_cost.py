"""What a layer map saves: a 3-layer map against 3 separate single-layer audits, side by side in one run.

SynthFacesCNN on the planted SynthFaces data, levels [3, 9] (3 is every conv as built), one arm per conv
(conv1, conv2, conv3). Each way runs in its own empty cache, as a team writing three audit tests would:

  * fixed design (`--seeds`, default 3): the map trains (1 + 3) x seeds models, the three audits 2 x 3 x seeds;
    each arm's per-seed differences must equal its separate audit's, to the last bit;
  * seeds="auto" (min_seeds 3, max_seeds `--max-seeds`): the map stops settled arms; the three audits
    each run their own sequential design.

    python benchmarks/layer_map_cost.py [--seeds 3] [--max-seeds 8] [--threshold 0.05] [--skip-auto]

Prints models trained and wall time per way. A short untimed audit first starts the worker pool, which
the first timed way would otherwise pay for alone; the two ways alternate order between the fixed and
the sequential part, so a slower phase of a shared machine does not favour one of them.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from pytest_kernelbias import LowPass, SynthFacesCNN, TrainConfig, each, run_audit
from pytest_kernelbias.audit import default_data

LAYERS = ["conv1", "conv2", "conv3"]


def _timed(run) -> tuple[list, float, int]:
    started = time.perf_counter()
    results = run()
    return results, time.perf_counter() - started, sum(r.run.trained for r in results)


def _ways(settings: dict) -> dict:
    def as_map() -> list:
        with tempfile.TemporaryDirectory() as cache:
            return [run_audit(SynthFacesCNN, each(LAYERS), [3, 9], cache=cache, **settings)]

    def separately() -> list:
        with tempfile.TemporaryDirectory() as cache:
            return [run_audit(SynthFacesCNN, layer, [3, 9], cache=cache, **settings) for layer in LAYERS]

    return {"map": as_map, "separate": separately}


def _report(name: str, timed: dict) -> None:
    (_, map_s, map_n), (_, sep_s, sep_n) = timed["map"], timed["separate"]
    print(f"{name}: map {map_n} models in {map_s:.0f} s; 3 separate audits {sep_n} models in {sep_s:.0f} s; "
          f"map / separate = {map_n / sep_n:.3f} of the models, {map_s / sep_s:.3f} of the time")


def _arms_equal(map_result, separate: list) -> bool:
    arms = {level.layer: e for (_, level), e in map_result.all_effects.items()}
    return all(arms[layer].differences == next(iter(r.all_effects.values())).differences
               for layer, r in zip(LAYERS, separate))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-seeds", type=int, default=8)
    parser.add_argument("--threshold", type=float, default=0.05)
    parser.add_argument("--skip-auto", action="store_true")
    args = parser.parse_args()
    train, test = default_data("planted", n_train=2000, n_test=1000)
    # Warm-up, not timed: the first audit would otherwise pay the worker pool's start for its way alone.
    run_audit(SynthFacesCNN, "conv1", [3, 9], data=train, test_data=test, seeds=2, progress=None, placebos=(),
              train_config=TrainConfig(epochs=1), require_learning=False)
    common = dict(data=train, test_data=test, attributes="skin_tone", perturbation=LowPass(0.4),
                  threshold=args.threshold, progress=None, placebos=())
    ways = _ways({**common, "seeds": args.seeds})
    fixed = {name: _timed(ways[name]) for name in ("map", "separate")}
    _report(f"fixed, {args.seeds} seeds", fixed)
    same = _arms_equal(fixed["map"][0][0], fixed["separate"][0])
    print(f"  every arm's differences equal its separate audit's: {same}")
    if args.skip_auto:
        return
    ways = _ways({**common, "seeds": "auto", "min_seeds": 3, "max_seeds": args.max_seeds})
    auto = {name: _timed(ways[name]) for name in ("separate", "map")}  # the other order this time
    _report(f"seeds=auto 3..{args.max_seeds}", auto)
    for a in auto["map"][0][0].sequential["arms"]:
        print(f"  map arm {a['arm']}: {a['verdict']} at {a['seeds']} seeds")
    for layer, r in zip(LAYERS, auto["separate"][0]):
        print(f"  separate {layer}: {r.path.verdict} at {r.path.seeds} seeds")


if __name__ == "__main__":
    main()
