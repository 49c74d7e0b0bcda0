"""`AuditResult`: one audit's outcomes, effects, placebos and verdicts; the result is the API."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import numpy as np

from .analysis import (
    RULE_MEANING,
    VERDICT_RANK,
    Effect,
    Estimand,
    FollowUp,
    Outcomes,
    SequentialPath,
    broken,
    check_rule,
    check_threshold,
    hierarchical_bootstrap,
    is_layer_map,
    layer_map_rows,
    level_text,
    narrowest_half_width,
    open_note,
    partial_learning,
    seeds_to_pass_upper,
)
from .errors import AuditConfigError, AuditFailure, KernelAuditWarning
from .intervention import level_label

if TYPE_CHECKING:
    from .spec import AuditSpec

VERDICT_ORDER = VERDICT_RANK

PLACEBO_MEANING = (
    "A placebo effect should be near 0. One whose CI excludes 0 is not proof of a bug (that happens in 5% of "
    "placebo runs by chance), but if it recurs the audit's own noise produces 'effects' of that size: treat real "
    "effects no larger than it as unproven. A/A compares the reference level with itself on fresh seeds (seed "
    "noise); subgroup-shuffle permutes subgroup labels on the test set (a gap not tied to group membership)."
)


@dataclass(frozen=True)
class Verdict:
    """What one `assert_below` concluded: the threshold and rule applied, and each effect's verdict."""

    threshold: float
    rule: str
    by_effect: dict  # (perturbation, level) -> "pass" | "warn" | "undecided" | "fail"
    strict: bool = False  # "warn" and "undecided" fail the test too

    @property
    def overall(self) -> str:
        return max(self.by_effect.values(), key=VERDICT_ORDER.__getitem__)

    @property
    def passed(self) -> bool:
        """The test passes: nothing failed (and, when strict, nothing was left at warn or undecided)."""
        return self.overall == "pass" or (self.overall in ("warn", "undecided") and not self.strict)


@dataclass(frozen=True)
class RunRecord:
    """How an audit ran, as opposed to what it was asked (its `AuditSpec`): the models it trained, loaded
    and measured, where, and how long it took."""

    models: int  # (level, seed) models the plan holds
    trained: int  # trained by this audit (every look of seeds="auto" counted)
    from_cache: int  # weights loaded from the cache
    evaluated: int  # measured by this audit rather than read from a stored evaluation
    cache: Optional[str]  # the cache folder, None for an in-memory or temporary store
    executor: str  # the executor asked for ("local" lets the audit choose)
    executor_used: str  # the one that trained: serial, seed-batched, pool or ray
    workers: int  # models trained at once
    threads: int  # torch threads per training
    seconds: float  # wall time of the audit
    environments: Optional[dict] = None  # Ray: the numeric environments the variants trained in (mixed or not)

    def as_dict(self) -> dict:
        return dict(vars(self))


@dataclass(frozen=True)
class AuditResult:
    """One audit: outcomes per (level, seed, subgroup), effects per (perturbation, level), and verdicts.

    `all_effects[(perturbation, level)]` are the bias effects the verdict rests
    on; `subgroup_effects[(perturbation, level)][g]` are the effects on each
    subgroup's drop and `pairwise[(perturbation, level)][(g1, g2)]` their
    differences-in-differences. Each effect carries its p adjusted within its
    family (Holm by default). The result never changes after it is built:
    `assert_below` returns (or raises with) a `Verdict`.
    """

    name: str
    intervention: str
    perturbation: str
    data: str
    group_counts: dict[str, int]
    outcomes: Outcomes
    all_effects: dict
    reference: object
    estimand: Estimand
    threshold: float
    rule: str
    settings: dict = field(default_factory=dict)
    subgroup_effects: dict = field(default_factory=dict)
    pairwise: dict = field(default_factory=dict)
    dose_response: dict = field(default_factory=dict)  # perturbation -> slope Effect
    placebos: dict = field(default_factory=dict)  # name -> Effect
    spectral: list = field(default_factory=list)  # rows: level, seed, subgroup, layer, hf_ratio
    spectral_effects: dict = field(default_factory=dict)  # level -> subgroup -> Effect
    kernel_spectra: dict = field(default_factory=dict)  # level label -> mean radial spectrum (list)
    heat_maps: dict = field(default_factory=dict)  # level label -> subgroup -> 2-D list of error rates
    examples: dict = field(default_factory=dict)  # condition -> a few test images as uint8 (C, H, W) lists
    correction: str = "holm"
    warn_tier: bool = True
    predictions: dict = field(default_factory=dict, repr=False)  # (level, seed) -> condition -> np.ndarray
    test_labels: Optional[np.ndarray] = field(default=None, repr=False)
    test_codes: Optional[np.ndarray] = field(default=None, repr=False)  # subgroup index per test image
    test_names: tuple = field(default=(), repr=False)  # the subgroups `test_codes` index
    learning: tuple = field(default=(), repr=False)  # per audited model: clean accuracy vs the majority rate
    gaps: dict = field(default_factory=dict)  # perturbation -> the bias at the reference level itself (Effect)
    sequential: Optional[dict] = None  # seeds="auto": the looks (seeds, level, intervals, decision) and why it stopped
    path: Optional[SequentialPath] = field(default=None, repr=False)  # the decision procedure's record, every audit
    strict: bool = False  # a warn or undecided verdict fails assert_below too
    spec: Optional["AuditSpec"] = field(default=None, repr=False)  # what was asked: every setting, checked
    run: Optional[RunRecord] = None  # how it ran: counts, executor, time

    @property
    def bias(self) -> str:
        """What B(m) is, in words."""
        return self.estimand.label

    def families(self) -> dict[str, list[Effect]]:
        """The multiplicity families, in a stable order.

        "bias": the effects verdicts rest on, one per level x severity.
        "subgroups": the per-subgroup effects, one per level x subgroup x severity.
        Each is adjusted on its own, so descriptive subgroup detail does not
        dilute the verdict's own family.
        """
        return {"bias": list(self.all_effects.values()),
                "subgroups": [e for by_group in self.subgroup_effects.values() for e in by_group.values()]}

    def family(self) -> list[Effect]:
        """Every adjusted effect of this audit (both families)."""
        return [e for family in self.families().values() for e in family]

    @property
    def effects(self) -> dict:
        """level -> Effect under the first perturbation (the only one unless a sweep was given)."""
        return {level: e for (pert, level), e in self.all_effects.items() if pert == self.perturbation}

    @property
    def effect(self) -> Effect:
        """The effect with the largest |estimate| (the only one for two levels and one perturbation)."""
        return max(self.all_effects.values(), key=lambda e: abs(e.estimate))

    def verdicts(self, threshold: float | None = None, rule: str | None = None) -> dict:
        """(perturbation, level) -> "pass" | "warn" | "fail" at `threshold` and `rule` (default: the audit's)."""
        return self.judge(threshold, rule).by_effect

    def judge(self, threshold: float | None = None, rule: str | None = None, strict: bool | None = None) -> Verdict:
        """The verdict at `threshold` and `rule` (default: the audit's own), asserting nothing.

        Each effect's interval is already adjusted for the family and the looks, so any threshold and
        rule read from them keeps the family-wise error rate.
        """
        t = self.threshold if threshold is None else check_threshold(threshold)
        r = check_rule(rule or self.rule)
        s = self.strict if strict is None else bool(strict)
        # Judged once per (threshold, rule): the summary, the reports and assert_below all ask again.
        judged = self.__dict__.setdefault("_judged", {})
        if (t, r) not in judged:
            judged[(t, r)] = {k: e.verdict(t, r, self.warn_tier) for k, e in self.all_effects.items()}
        return Verdict(t, r, dict(judged[(t, r)]), s)

    @property
    def verdict(self) -> str:
        return self.judge().overall

    @property
    def asserted(self) -> Verdict | None:  # what the last assert_below reached (threshold, rule, strict), or None
        return self.__dict__.get("_asserted")

    def assert_below(self, threshold: float | None = None, rule: str | None = None,
                     strict: bool | None = None) -> Verdict:
        """Return the `Verdict`, or raise `AuditFailure` (an AssertionError with the outcome table) when any
        effect fails the rule, or, when strict, is left at warn or undecided; otherwise warn on those.
        The result itself does not change."""
        __tracebackhide__ = True  # pytest shows the caller's line and the message (the table), not this frame
        verdict = self.judge(threshold, rule, strict)
        if verdict.rule in ("upper", "evidence"):
            self._warn_if_cannot_pass(verdict.threshold, verdict.rule)
        self.__dict__["_asserted"] = verdict  # what the test asked, for its report (the plugin reads `asserted`)
        if self.sequential is not None and self.sequential["decision"] == "undecided" and not verdict.strict:
            warnings.warn(KernelAuditWarning(f"{self.name}: seeds=auto: {self.sequential['reason']}"), stacklevel=2)
        bad = {k: self.all_effects[k] for k, v in verdict.by_effect.items() if v == "fail"}
        if bad:
            worst_key = max(bad, key=lambda k: bad[k].statistic(verdict.rule))
            worst = bad[worst_key]
            others = [e.summary() for k, e in bad.items() if k != worst_key]
            msg = worst.failure_message(verdict.threshold, verdict.rule) + "\n" + self.gap_line(worst_key[0])
            if others:
                msg += "\n  also failing:\n" + "\n".join("    " + o for o in others)
            layers = broken(self.layer_map(verdict))
            head = f"layer map: the kernel size of {', '.join(layers)} breaks the threshold\n" if layers else ""
            raise AuditFailure(f"{self.name}: {head}{msg}", verdict)
        open_ = {k: v for k, v in verdict.by_effect.items() if v in ("warn", "undecided")}
        notes = [f"{self.all_effects[k].label}: {'undecided: ' if v == 'undecided' else ''}"
                 f"{self.open_note(k, v, verdict.threshold)}" for k, v in open_.items()]
        if open_ and verdict.strict:
            raise AuditFailure(f"{self.name}: strict: {len(open_)} effect(s) not settled within the threshold "
                               f"{verdict.threshold:g} (a strict audit fails on warn and undecided)\n  "
                               + "\n  ".join(notes), verdict)
        for note in notes:
            warnings.warn(KernelAuditWarning(f"{self.name}: {note}"), stacklevel=2)
        return verdict

    def open_note(self, key: tuple, verdict: str, threshold: float) -> str:
        """Why an effect is "warn" or "undecided", and the next step that keeps the error rates (`_advice`)."""
        settings, spec = self.settings, self.spec
        offset = spec.recipe.seed_offset if spec else 0
        aa = spec is not None and "aa" in spec.inference.placebos
        used = settings.get("seeds") if isinstance(settings.get("seeds"), int) else self.all_effects[key].n
        follow = FollowUp(spec.inference.confidence if spec else 0.95, settings.get("family") or len(self.family),
                          offset + used * (2 if aa else 1), offset > 0)
        return open_note(self.all_effects[key], verdict, threshold, follow)

    def _warn_if_cannot_pass(self, threshold: float, rule: str) -> None:
        """Rules "upper" and "evidence" pass only when the whole interval fits in +-threshold; say when it cannot."""
        for e in self.all_effects.values():
            confidence = e.confidence  # the family- and look-adjusted level the verdict reads
            half = narrowest_half_width(e.sd, e.n, confidence)
            if half > threshold:
                need = seeds_to_pass_upper(e.sd, threshold, confidence)
                warnings.warn(KernelAuditWarning(
                    f"{self.name}: {e.label}: rule={rule!r} cannot pass with {e.n} seeds: even an effect of 0 has a "
                    f"{level_text(confidence)} t interval of +-{half:.4g} (sd of differences {e.sd:.4g}) > threshold "
                    f"{threshold:g}; " + (f"about {need} seeds would let it pass" if need else
                                          "no seed count makes the interval that narrow")), stacklevel=3)

    def assert_spectral_shift_below(self, threshold: float, rule: str = "estimate") -> "AuditResult":
        """Fail when the level's effect on any subgroup's activation high-frequency ratio passes `threshold`."""
        __tracebackhide__ = True  # as in assert_below: the caller's line and the message
        threshold, rule = check_threshold(threshold), check_rule(rule)
        if not self.spectral_effects:
            raise AuditConfigError("this audit measured no spectra; run it with spectral_cutoff set (e.g. 0.5)")
        bad = [e for by_group in self.spectral_effects.values() for e in by_group.values()
               if not e.passes(threshold, rule)]
        if bad:
            worst = max(bad, key=lambda e: e.statistic(rule))
            raise AuditFailure(f"{self.name}: spectral shift: " + worst.failure_message(threshold, rule), "fail")
        return self

    def hierarchical_interval(self, level: object | None = None, perturbation: str | None = None,
                              n_boot: int = 2000, seed: int = 0) -> Effect:
        """The effect with an interval that also resamples test images (seeds and images, nested).

        It uses this audit's own estimand (bias form, contrast and outcome), so
        its point estimate is the audit's effect.
        """
        if not self.predictions:
            raise AuditConfigError("this result carries no per-image predictions (loaded from a report?)")
        pert = perturbation or self.perturbation
        level = level if level is not None else next(k for (p, k) in self.all_effects if p == pert)
        if (pert, level) not in self.all_effects:
            raise AuditConfigError(f"no effect for level {level_label(level)} under {pert}; the audit has "
                                   f"{[(p, level_label(k)) for p, k in self.all_effects]}")
        clean = {k: v["clean"] for k, v in self.predictions.items()}
        perturbed = {k: v[pert] for k, v in self.predictions.items()}
        return hierarchical_bootstrap(
            clean, perturbed, self.test_labels, self.test_codes, list(self.test_names), level, self.reference,
            self.outcomes.paired_seeds(level, self.reference), n_boot=n_boot,
            confidence=self.spec.inference.confidence, seed=seed,
            estimand=self.estimand, metric=self.spec.inference.metric,
            label=f"{level_label(level)} vs {level_label(self.reference)}: {self.bias} under {pert}")

    @property
    def learning_note(self) -> str | None:
        """Why a verdict here rests on models that learned the task only partly, or None (every report shows it)."""
        return partial_learning(list(self.learning), self.spec.inference.learning_gain) if self.spec else None

    def clean_accuracy(self) -> dict:
        """level label -> mean clean accuracy over seeds (the task the models learned), and "majority"."""
        by_level: dict[str, list[float]] = {}
        for m in self.learning:
            by_level.setdefault(m.level, []).append(m.accuracy)
        out = {level: float(np.mean(v)) for level, v in by_level.items()}
        if self.learning:
            out["majority"] = self.learning[0].majority
        return out

    def gap_line(self, perturbation: str) -> str:
        """The gap itself at the reference level, for failure messages and reprs."""
        g = self.gaps.get(perturbation)
        if g is None:
            return ""
        return (f"  the gap itself at {level_label(self.reference)}: {g.estimate:+.4f}, {g.confidence:.0%} CI "
                f"[{g.ci[0]:+.4f}, {g.ci[1]:+.4f}] over {g.n} seeds (a small effect of k is not a small gap)")

    def summary_rows(self, verdict: Verdict | None = None) -> list[dict]:
        """One row per (perturbation, treated level): what the terminal summary and JSON report print.

        `verdict` is one `assert_below` reached (its threshold and rule); by default, the audit's own.
        """
        rows = []
        verdict = verdict or self.judge()
        verdicts = verdict.by_effect
        for i, (key, e) in enumerate(self.all_effects.items()):
            pert, level = key
            rows.append({
                "audit": self.name, "contrast": f"{level_label(level)} vs {level_label(self.reference)}",
                "level": level_label(level), "reference_level": level_label(self.reference),
                "perturbation": pert, "bias": self.bias,
                "effect": e.estimate, "ci_low": e.ci[0], "ci_high": e.ci[1], "p_value": e.p_value,
                "p_adjusted": e.p_adjusted, "p_method": e.p_name, "n": e.n, "threshold": verdict.threshold,
                "rule": verdict.rule,
                "verdict": verdicts[key], "mde": e.minimum_detectable_effect(),
                "note": "; ".join(part for part in (
                    self.open_note(key, verdicts[key], verdict.threshold)
                    if verdicts[key] in ("warn", "undecided") else "", e.shape_note(), e.p_note(),
                    self.path.fold_note(i) if self.path else "") if part),
                "p_floor": e.p_floor, "learned_partly": self.learning_note is not None, "allowance": list(e.allowance),
                "fold_allowance": list(self.path.folds[i]) if self.path and self.path.folds else [0.0, 0.0],
                "confidence": e.confidence, "shared_variance": e.shared_variance,
                **self._context_cells(pert, level),
            })
        return rows

    def _context_cells(self, pert: str, level: object) -> dict:
        """The gap at the reference and the clean accuracies beside each effect, for every report."""
        gap, clean = self.gaps.get(pert), self.clean_accuracy()
        return {"gap": gap.estimate if gap else None, "gap_ci_low": gap.ci[0] if gap else None,
                "gap_ci_high": gap.ci[1] if gap else None,
                "clean_reference": clean.get(level_label(self.reference)), "clean_level": clean.get(level_label(level)),
                "majority": clean.get("majority")}

    def layer_map(self, verdict: Verdict | None = None) -> list[dict]:
        """A layer map's table (`layer=each(...)`), in network order: per arm the layer, its own kernel, the
        level, the effect with its family-adjusted interval, adjusted p, verdict and each subgroup's shift in the
        high-frequency share of that layer's activations (`hf_shift`). Empty for other audits."""
        if not is_layer_map(self.reference):
            return []
        verdict = verdict or self.judge()
        return layer_map_rows(self.all_effects, verdict.by_effect, self.settings["layer_kernels"],
                              self.settings["layer_inputs"], self.spectral_effects)

    def to_dict(self, verdict: Verdict | None = None) -> dict:
        """The JSON record of the audit; `verdict` (from `assert_below`) sets the threshold, rule and verdicts."""
        verdict = verdict or self.judge()

        def effect_row(e: Effect, **extra) -> dict:
            return {**extra, "effect": e.estimate, "ci_low": e.ci[0], "ci_high": e.ci[1], "p_value": e.p_value,
                    "p_adjusted": e.p_adjusted, "p_method": e.p_name, "n": e.n, "method": e.method}

        return {
            "name": self.name, "intervention": self.intervention, "perturbation": self.perturbation,
            "perturbations": self.outcomes.perturbations,
            "data": self.data, "group_counts": self.group_counts, "reference": level_label(self.reference),
            "bias": self.bias, "threshold": verdict.threshold, "rule": verdict.rule, "verdict": verdict.overall,
            "correction": self.correction, "settings": self.settings, "effects": self.summary_rows(verdict),
            "subgroup_effects": [effect_row(e, perturbation=p, level=level_label(k), subgroup=g)
                                 for (p, k), by_g in self.subgroup_effects.items() for g, e in by_g.items()],
            "pairwise": [effect_row(e, perturbation=p, level=level_label(k), subgroups=list(pair))
                         for (p, k), by_pair in self.pairwise.items() for pair, e in by_pair.items()],
            "dose_response": [effect_row(e, perturbation=p) for p, e in self.dose_response.items()],
            "placebos": [effect_row(e, placebo=name) for name, e in self.placebos.items()],
            "placebo_meaning": PLACEBO_MEANING if self.placebos else "",
            "outcomes": self.outcomes.as_records(),
            "spectral": self.spectral,
            "spectral_effects": [effect_row(e, level=level_label(k), subgroup=g)
                                 for k, by_g in self.spectral_effects.items() for g, e in by_g.items()],
            "kernel_spectra": self.kernel_spectra, "heat_maps": self.heat_maps, "examples": self.examples,
            "clean_accuracy": self.clean_accuracy(), "learning_note": self.learning_note,
            "learning": [{"model": m.label, "accuracy": m.accuracy, "ci_low": m.ci[0], "ci_high": m.ci[1],
                          "majority": m.majority} for m in self.learning],
            "sequential": self.sequential, "layer_map": self.layer_map(verdict),
        }

    def __repr__(self) -> str:
        lines = [f"AuditResult {self.name}", f"  intervention: {self.intervention}",
                 f"  data: {self.data} {self.group_counts}"]
        lines += [self.outcomes.table(p) for p in self.outcomes.perturbations]
        lines.append(f"  bias: {self.bias}")
        lines.append(self.gap_line(self.perturbation))
        lines += ["  " + e.summary() for e in self.all_effects.values()]
        lines += ["  " + e.summary() for e in self.dose_response.values()]
        for by_group in self.spectral_effects.values():
            lines += ["  " + e.summary() for e in by_group.values()]
        lines += ["  " + e.summary() for e in self.placebos.values()]
        if self.sequential is not None:
            looks = ", ".join(f"{look['seeds']}: {look['decision']}" for look in self.sequential["looks"])
            lines.append(f"  seeds=auto looks ({looks}): {self.sequential['reason']}")
        lines.append(f"  verdict: {self.verdict} (threshold {self.threshold:g}, rule {self.rule!r}: "
                     f"{RULE_MEANING[self.rule]}; p adjusted by {self.correction})")
        return "\n".join(lines)
