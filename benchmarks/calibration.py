"""Calibration of the audit statistics on simulated audits with a known true effect.

    python benchmarks/calibration.py [--audits 2000] [--image-audits 300] [--n-boot 500]
                                     [--sequential-audits 2000] [--map-audits 2000]
                                     [--parts seed image sequential map]
                                     [--seed 0] [--quick] [--json out.json]

Nothing here trains a network: audits are drawn from generative models whose
true effect tau is known, and every interval and verdict comes from the public
API (`paired_effect`, `Effect.passes`, `power`, `hierarchical_bootstrap`).

Part 1, seed-level model. For seeds s = 1..n,
    B(k0, s) = b0 + u_s + e0_s,    B(k, s) = b0 + tau + u_s + e1_s,
with u_s ~ N(0, sigma_seed) shared by both levels (paired seeds) and
e ~ N(0, sigma_model), so d_s = B(k, s) - B(k0, s) ~ N(tau, sigma_diff),
sigma_diff = sqrt(2) * sigma_model. For n in {3, 5, 10} it reports
  * coverage of nominal 95% intervals for method "t", "bootstrap" (BCa) and
    "permutation" (sign-flip inversion; infinite when n < 6), with the share
    of infinite intervals, the misses below / above, and the Monte Carlo SE;
    the goal is 94-96%. Audits drawn at tau = threshold = 0.05;
  * the false-failure rate of rule="lower" at tau = threshold (goal <= 5%) and
    the false-pass rate of rule="upper" there (an effect equal to the
    threshold certified as below it);
  * the false-failure rate of rule="estimate" at tau = 0, threshold 0.05,
    next to its normal-theory value 2 * (1 - Phi(threshold * sqrt(n) / sigma_diff));
  * power, P(rule="lower" at threshold 0 fails, i.e. the CI excludes 0), over
    tau = {0, 0.25, 0.5, 1, 1.5, 2} x sigma_diff for each method, next to the
    analytic `power(tau, sigma_diff, n)` of the package (paired t). The noise
    draws are shared across the tau grid (common random numbers).

Part 2, per-image model (test-set sampling noise). Two subgroups A and B of m
test images each (one shared test set per audit), n = 5 seeds, levels k0 = 3
and k = 9. Image i has a difficulty U_i ~ Uniform(0, 1) that every model
shares. Model (level, seed) decides image i with W_i = U_i with probability
rho, else with its own fresh uniform draw; it is correct on clean images when
W_i < clean accuracy of the image's group and on perturbed images when
W_i < perturbed accuracy (the same W_i: a perturbation only breaks images).
So each model's population accuracies are exactly the ones set, and with
rho > 0 models err on the same images. Per model: clean accuracy = base_g +
v_s, drop_g = base drop_g(level) + u_s + e_(level, s, g); the population bias
|drop_B - drop_A| is folded normal, and the population tau (infinite test
set, expectation over seeds) is known in closed form. Reported for
(rho, sigma(e)) = (0, 0.01) (independent errors, a control), (0.8, 0.01)
(shared difficulty), and (0.95, 0.0025), (1, 0.0025) (models err on almost
the same images and differ little from seed to seed, so the one test set's
sampling noise is a large share of the total): coverage of the seed-level
paired t interval and of `hierarchical_bootstrap` (seeds and images
resampled, n_boot draws), widths, the spread of the estimate across audits
and its bias.

Part 3, sequential seeds (analysis/_sequential.py). d_s ~ N(tau, sd) with sd
0.0075 (SynthFaces, null example) and 0.03 (resnet18), threshold 0.05, tau in
{0, 0.5, 1, 1.5, 2} x threshold, for the designs in SEQ_DESIGNS (the default, Pocock with futility 0.1,
at max_seeds 10 and 20; for contrast Pocock without futility, O'Brien-Fleming and Bonferroni at 10); every audit is
`run_sequential` (the audit's own code path, paired t intervals at the
per-look levels). Reported per cell: P(pass), P(fail), P(undecided) with
Monte Carlo SE, so the false-failure rate of rule "lower" and the false-pass
rate of rule "upper" at tau = threshold (goal <= 5% each); rule "estimate"'s
failure rate (undecided judged by |estimate|); the mean seeds per level; the
fixed design (nominal 95% t interval, so the same error rate at the
threshold) that settles correctly as often as the sequential one did, from
the exact integral over the sample sd (`fixed_settle_probability`); and the
fixed design for 80% power (`seeds_needed`). The draws are shared across tau
(common random numbers). Part 3a first checks each boundary on independent
null paths (direct per-seed draws, scipy t quantiles): the share whose K
intervals miss tau at any look, for normal and t(5) differences, with the
Monte Carlo SE; goal <= 5%.

Part 4, layer maps (benchmarks/calibration_layer_map.py, also runnable alone): L = 3 arms sharing one
reference, normal and skewed differences, decided as one family with sequential arms, against a fixed
map and L separate fixed or sequential audits: the family-wise error with every |tau| at the threshold
(goal <= 5%) and the mean models per arm.

Every RNG is seeded from --seed (default 0) and the part / setting, so a run
is reproducible; --quick uses 300 / 60 / 300 audits for iteration; --parts
runs a subset (default all four). The printed
table ends with the run time; --json PATH writes all numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings

import calibration_layer_map  # a sibling script: python puts benchmarks/ on the path
import numpy as np
from scipy import integrate, special, stats

from pytest_kernelbias.analysis._decision import run_sequential
from pytest_kernelbias.analysis._effects import paired_effect
from pytest_kernelbias.analysis._estimators import hierarchical_bootstrap
from pytest_kernelbias.analysis._power import seeds_needed
from pytest_kernelbias.analysis._sequential import BOUNDARIES, SequentialDesign, look_alphas
from pytest_kernelbias.evaluation._metrics import index_codes
from pytest_kernelbias.stats import power

METHODS = ("t", "bootstrap", "permutation")
SEED_COUNTS = (3, 5, 10)
CONFIDENCE = 0.95
THRESHOLD = 0.05
COVERAGE_GOAL = (0.94, 0.96)
LOWER_FALSE_FAIL_GOAL = 0.05

# Part 1: seed-level model.
B0 = 0.10
SIGMA_SEED = 0.03
SIGMA_MODEL = 0.03
SIGMA_DIFF = math.sqrt(2) * SIGMA_MODEL
POWER_MULTIPLES = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0)

# Part 2: per-image model.
K0, K = 3, 9
IMAGES_PER_GROUP = 500
IMAGE_SEEDS = 5
CLEAN_ACC = {"A": 0.92, "B": 0.88}
CLEAN_SHIFT = {K0: 0.0, K: 0.005}                  # level's effect on clean accuracy (both groups)
BASE_DROP = {K0: {"A": 0.10, "B": 0.20}, K: {"A": 0.10, "B": 0.25}}
SIGMA_ACC_SEED = 0.01                               # v_s: seed shift of clean accuracy, shared by levels
SIGMA_DROP_SEED = 0.02                              # u_s: seed shift of every drop, shared by levels
SIGMA_DROP_MODEL = 0.01                             # e: per model and group (default)
# (rho, sigma(e)): independent errors (control); shared difficulty; then models that err on
# (almost) the same images with little seed-to-seed noise, where the one test set's sampling
# noise is a large share of the total.
SCENARIOS = ((0.0, SIGMA_DROP_MODEL), (0.8, SIGMA_DROP_MODEL), (0.95, 0.0025), (1.0, 0.0025))

# Part 3: sequential seeds. Seed spreads measured on SynthFaces (null example: per-seed sd of d about
# 0.0075) and resnet18 (+0.105, CI [+0.030, +0.180] over 3 seeds: sd about 0.03).
SEQ_SDS = (0.0075, 0.03)
SEQ_THRESHOLD = 0.05
SEQ_MULTIPLES = (0.0, 0.5, 1.0, 1.5, 2.0)
# (min_seeds, max_seeds, round_size, boundary, futility): the default at two caps, then for contrast the
# default boundary without futility and the other two boundaries.
SEQ_DESIGNS = ((3, 10, 1, "pocock", 0.1), (3, 20, 1, "pocock", 0.1), (3, 10, 1, "pocock", 0.0),
               (3, 20, 1, "pocock", 0.0), (3, 10, 1, "obrien-fleming", 0.1), (3, 10, 1, "bonferroni", 0.1))
BOUNDARY_DESIGNS = ((2, 6, 1), (3, 10, 1), (3, 12, 3), (3, 20, 1), (2, 20, 1), (4, 20, 4))
SEQ_ERROR_GOAL = 0.05
FIXED_LIMIT = 400                                   # matched fixed designs are searched up to this many seeds

# Stream tags for the seeded generators.
_COVERAGE, _POWER, _IMAGES, _BOUNDARY, _SEQUENTIAL = 1, 2, 3, 4, 5


def rng_for(base: int, *tags: int) -> np.random.Generator:
    return np.random.default_rng([base, *tags])


def mc_se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 1e-12) / n)


def effect_of(treated: np.ndarray, reference: np.ndarray, method: str, counter: dict):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        e = paired_effect(treated, reference, confidence=CONFIDENCE, method=method)
    counter[method] = counter.get(method, 0) + len(caught)
    return e


# --------------------------------------------------------------------------- part 1
def seed_level_draws(rng: np.random.Generator, audits: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shared seed effect u and per-model noise e0, e1, each (audits, n)."""
    u = rng.normal(0.0, SIGMA_SEED, (audits, n))
    e0 = rng.normal(0.0, SIGMA_MODEL, (audits, n))
    e1 = rng.normal(0.0, SIGMA_MODEL, (audits, n))
    return u, e0, e1


def coverage_part(audits: int, base: int, warn_count: dict) -> list[dict]:
    tau = THRESHOLD
    rows = []
    for n in SEED_COUNTS:
        u, e0, e1 = seed_level_draws(rng_for(base, _COVERAGE, n), audits, n)
        reference = B0 + u + e0
        treated = B0 + tau + u + e1
        for method in METHODS:
            covered = infinite = below = above = lower_fail = upper_pass = 0
            widths = []
            for a in range(audits):
                e = effect_of(treated[a], reference[a], method, warn_count)
                lo, hi = e.ci
                finite = math.isfinite(lo) and math.isfinite(hi)
                infinite += not finite
                if finite:
                    widths.append(hi - lo)
                covered += lo <= tau <= hi
                below += tau < lo
                above += tau > hi
                lower_fail += not e.passes(THRESHOLD, "lower")
                upper_pass += e.passes(THRESHOLD, "upper")
            cov = covered / audits
            rows.append({
                "n": n, "method": method, "audits": audits, "tau": tau,
                "coverage": cov, "coverage_mc_se": mc_se(cov, audits),
                "miss_tau_below_ci": below / audits, "miss_tau_above_ci": above / audits,
                "fraction_infinite": infinite / audits,
                "mean_width_finite": float(np.mean(widths)) if widths else None,
                "meets_goal": bool(COVERAGE_GOAL[0] <= cov <= COVERAGE_GOAL[1]) and infinite == 0,
                "lower_false_fail_at_threshold": lower_fail / audits,
                "lower_meets_goal": lower_fail / audits <= LOWER_FALSE_FAIL_GOAL,
                "upper_false_pass_at_threshold": upper_pass / audits,
            })
    return rows


def power_part(audits: int, base: int, warn_count: dict) -> tuple[list[dict], list[dict]]:
    power_rows, estimate_rows = [], []
    for n in SEED_COUNTS:
        u, e0, e1 = seed_level_draws(rng_for(base, _POWER, n), audits, n)
        reference = B0 + u + e0
        for mult in POWER_MULTIPLES:
            tau = mult * SIGMA_DIFF
            treated = B0 + tau + u + e1
            row = {"n": n, "tau_over_sd": mult, "tau": tau, "audits": audits,
                   "analytic_t_power": power(tau, SIGMA_DIFF, n, 1 - CONFIDENCE)}
            for method in METHODS:
                fails = 0
                est_fails = 0
                for a in range(audits):
                    e = effect_of(treated[a], reference[a], method, warn_count)
                    fails += not e.passes(0.0, "lower")
                    if method == "t" and mult == 0.0:
                        est_fails += not e.passes(THRESHOLD, "estimate")
                row[method] = fails / audits
                if method == "t" and mult == 0.0:
                    rate = est_fails / audits
                    estimate_rows.append({
                        "n": n, "audits": audits, "threshold": THRESHOLD, "tau": 0.0,
                        "estimate_false_fail": rate, "mc_se": mc_se(rate, audits),
                        "normal_theory": 2 * float(stats.norm.sf(THRESHOLD * math.sqrt(n) / SIGMA_DIFF)),
                    })
            row["t_mc_se"] = mc_se(row["t"], audits)
            power_rows.append(row)
    return power_rows, estimate_rows


# --------------------------------------------------------------------------- part 2
def folded_normal_mean(mu: float, sigma: float) -> float:
    """E|X| for X ~ N(mu, sigma)."""
    return sigma * math.sqrt(2 / math.pi) * math.exp(-mu ** 2 / (2 * sigma ** 2)) \
        + mu * (1 - 2 * stats.norm.cdf(-mu / sigma))


def population_tau(sigma_model: float = SIGMA_DROP_MODEL) -> float:
    sigma_gap = math.sqrt(2) * sigma_model
    gap = {lev: BASE_DROP[lev]["B"] - BASE_DROP[lev]["A"] for lev in (K0, K)}
    return folded_normal_mean(gap[K], sigma_gap) - folded_normal_mean(gap[K0], sigma_gap)


def image_audit(rng: np.random.Generator, m: int, rho: float, n_seeds: int, sigma_model: float):
    """One simulated audit on one shared test set: per-image predictions and the seed-level biases."""
    n_img = 2 * m
    names = ("A", "B")
    labels = rng.integers(0, 2, n_img)
    groups = {"A": np.arange(m), "B": np.arange(m, n_img)}
    difficulty = rng.random(n_img)  # U_i, shared by every model tested on this test set
    v = rng.normal(0.0, SIGMA_ACC_SEED, n_seeds)
    u = rng.normal(0.0, SIGMA_DROP_SEED, n_seeds)
    clean, perturbed, bias = {}, {}, {}
    for level in (K0, K):
        e = rng.normal(0.0, sigma_model, (n_seeds, 2))
        bias[level] = np.empty(n_seeds)
        for s in range(n_seeds):
            acc_c = np.array([CLEAN_ACC[g] + CLEAN_SHIFT[level] + v[s] for g in names])
            acc_p = acc_c - np.array([BASE_DROP[level][g] for g in names]) - u[s] - e[s]
            if not (np.all((acc_c > 0) & (acc_c < 1)) and np.all((acc_p > 0) & (acc_p < 1))):
                raise RuntimeError("a simulated accuracy left (0, 1); change the part-2 parameters")
            shared = rng.random(n_img) < rho
            w = np.where(shared, difficulty, rng.random(n_img))
            right_c = w < np.repeat(acc_c, m)
            right_p = w < np.repeat(acc_p, m)
            clean[(level, s)] = np.where(right_c, labels, 1 - labels)
            perturbed[(level, s)] = np.where(right_p, labels, 1 - labels)
            drops = np.array([right_c[groups[g]].mean() - right_p[groups[g]].mean() for g in names])
            bias[level][s] = drops.max() - drops.min()
    return clean, perturbed, labels, groups, bias


def image_part(audits: int, n_boot: int, base: int, m: int = IMAGES_PER_GROUP,
               n_seeds: int = IMAGE_SEEDS) -> list[dict]:
    rows = []
    for j, (rho, sigma_model) in enumerate(SCENARIOS):
        tau = population_tau(sigma_model)
        rng = rng_for(base, _IMAGES, j)
        est, t_cov, h_cov, t_w, h_w, t_se2 = [], 0, 0, [], [], []
        t_below = t_above = h_below = h_above = 0
        for a in range(audits):
            clean, perturbed, labels, groups, bias = image_audit(rng, m, rho, n_seeds, sigma_model)
            t_eff = paired_effect(bias[K], bias[K0], confidence=CONFIDENCE, method="t")
            codes, names = index_codes(groups, len(labels))
            h_eff = hierarchical_bootstrap(clean, perturbed, labels, codes, names, K, K0, list(range(n_seeds)),
                                           n_boot=n_boot, confidence=CONFIDENCE, seed=base * 1_000_003 + a)
            if abs(t_eff.estimate - h_eff.estimate) > 1e-9:
                raise RuntimeError(f"estimates disagree: t {t_eff.estimate} vs hierarchical {h_eff.estimate}")
            est.append(t_eff.estimate)
            t_se2.append(t_eff.sd ** 2 / n_seeds)
            for eff, name in ((t_eff, "t"), (h_eff, "h")):
                lo, hi = eff.ci
                hit, below, above = lo <= tau <= hi, tau < lo, tau > hi
                if name == "t":
                    t_cov, t_below, t_above = t_cov + hit, t_below + below, t_above + above
                    t_w.append(hi - lo)
                else:
                    h_cov, h_below, h_above = h_cov + hit, h_below + below, h_above + above
                    h_w.append(hi - lo)
        est = np.asarray(est)
        rows.append({
            "rho": rho, "sigma_e": sigma_model, "images_per_group": m, "seeds": n_seeds, "audits": audits,
            "n_boot": n_boot,
            "population_tau": tau, "mean_estimate": float(est.mean()),
            "sd_estimate_across_audits": float(est.std(ddof=1)),
            "rms_seed_level_se": float(math.sqrt(np.mean(t_se2))),
            "t_coverage": t_cov / audits, "t_mc_se": mc_se(t_cov / audits, audits),
            "t_miss_below_above": [t_below / audits, t_above / audits], "t_mean_width": float(np.mean(t_w)),
            "hier_coverage": h_cov / audits, "hier_mc_se": mc_se(h_cov / audits, audits),
            "hier_miss_below_above": [h_below / audits, h_above / audits], "hier_mean_width": float(np.mean(h_w)),
        })
    return rows


# --------------------------------------------------------------------------- part 3
def boundary_part(paths: int, base: int) -> list[dict]:
    """Share of independent null paths whose intervals miss tau at any planned look, per boundary."""
    rows = []
    for j, (lo_n, hi_n, step) in enumerate(BOUNDARY_DESIGNS):
        for b, boundary in enumerate(BOUNDARIES):
            design = SequentialDesign(lo_n, hi_n, step, boundary)
            counts = np.asarray(design.looks)
            alphas = np.asarray(look_alphas(design, CONFIDENCE))
            quantiles = special.stdtrit(counts - 1, 1 - alphas / 2)
            for name in ("normal", "t5"):
                rng = rng_for(base, _BOUNDARY, j, b, name == "t5")
                d = rng.standard_normal((paths, hi_n)) if name == "normal" else rng.standard_t(5, (paths, hi_n))
                mean = np.cumsum(d, axis=1)[:, counts - 1] / counts
                sq = np.cumsum(d * d, axis=1)[:, counts - 1]
                se = np.sqrt((sq - counts * mean**2) / (counts - 1) / counts)
                t = mean / se  # true mean 0 for both distributions
                any_miss = np.mean(np.any(np.abs(t) > quantiles, axis=1))
                above = np.mean(np.any(t > quantiles, axis=1))  # interval entirely above tau: a false "fail"
                rows.append({"design": [lo_n, hi_n, step], "looks": len(counts), "boundary": boundary,
                             "distribution": name, "paths": paths, "per_look_alpha": [float(a) for a in alphas],
                             "miss_any_look": float(any_miss), "mc_se": mc_se(float(any_miss), paths),
                             "entirely_above_any_look": float(above),
                             "meets_goal": bool(any_miss <= SEQ_ERROR_GOAL + 3 * mc_se(SEQ_ERROR_GOAL, paths))})
    return rows


def fixed_settle_probability(tau: float, sd: float, n: int, threshold: float, confidence: float = CONFIDENCE
                             ) -> tuple[float, float]:
    """P(pass), P(fail) of a fixed design: the n-seed t interval inside / beyond +-threshold.

    Exact for normal differences: given the sample sd s, the mean is N(tau, sd / sqrt(n)), so both
    are normal probabilities; they are integrated over s = sd * U / sqrt(n - 1), U ~ chi(n - 1).
    """
    crit = float(stats.t.ppf(0.5 + confidence / 2, n - 1))
    se = sd / math.sqrt(n)

    def given(u: float) -> tuple[float, float]:
        h = crit * sd * u / math.sqrt(n - 1) / math.sqrt(n)
        inside = max(0.0, stats.norm.cdf((threshold - h - tau) / se) - stats.norm.cdf((h - threshold - tau) / se))
        beyond = stats.norm.cdf((tau - threshold - h) / se) + stats.norm.cdf((-threshold - h - tau) / se)
        return inside, beyond

    top = float(stats.chi.isf(1e-14, n - 1))
    density = stats.chi(n - 1).pdf
    p_pass = integrate.quad(lambda u: density(u) * given(u)[0], 0, top, limit=200)[0]
    p_fail = integrate.quad(lambda u: density(u) * given(u)[1], 0, top, limit=200)[0]
    return p_pass, p_fail


def matched_fixed_seeds(tau: float, sd: float, threshold: float, target: float) -> int | None:
    """Fewest seeds whose fixed design settles correctly (pass below, fail above the threshold) at `target`.

    That probability grows with n, so doubling then bisecting finds the smallest n (None past FIXED_LIMIT).
    """
    side = 0 if abs(tau) < threshold else 1

    def enough(n: int) -> bool:
        return fixed_settle_probability(tau, sd, n, threshold)[side] >= target

    if enough(2):
        return 2
    lo, hi = 2, 4
    while not enough(hi):
        if hi >= FIXED_LIMIT:
            return None
        lo, hi = hi, min(2 * hi, FIXED_LIMIT)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if not enough(mid) else (lo, mid)
    return hi


def sequential_part(audits: int, base: int) -> list[dict]:
    rows = []
    for j, (lo_n, hi_n, step, boundary, futility) in enumerate(SEQ_DESIGNS):
        design = SequentialDesign(lo_n, hi_n, step, boundary, futility)
        for i, sd in enumerate(SEQ_SDS):
            z = rng_for(base, _SEQUENTIAL, j, i).standard_normal((audits, hi_n))  # shared across tau
            for mult in SEQ_MULTIPLES:
                tau = mult * SEQ_THRESHOLD
                verdicts, seeds, est_fail = [], [], 0
                for a in range(audits):
                    path = run_sequential(tau + sd * z[a], design, SEQ_THRESHOLD, "lower", CONFIDENCE, p_method="t")
                    verdicts.append(path.verdict)
                    seeds.append(path.seeds)
                    est_fail += path.verdict == "fail" or (
                        path.verdict == "undecided" and abs(path.effect.estimate) > SEQ_THRESHOLD)
                share = {v: verdicts.count(v) / audits for v in ("pass", "fail", "undecided")}
                row = {"design": [lo_n, hi_n, step], "boundary": boundary, "futility": futility, "sd": sd,
                       "tau_over_threshold": mult,
                       "tau": tau, "threshold": SEQ_THRESHOLD, "audits": audits,
                       "per_look_alpha": list(look_alphas(design, CONFIDENCE)),
                       "p_pass": share["pass"], "p_fail": share["fail"], "p_undecided": share["undecided"],
                       "mc_se_pass": mc_se(share["pass"], audits), "mc_se_fail": mc_se(share["fail"], audits),
                       "estimate_rule_fail": est_fail / audits, "mean_seeds": float(np.mean(seeds)),
                       "far_from_threshold": abs(tau - SEQ_THRESHOLD) >= 2 * sd / math.sqrt(hi_n)}
                if mult == 1.0:
                    row["fixed_same_power"] = row["fixed_80"] = None
                    row["lower_false_fail"], row["upper_false_pass"] = share["fail"], share["pass"]
                    row["meets_goal"] = bool(share["fail"] <= SEQ_ERROR_GOAL and share["pass"] <= SEQ_ERROR_GOAL)
                else:
                    correct = share["pass"] if mult < 1 else share["fail"]
                    # With every audit correct, the simulated power is only known to be above 1 - 1/(2N).
                    row["power"] = correct
                    row["fixed_same_power"] = matched_fixed_seeds(tau, sd, SEQ_THRESHOLD,
                                                                  min(correct, 1 - 0.5 / audits))
                    row["fixed_80"] = seeds_needed(abs(tau - SEQ_THRESHOLD), sd, 1 - CONFIDENCE, 0.8)
                    fixed = row["fixed_same_power"]
                    row["meets_goal"] = (not row["far_from_threshold"]) or fixed is None or \
                        row["mean_seeds"] <= fixed
                rows.append(row)
    return rows


# --------------------------------------------------------------------------- report
def pct(x: float | None, digits: int = 1) -> str:
    return "   -" if x is None else f"{100 * x:.{digits}f}"


def print_report(out: dict) -> None:
    if "coverage" in out:
        print_seed_level(out)
    if "image" in out:
        print_image_level(out)
    if "sequential" in out:
        print_sequential(out)
    if any(out["warnings"].values()):
        print(f"\nwarnings raised inside paired_effect (suppressed): {out['warnings']}")
    parts = ", ".join(f"{k} {v:.1f}s" for k, v in out["seconds_by_part"].items())
    print(f"\nrun time {out['seconds']:.1f}s ({parts}); seed {out['settings']['seed']}; "
          f"python {sys.version.split()[0]}, numpy {np.__version__}")


def print_seed_level(out: dict) -> None:
    p = print
    s = out["settings"]
    p(f"Part 1: seed-level model  b0={B0} sigma_seed={SIGMA_SEED} sigma_model={SIGMA_MODEL} "
      f"sigma_diff={SIGMA_DIFF:.4f}  nominal {CONFIDENCE:.0%}, threshold {THRESHOLD}")
    p(f"\n1a. Coverage at tau = {THRESHOLD} ({s['audits']} audits per n; goal "
      f"{COVERAGE_GOAL[0]:.0%}-{COVERAGE_GOAL[1]:.0%}); 'lower' false-fail at tau = threshold (goal <= 5%)")
    p(f"{'n':>3} {'method':<12} {'cover%':>7} {'±se':>5} {'miss<':>6} {'miss>':>6} {'inf%':>6} "
      f"{'width':>7} {'goal':>5} | {'lowerFF%':>8} {'goal':>5} | {'upperFP%':>8}")
    for r in out["coverage"]:
        width = "      -" if r["mean_width_finite"] is None else f"{r['mean_width_finite']:7.4f}"
        p(f"{r['n']:>3} {r['method']:<12} {pct(r['coverage']):>7} {pct(r['coverage_mc_se']):>5} "
          f"{pct(r['miss_tau_below_ci']):>6} {pct(r['miss_tau_above_ci']):>6} {pct(r['fraction_infinite']):>6} "
          f"{width} {'yes' if r['meets_goal'] else 'NO':>5} | {pct(r['lower_false_fail_at_threshold']):>8} "
          f"{'yes' if r['lower_meets_goal'] else 'NO':>5} | {pct(r['upper_false_pass_at_threshold']):>8}")
    p("   miss< : interval entirely above tau; miss> : entirely below tau; inf% : infinite intervals "
      "(counted as covering)")
    p(f"\n1b. rule='estimate' false-fail at tau = 0, threshold {THRESHOLD} ({s['audits']} audits per n)")
    p(f"{'n':>3} {'sim%':>6} {'±se':>5} {'normal theory%':>15}")
    for r in out["estimate_null"]:
        p(f"{r['n']:>3} {pct(r['estimate_false_fail'], 2):>6} {pct(r['mc_se'], 2):>5} {pct(r['normal_theory'], 2):>15}")
    p(f"\n1c. Power: P(rule='lower', threshold 0 fails = CI excludes 0), {s['audits']} audits per cell; "
      "analytic = package power(tau, sigma_diff, n)")
    p(f"{'n':>3} {'tau/sd':>6} {'tau':>7} | {'analytic':>8} {'t':>6} {'±se':>5} {'bootstrap':>9} {'permutation':>11}")
    for r in out["power"]:
        p(f"{r['n']:>3} {r['tau_over_sd']:>6.2f} {r['tau']:>7.4f} | {pct(r['analytic_t_power']):>8} {pct(r['t']):>6} "
          f"{pct(r['t_mc_se']):>5} {pct(r['bootstrap']):>9} {pct(r['permutation']):>11}")


def print_image_level(out: dict) -> None:
    p = print
    s = out["settings"]
    p(f"\nPart 2: per-image model  m={IMAGES_PER_GROUP} images/group, {IMAGE_SEEDS} seeds, levels {K0} vs {K}, "
      f"clean acc {CLEAN_ACC}, drops {BASE_DROP[K0]} -> {BASE_DROP[K]},")
    p(f"        sigma(v_s)={SIGMA_ACC_SEED} sigma(u_s)={SIGMA_DROP_SEED}; n_boot={s['n_boot']}, "
      f"{s['image_audits']} audits per row; coverage of the population tau (infinite test set)")
    p(f"{'rho':>4} {'sig(e)':>6} {'tau':>7} {'mean est':>9} {'sd est':>7} {'rms se':>7} | "
      f"{'t cov%':>6} {'±se':>5} {'miss<':>6} {'miss>':>6} "
      f"{'width':>7} | {'hier cov%':>9} {'±se':>5} {'miss<':>6} {'miss>':>6} {'width':>7}")
    for r in out["image"]:
        p(f"{r['rho']:>4.2f} {r['sigma_e']:>6.4f} {r['population_tau']:>7.5f} {r['mean_estimate']:>9.5f} "
          f"{r['sd_estimate_across_audits']:>7.4f} "
          f"{r['rms_seed_level_se']:>7.4f} | {pct(r['t_coverage']):>6} {pct(r['t_mc_se']):>5} "
          f"{pct(r['t_miss_below_above'][0]):>6} {pct(r['t_miss_below_above'][1]):>6} {r['t_mean_width']:>7.4f} | "
          f"{pct(r['hier_coverage']):>9} {pct(r['hier_mc_se']):>5} {pct(r['hier_miss_below_above'][0]):>6} "
          f"{pct(r['hier_miss_below_above'][1]):>6} {r['hier_mean_width']:>7.4f}")
    p("   sd est: spread of the estimate over audits (the true standard error); rms se: the seed-level "
      "SE sd(d)/sqrt(n) the t interval uses")


def _cell(x: int | None) -> str:
    return f">{FIXED_LIMIT}" if x is None else str(x)


def print_sequential(out: dict) -> None:
    p = print
    s = out["settings"]
    p(f"\nPart 3a: boundaries on {s['boundary_paths']} independent null paths per row: share whose intervals "
      f"miss tau at any look (goal <= {SEQ_ERROR_GOAL:.0%}); 'above' = entirely above tau at some look")
    p(f"{'design':>12} {'K':>3} {'boundary':<15} {'dist':<6} {'alpha/look (first..last)':>24} | "
      f"{'miss%':>6} {'±se':>5} {'above%':>6} {'goal':>5}")
    for r in out["boundaries"]:
        a = r["per_look_alpha"]
        p(f"{str(tuple(r['design'])):>12} {r['looks']:>3} {r['boundary']:<15} {r['distribution']:<6} "
          f"{a[0]:>11.5f}..{a[-1]:<11.5f} | {pct(r['miss_any_look'], 2):>6} {pct(r['mc_se'], 2):>5} "
          f"{pct(r['entirely_above_any_look'], 2):>6} {'yes' if r['meets_goal'] else 'NO':>5}")
    p(f"\nPart 3b: sequential audits, threshold {SEQ_THRESHOLD}, {s['sequential_audits']} audits "
      "per cell; fixed = nominal 95% t design settling correctly as often (same power) / with 80% power")
    p(f"{'design':>12} {'boundary':<15} {'fut':>4} {'sd':>6} {'tau/thr':>7} | {'pass%':>6} {'±se':>5} "
      f"{'fail%':>6} {'±se':>5} "
      f"{'undec%':>6} "
      f"{'est fail%':>9} | {'mean seeds':>10} {'fixed same':>10} {'fixed 80%':>9} {'far':>4} {'goal':>5}")
    for r in out["sequential"]:
        p(f"{str(tuple(r['design'])):>12} {r['boundary']:<15} {r['futility']:>4.2g} {r['sd']:>6.4f} "
          f"{r['tau_over_threshold']:>7.1f} | "
          f"{pct(r['p_pass']):>6} {pct(r['mc_se_pass']):>5} {pct(r['p_fail']):>6} {pct(r['mc_se_fail']):>5} "
          f"{pct(r['p_undecided']):>6} {pct(r['estimate_rule_fail']):>9} | "
          f"{r['mean_seeds']:>10.2f} {_cell(r['fixed_same_power']) if r['tau_over_threshold'] != 1.0 else '-':>10} "
          f"{str(r['fixed_80']) if r['fixed_80'] is not None else '-':>9} "
          f"{'yes' if r['far_from_threshold'] else 'no':>4} {'yes' if r['meets_goal'] else 'NO':>5}")
    p("   at tau/thr = 1: fail% is rule 'lower''s false failures, pass% rule 'upper''s false passes (goal <= 5% each);"
      " far: |tau - thr| >= 2 sd / sqrt(max_seeds),\n   where the goal is mean seeds <= fixed same")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--audits", type=int, default=2000, help="simulated audits per cell in part 1")
    ap.add_argument("--image-audits", type=int, default=300, help="simulated audits per scenario in part 2")
    ap.add_argument("--n-boot", type=int, default=500, help="hierarchical bootstrap replicates in part 2")
    ap.add_argument("--sequential-audits", type=int, default=2000,
                    help="simulated sequential audits per cell in part 3 (the boundary check uses 50x as many paths)")
    ap.add_argument("--parts", nargs="+", choices=("seed", "image", "sequential", "map"),
                    default=["seed", "image", "sequential", "map"], help="which parts to run (default all)")
    ap.add_argument("--map-audits", type=int, default=2000, help="simulated layer maps per cell in part 4")
    ap.add_argument("--seed", type=int, default=0, help="base seed of every RNG")
    ap.add_argument("--quick", action="store_true", help="300 / 60 / 300 audits, for iteration")
    ap.add_argument("--json", help="write every number to this path")
    args = ap.parse_args()
    if args.quick:
        args.audits, args.image_audits = min(args.audits, 300), min(args.image_audits, 60)
        args.sequential_audits = min(args.sequential_audits, 300)
    t0 = time.time()
    warn_count: dict = {}
    out = {"settings": {"audits": args.audits, "image_audits": args.image_audits, "n_boot": args.n_boot,
                        "sequential_audits": args.sequential_audits, "boundary_paths": 50 * args.sequential_audits,
                        "parts": args.parts,
                        "seed": args.seed, "quick": args.quick, "confidence": CONFIDENCE, "threshold": THRESHOLD,
                        "b0": B0, "sigma_seed": SIGMA_SEED, "sigma_model": SIGMA_MODEL, "sigma_diff": SIGMA_DIFF,
                        "seed_counts": list(SEED_COUNTS), "power_multiples": list(POWER_MULTIPLES),
                        "image_model": {"levels": [K0, K], "images_per_group": IMAGES_PER_GROUP,
                                        "seeds": IMAGE_SEEDS, "clean_acc": CLEAN_ACC,
                                        "clean_shift": {str(k): v for k, v in CLEAN_SHIFT.items()},
                                        "base_drop": {str(k): v for k, v in BASE_DROP.items()},
                                        "sigma_acc_seed": SIGMA_ACC_SEED, "sigma_drop_seed": SIGMA_DROP_SEED,
                                        "scenarios_rho_sigma_e": [list(x) for x in SCENARIOS]},
                        "sequential": {"sds": list(SEQ_SDS), "threshold": SEQ_THRESHOLD,
                                       "multiples": list(SEQ_MULTIPLES), "designs": [list(d) for d in SEQ_DESIGNS],
                                       "boundary_designs": [list(d) for d in BOUNDARY_DESIGNS]}}}
    seconds: dict = {}
    if "seed" in args.parts:
        t = time.time()
        out["coverage"] = coverage_part(args.audits, args.seed, warn_count)
        out["power"], out["estimate_null"] = power_part(args.audits, args.seed, warn_count)
        seconds["part 1"] = time.time() - t
    if "image" in args.parts:
        t = time.time()
        out["image"] = image_part(args.image_audits, args.n_boot, args.seed)
        seconds["part 2"] = time.time() - t
    if "sequential" in args.parts:
        t = time.time()
        out["boundaries"] = boundary_part(50 * args.sequential_audits, args.seed)
        out["sequential"] = sequential_part(args.sequential_audits, args.seed)
        seconds["part 3"] = time.time() - t
    if "map" in args.parts:  # part 4: a layer map's family and sequential arms (calibration_layer_map.py)
        t = time.time()
        out["layer_map"] = calibration_layer_map.run(min(args.map_audits, 300) if args.quick else args.map_audits,
                                                     seed=args.seed)
        seconds["part 4"] = time.time() - t
    out["warnings"] = warn_count
    out["seconds_by_part"], out["seconds"] = seconds, time.time() - t0
    print_report(out)
    if "layer_map" in out:
        calibration_layer_map.print_map(out["layer_map"])
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
