"""Independent Monte Carlo check of `run_sequential`'s error rates, written from the definitions.

This script does not use the package's internals: it imports only `run_sequential` and
`SequentialDesign`, simulates per-seed paired differences d_js = tau_j + noise itself, and counts
verdicts. Definitions used:

* The audit FAILS when the verdict is "fail".
* False failure: verdict "fail" while every |tau_j| <= threshold.  Under rule "lower" (undecided
  passes) the false-failure rate is P(verdict == "fail").
* False pass: verdict "pass" while some |tau_j| >= threshold.  Under rule "upper" (undecided
  fails) the false-pass rate is P(verdict == "pass").
* With every |tau_j| == threshold both errors are possible, so both rates are measured in the same
  cell.  The claimed guarantee is <= 5% each (aiming at about 2.5% each side).

Stopping is documented not to depend on the rule, so each draw is run once with rule "lower"
(P(fail)); every `--rule-check`-th draw is also run with rule "upper" and any difference in
verdict or seeds used is counted (column "rdiff"), so the P(pass) column is what rule "upper"
sees.  Monte Carlo SE = sqrt(p (1 - p) / N).  Status: ok (p + 2 SE <= goal), ok? (p <= goal <
p + 2 SE), FAIL? (p > goal >= p - 2 SE), FAIL (p - 2 SE > goal).

Sections: 1 independent families (1, 3, 4 effects; all +thr, or half +thr half -thr), 2
correlated families (d_js = tau_j + a_s + e_js, a_s, e_js ~ N(0, sd/sqrt 2)), 3 power, 4 skewed
differences (tau + sd (E - 1) and tau + sd (1 - E), E ~ Exp(1)), 5 interval check against a
Bonferroni paired t interval computed with scipy.

Command line (from the repository root):

    .venv/bin/python benchmarks/independent_mc.py [--n-fixed 4000] [--n-seq 4000] [--seed 20240611]
                                                   [--sections 1,2,3,4,5] [--rule-check 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

from pytest_kernelbias.stats import SequentialDesign, run_sequential

THR = 0.05
GOAL = 0.05


def status(p: float, se: float, goal: float, upper: bool = True) -> str:
    """Compare a rate with a goal: upper=True means p should be <= goal, else p >= goal."""
    if not upper:
        p, goal = -p, -goal
    if p + 2 * se <= goal:
        return "ok"
    if p <= goal:
        return "ok?"
    if p - 2 * se <= goal:
        return "FAIL?"
    return "FAIL"


def run_cell(draws: np.ndarray, design: SequentialDesign, rule_check: int) -> dict:
    """draws: (N, m, n_cols). Returns verdict counts and seeds used."""
    n = draws.shape[0]
    fails = passes = undecided = other = rdiff = 0
    seeds = np.empty(n)
    for i in range(n):
        d = draws[i]
        path = run_sequential(d, design, THR, rule="lower", p_method="t")
        v = path.verdict
        fails += v == "fail"
        passes += v == "pass"
        undecided += v == "undecided"
        other += v not in ("fail", "pass", "undecided")
        seeds[i] = np.mean(path.seeds)
        # rule "lower": the test fails iff verdict == "fail"
        assert (path.rule_verdict == "fail") == (v == "fail")
        if rule_check and i % rule_check == 0:
            up = run_sequential(d, design, THR, rule="upper", p_method="t")
            rdiff += (up.verdict != v) or (np.mean(up.seeds) != seeds[i])
            assert (up.rule_verdict == "pass") == (up.verdict == "pass")
    return dict(n=n, fail=fails / n, pass_=passes / n, und=undecided / n, other=other,
                seeds=seeds.mean(), rdiff=rdiff)


def se(p: float, n: int) -> float:
    return float(np.sqrt(p * (1 - p) / n))


DESIGNS = [("fixed 8", SequentialDesign(8, 8), 8),
           ("fixed 4", SequentialDesign(4, 4), 4),
           ("seq 3-10", SequentialDesign(3, 10), 10),
           ("seq 3-16", SequentialDesign(3, 16), 16)]  # the default design of seeds="auto"


def taus(m: int, mix: str, value: float = THR) -> np.ndarray:
    if mix == "all+":
        return np.full(m, value)
    k = (m + 1) // 2  # half at +thr (the extra one for odd m), the rest at -thr
    return np.array([value] * k + [-value] * (m - k))


def normal_draws(rng, n, tau, sd, cols, correlated):
    m = len(tau)
    if correlated:
        a = rng.normal(0.0, sd / np.sqrt(2), size=(n, 1, cols))
        e = rng.normal(0.0, sd / np.sqrt(2), size=(n, m, cols))
        return tau[None, :, None] + a + e
    return tau[None, :, None] + rng.normal(0.0, sd, size=(n, m, cols))


HEADER = (f"{'family':<22}{'sd':>6} {'design':<9}{'N':>6}{'P(fail)':>9}{'SE':>7} {'st':<6}"
          f"{'P(pass)':>9}{'SE':>7} {'st':<6}{'P(und)':>8}{'seeds':>7}{'rdiff':>6}")


def row(label, sd, dname, r, fail_goal=("<=", GOAL), pass_goal=("<=", GOAL)):
    n = r["n"]
    sf, sp = se(r["fail"], n), se(r["pass_"], n)
    stf = status(r["fail"], sf, fail_goal[1], fail_goal[0] == "<=") if fail_goal else "-"
    stp = status(r["pass_"], sp, pass_goal[1], pass_goal[0] == "<=") if pass_goal else "-"
    extra = f"  [{r['other']} other verdicts]" if r["other"] else ""
    print(f"{label:<22}{sd:>6.3f} {dname:<9}{n:>6}{r['fail']:>9.4f}{sf:>7.4f} {stf:<6}"
          f"{r['pass_']:>9.4f}{sp:>7.4f} {stp:<6}{r['und']:>8.4f}{r['seeds']:>7.2f}{r['rdiff']:>6}{extra}")
    return stf, stp


def section_null(rng_for, args, correlated):
    title = "2. correlated families" if correlated else "1. independent families"
    print(f"\n{title}: every |tau_j| = threshold = {THR}; goal P(fail) <= 5% (rule lower), "
          f"P(pass) <= 5% (rule upper)")
    print(HEADER)
    out = []
    for m in ([3, 4] if correlated else [1, 3, 4]):
        for mix in (["all+"] if m == 1 else ["all+", "+/-"]):
            for sd in (0.01, 0.03):
                for dname, design, cols in DESIGNS:
                    n = args.n_seq if dname.startswith("seq") else args.n_fixed
                    rng = rng_for((2 if correlated else 1, m, mix, sd, dname))
                    draws = normal_draws(rng, n, taus(m, mix), sd, cols, correlated)
                    r = run_cell(draws, design, args.rule_check)
                    label = f"m={m} {mix}" + (" corr" if correlated else "")
                    out.append((label, sd, dname, row(label, sd, dname, r)))
    return out


def section_power(rng_for, args):
    print("\n3. power (independent, sd 0.03): tau_j = 3*thr -> P(fail) >= 50%; "
          "tau_j = 0 -> P(pass) >= 50%")
    print(HEADER)
    sd = 0.03
    for name, value in (("m=3 tau=3thr", 3 * THR), ("m=3 tau=0", 0.0)):
        for dname, design, cols in (DESIGNS[0], DESIGNS[2], DESIGNS[3]):
            n = args.n_seq if dname.startswith("seq") else args.n_fixed
            rng = rng_for((3, name, dname))
            draws = normal_draws(rng, n, np.full(3, value), sd, cols, False)
            r = run_cell(draws, design, args.rule_check)
            if value > 0:
                row(name, sd, dname, r, fail_goal=(">=", 0.5), pass_goal=None)
            else:
                row(name, sd, dname, r, fail_goal=None, pass_goal=(">=", 0.5))


def section_skew(rng_for, args):
    print("\n4. skewed differences, one effect, tau = thr, sd 0.03 (goal claimed: "
          "P(pass) <= 7.5% for skew +2; P(fail) column judged against 5%)")
    print(HEADER)
    sd = 0.03
    for name, sign in (("skew +2: sd(E-1)", 1.0), ("skew -2: sd(1-E)", -1.0)):
        for dname, design, cols in (DESIGNS[2], DESIGNS[3], DESIGNS[0]):
            n = args.n_fixed  # single effect: cheap
            rng = rng_for((4, name, dname))
            e = rng.exponential(1.0, size=(n, 1, cols))
            draws = THR + sign * sd * (e - 1.0)
            r = run_cell(draws, design, args.rule_check)
            row(name, sd, dname, r, fail_goal=("<=", GOAL), pass_goal=("<=", 0.075 if sign > 0 else GOAL))


def section_intervals(rng_for, args):
    print("\n5. interval check: fixed n, family m, CI = mean +- t_{n-1, 1-alpha/(2m)} s/sqrt(n), alpha=.05")
    print(f"{'m':>3}{'n':>4}{'draws':>7}{'max|dlo|':>11}{'max|dhi|':>11}{'max|dconf|':>12}{'verdict agree':>15}")
    alpha = 0.05
    worst = 0.0
    for m in (1, 3, 4):
        for n in (4, 8):
            rng = rng_for((5, m, n))
            dlo = dhi = dconf = 0.0
            agree = 0
            reps = 50
            for _ in range(reps):
                tau = rng.uniform(-0.1, 0.1, size=m)
                d = tau[:, None] + rng.normal(0.0, 0.03, size=(m, n))
                path = run_sequential(d, SequentialDesign(n, n), THR, rule="lower", p_method="t")
                q = stats.t.ppf(1 - alpha / (2 * m), n - 1)
                mean = d.mean(axis=1)
                half = q * d.std(axis=1, ddof=1) / np.sqrt(n)
                lo, hi = mean - half, mean + half
                for j in range(m):
                    plo, phi = path.effects[j].ci
                    dlo = max(dlo, abs(plo - lo[j]))
                    dhi = max(dhi, abs(phi - hi[j]))
                    dconf = max(dconf, abs(path.effects[j].confidence - (1 - alpha / m)))
                # own family verdict from the intervals: an effect passes when its CI lies within
                # (-thr, thr), fails when it lies entirely beyond +-thr; family fails if any fails,
                # passes if all pass, else undecided.
                eff_fail = (lo > THR) | (hi < -THR)
                eff_pass = (lo > -THR) & (hi < THR)
                own = "fail" if eff_fail.any() else ("pass" if eff_pass.all() else "undecided")
                agree += own == path.verdict
            worst = max(worst, dlo, dhi)
            print(f"{m:>3}{n:>4}{reps:>7}{dlo:>11.2e}{dhi:>11.2e}{dconf:>12.2e}{agree:>10}/{reps}")
    print(f"max interval discrepancy: {worst:.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-fixed", type=int, default=4000, help="audits per fixed-design cell")
    ap.add_argument("--n-seq", type=int, default=4000, help="audits per sequential cell")
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--sections", default="1,2,3,4,5")
    ap.add_argument("--rule-check", type=int, default=10,
                    help="also run rule 'upper' on every k-th draw (0: never)")
    args = ap.parse_args()
    sections = {int(s) for s in args.sections.split(",")}

    def rng_for(key) -> np.random.Generator:
        # a deterministic, independent stream per cell
        digest = np.frombuffer(repr(key).encode(), dtype=np.uint8).astype(np.uint32)
        return np.random.default_rng(np.random.SeedSequence([args.seed, *digest.tolist()]))

    t0 = time.time()
    print(f"threshold {THR}, seed {args.seed}, N fixed {args.n_fixed}, N sequential {args.n_seq}; "
          f"'rdiff' = draws (of every {args.rule_check}th) where rule 'upper' gave a different "
          f"verdict/seeds; 'seeds' = mean seeds used")
    if 1 in sections:
        section_null(rng_for, args, correlated=False)
    if 2 in sections:
        section_null(rng_for, args, correlated=True)
    if 3 in sections:
        section_power(rng_for, args)
    if 4 in sections:
        section_skew(rng_for, args)
    if 5 in sections:
        section_intervals(rng_for, args)
    print(f"\nelapsed {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
