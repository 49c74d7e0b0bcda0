"""`AuditResult`: one audit's outcomes, effects, placebos and verdicts; the result is the API."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import numpy as np

from ._result_json import audit_record, result_text, sequential_record, settings_record, summary_rows
from .analysis import (
    OPEN,
    VERDICT_RANK,
    Analysis,
    Decision,
    Effect,
    Estimand,
    FollowUp,
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


@dataclass(frozen=True)
class Verdict:
    """What one `assert_below` concluded: the threshold and rule applied, and each effect's verdict."""

    threshold: float
    rule: str
    by_effect: dict  # EffectKey -> Decision
    strict: bool = False  # "warn" and "undecided" fail the test too

    @property
    def overall(self) -> Decision:
        """The most severe of the effects' decisions."""
        return Decision(max(self.by_effect.values(), key=VERDICT_ORDER.__getitem__))

    @property
    def passed(self) -> bool:
        """The test passes: nothing failed (and, when strict, nothing was left at warn or undecided)."""
        return self.overall is Decision.PASS or (self.overall in OPEN and not self.strict)


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
class AuditSetup:
    """What preparing the audit settled, as reports show it: the resolved intervention, the data and the test
    set its predictions index, the recipe's pick, and the behaviour the cache keyed the models by."""

    intervention: str  # in words
    reference: object  # the reference level (a layer map's shared reference)
    levels: tuple  # every level's label, the reference first
    intervention_table: tuple  # per layer and level: the conv hyperparameters it trained with
    layers: list  # the intervened layers
    layer_kernels: dict  # layer -> its own kernel size as built
    layer_inputs: dict  # layer -> [H, W] of its input
    data: str  # the training data's name
    group_counts: dict  # subgroup -> test images
    recipe_source: str  # where the training recipe came from (preset, user, lr probe)
    lr_probe: Optional[dict]
    fingerprints: dict  # what the cache keyed this audit by: model, trainer, cache key, conditions
    examples: dict = field(default_factory=dict, repr=False)  # condition -> a few test images as uint8 lists
    test_labels: Optional[np.ndarray] = field(default=None, repr=False)
    test_codes: Optional[np.ndarray] = field(default=None, repr=False)  # subgroup index per test image
    test_names: tuple = field(default=(), repr=False)  # the subgroups `test_codes` index


@dataclass(frozen=True)
class Looks:
    """How a seeds="auto" audit ran look by look: the models each look trained, and the budget's record."""

    trained: tuple  # models trained at each look
    budget: Optional[dict] = None  # with budget=: the estimate per seed and what settling would take


def _from(part: str, name: str) -> property:
    """A field of the result's `spec.inference`, `setup` or `analysis`, read as the result's own (the reports
    and the docs read `result.all_effects`, `result.threshold`, ...; the typed home is the part)."""

    def read(self: "AuditResult") -> object:
        owner = self.spec.inference if part == "inference" else getattr(self, part)
        return getattr(owner, name)

    return property(read, doc=f"`{part}.{name}`")


@dataclass(frozen=True)
class AuditResult:
    """One audit: what was asked (`spec`), what preparing it settled (`setup`), the numbers (`analysis`:
    outcomes per (level, seed, subgroup), effects per `EffectKey`, placebos, spectra, the decision's path) and
    how it ran (`run`, and `looks` for seeds="auto").

    `all_effects[(perturbation, level)]` are the bias effects the verdict rests on, each with its interval
    adjusted for its family and the looks; `subgroup_effects` and `pairwise` are the descriptive detail.
    Verdicts are judged from those intervals (`judge`, `assert_below`), once per threshold and rule.
    `settings` and `sequential` are the JSON views the reports print. The result never changes after it is
    built: `assert_below` returns (or raises with) a `Verdict`.
    """

    spec: "AuditSpec"
    setup: AuditSetup
    analysis: Analysis
    run: RunRecord
    looks: Optional[Looks] = None

    threshold = _from("inference", "threshold")
    rule = _from("inference", "rule")
    strict = _from("inference", "strict")
    correction = _from("inference", "correction")
    warn_tier = _from("inference", "warn_tier")
    intervention = _from("setup", "intervention")
    reference = _from("setup", "reference")
    data = _from("setup", "data")
    group_counts = _from("setup", "group_counts")
    examples = _from("setup", "examples")
    test_labels = _from("setup", "test_labels")
    test_codes = _from("setup", "test_codes")
    test_names = _from("setup", "test_names")
    outcomes = _from("analysis", "outcomes")
    all_effects = _from("analysis", "all_effects")
    subgroup_effects = _from("analysis", "subgroup_effects")
    pairwise = _from("analysis", "pairwise")
    dose_response = _from("analysis", "dose_response")
    placebos = _from("analysis", "placebos")
    spectral = _from("analysis", "spectral")
    spectral_effects = _from("analysis", "spectral_effects")
    kernel_spectra = _from("analysis", "kernel_spectra")
    heat_maps = _from("analysis", "heat_maps")
    predictions = _from("analysis", "predictions")
    learning = _from("analysis", "learning")
    gaps = _from("analysis", "gaps")
    path = _from("analysis", "path")

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def estimand(self) -> Estimand:
        return self.spec.estimand

    @property
    def perturbation(self) -> str:
        """The first perturbation's name (the only one unless a sweep was given)."""
        return next(iter(self.spec.data.perturbations))

    @property
    def settings(self) -> dict:
        """The JSON view of the settings in force (spec, setup and run), as every report prints them."""
        return self.__dict__.setdefault("_settings", settings_record(self))

    @property
    def sequential(self) -> Optional[dict]:
        """seeds="auto": the JSON view of the looks (seeds, intervals, decision) and why it stopped; else None."""
        return None if self.looks is None else sequential_record(self.spec.recipe.design, self.path, self.looks)

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
        """EffectKey -> Decision at `threshold` and `rule` (default: the audit's)."""
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
        bad = {k: self.all_effects[k] for k, v in verdict.by_effect.items() if v == Decision.FAIL}
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
        open_ = {k: v for k, v in verdict.by_effect.items() if v in OPEN}
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
        spec, path = self.spec, self.path
        offset = spec.recipe.seed_offset
        aa = "aa" in spec.inference.placebos
        used = path.seeds if isinstance(path.seeds, int) else self.all_effects[key].n
        follow = FollowUp(spec.inference.confidence, path.family,
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
        its point estimate is the audit's effect. A factorial audit's cells are levels here; its contrasts,
        which combine four cells, are not.
        """
        if not self.predictions:
            raise AuditConfigError("this result carries no per-image predictions (loaded from a report?)")
        pert = perturbation or self.perturbation
        treated = list(self.spec.target.treatments)
        level = level if level is not None else treated[0]
        if level not in treated or pert not in self.outcomes.perturbations:
            raise AuditConfigError(f"no effect for level {level_label(level)} under {pert}: the levels are "
                                   f"{[level_label(k) for k in treated]} (a factorial's cells, not its contrasts) "
                                   f"and the perturbations {self.outcomes.perturbations}")
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
        return partial_learning(list(self.learning), self.spec.inference.learning_gain)

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
        return summary_rows(self, verdict or self.judge())

    def layer_map(self, verdict: Verdict | None = None) -> list[dict]:
        """A layer map's table (`layer=each(...)`), in network order: per arm the layer, its own kernel, the
        level, the effect with its family-adjusted interval, adjusted p, verdict and each subgroup's shift in the
        high-frequency share of that layer's activations (`hf_shift`). Empty for other audits."""
        if not is_layer_map(self.reference):
            return []
        verdict = verdict or self.judge()
        return layer_map_rows(self.all_effects, verdict.by_effect, self.setup.layer_kernels,
                              self.setup.layer_inputs, self.spectral_effects)

    def to_dict(self, verdict: Verdict | None = None) -> dict:
        """The JSON record of the audit; `verdict` (from `assert_below`) sets the threshold, rule and verdicts."""
        return audit_record(self, verdict or self.judge())

    def __repr__(self) -> str:
        return result_text(self)
