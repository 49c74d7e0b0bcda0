"""Per-subgroup metrics: group_metric against fairlearn's MetricFrame, side by side in one process.

    pip install fairlearn -c constraints-ci.txt   # once; keeps the pinned torch
    python benchmarks/metrics.py [--n 1000000] [--groups 8] [--repeats 15] [--mf-repeats 3]

On --n random binary predictions in --groups subgroups it times
  accuracy      group_metric(..., "accuracy") vs MetricFrame(accuracy_score)
  all five      one group_metric call per metric vs one MetricFrame with all five
  group_codes   the one-off string -> code step ours needs (MetricFrame takes strings)
checks every per-group value and between-groups difference agree (np.allclose), and
prints medians of the repeats and the ratio MetricFrame time / ours. No figure gates anything.
"""

import argparse
import statistics
import time

import numpy as np
from fairlearn import __version__ as fairlearn_version
from fairlearn.metrics import MetricFrame, false_positive_rate, true_positive_rate
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from pytest_kernelbias.evaluation._metrics import METRICS, between_group_difference, group_codes, group_metric

FAIRLEARN = {
    "accuracy": accuracy_score,
    "error": lambda y, p: 1.0 - accuracy_score(y, p),
    "balanced_accuracy": balanced_accuracy_score,
    "tpr": true_positive_rate,
    "fpr": false_positive_rate,
}


def median_time(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up, and the result to compare
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def ours(pred, labels, codes, n_groups, metrics) -> dict[str, np.ndarray]:
    return {m: group_metric(pred, labels, codes, n_groups, m) for m in metrics}


def theirs(pred, labels, keys, metrics) -> MetricFrame:
    return MetricFrame(metrics={m: FAIRLEARN[m] for m in metrics}, y_true=labels, y_pred=pred, sensitive_features=keys)


def agree(mine: dict[str, np.ndarray], mf: MetricFrame, names: list[str]) -> bool:
    diff = mf.difference(method="between_groups")
    return all(
        np.allclose(v, mf.by_group[m].loc[names].to_numpy(), rtol=0, atol=1e-12)
        and np.isclose(between_group_difference(v), diff[m], rtol=0, atol=1e-12)
        for m, v in mine.items()
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--mf-repeats", type=int, default=3)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    keys = np.array([f"group{k}" for k in range(args.groups)])[rng.integers(0, args.groups, args.n)]
    labels, pred = rng.integers(0, 2, args.n), rng.integers(0, 2, args.n)
    t_codes, (codes, names) = median_time(lambda: group_codes(keys), args.repeats)
    print(f"n={args.n:,} items, {args.groups} subgroups; fairlearn {fairlearn_version}, numpy {np.__version__}")
    print(f"medians of {args.repeats} runs (ours) and {args.mf_repeats} runs (MetricFrame)")
    print(f"{'':12s} {'ours':>10s} {'MetricFrame':>12s} {'ratio':>8s}  agree")
    for label, metrics in (("accuracy", ("accuracy",)), ("all five", METRICS)):
        t_ours, mine = median_time(lambda: ours(pred, labels, codes, len(names), metrics), args.repeats)
        t_mf, mf = median_time(lambda: theirs(pred, labels, keys, metrics), args.mf_repeats)
        print(f"{label:12s} {t_ours * 1e3:8.2f}ms {t_mf * 1e3:10.1f}ms {t_mf / t_ours:7.0f}x  {agree(mine, mf, names)}")
    print(f"{'group_codes':12s} {t_codes * 1e3:8.2f}ms  (once per test set; strings -> codes)")


if __name__ == "__main__":
    main()
