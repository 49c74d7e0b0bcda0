"""`analyze(spec, evaluations)`: from per-image predictions to every effect of the audit. Pure: no training,
no files, no randomness beyond fixed seeds, so it can be tested on made-up predictions."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import InterventionWarning
from ..evaluation import Evaluation, Evaluations, check_defined, group_metric
from ..intervention import HYPERPARAMETERS, as_intervention, level_label
from ._checks import EffectKey
from ._decision import SequentialPath, run_sequential
from ._effects import Effect, paired_effect
from ._estimators import dose_response
from ._family import Member, family_members
from ._fold import contrast_fold_allowances
from ._learning import check_learning, learning_of
from ._multiplicity import adjust
from ._outcomes import Outcome, Outcomes, estimate_effects, pairwise_effects, subgroup_effects
from ._placebo import aa_placebo, shuffle_placebo
from ._sequential import SequentialDesign
from ._test_noise import (
    contrast_allowances,
    difference_replicates,
    image_weights,
    model_allowances,
    shared_variances,
)

if TYPE_CHECKING:  # the spec is read, never built, here: an annotation, so analysis does not import spec
    from ..spec import AuditSpec


@dataclass(frozen=True)
class Analysis:
    """The numbers of one audit; `AuditResult` carries them with the run's facts."""

    outcomes: Outcomes
    all_effects: dict  # (perturbation, level) -> Effect on the bias: family- and look-adjusted CI, Holm p
    subgroup_effects: dict  # (perturbation, level) -> subgroup -> Effect on that subgroup's outcome
    pairwise: dict  # (perturbation, level) -> (g1, g2) -> difference-in-differences Effect
    dose_response: dict  # perturbation -> slope Effect (3+ numeric levels)
    placebos: dict  # name -> Effect
    spectral: list  # rows: level, seed, subgroup, layer, hf_ratio
    spectral_effects: dict  # level -> subgroup -> Effect on the activation high-frequency share
    kernel_spectra: dict  # level label -> mean radial spectrum of the intervened kernels
    heat_maps: dict  # level label -> subgroup -> 2-D error rates
    predictions: dict  # (level, seed) -> condition -> predicted class per test image
    learning: tuple  # one Learning per audited model: clean accuracy against the majority-class rate
    gaps: dict  # perturbation -> the bias B at the reference level itself (mean over seeds, t interval)
    path: SequentialPath  # the decision over the bias family, look by look (one look for a fixed design)


def outcomes_of(items: list[Evaluation], evaluations: Evaluations, metric: str) -> Outcomes:
    """One outcome row per (model, subgroup, perturbation), every condition counted in one vectorized pass."""
    names = list(evaluations.names)
    out = Outcomes()
    for ev in items:
        values = check_defined(group_metric(np.stack(list(ev.preds.values())), evaluations.labels,
                                            evaluations.codes, len(names), metric), names, metric)
        by_cond = dict(zip(ev.preds, values))
        clean, *perturbations = ev.preds
        for pert in perturbations:
            for j, g in enumerate(names):
                out.add(Outcome(ev.variant.level, ev.variant.seed, g, pert, float(by_cond[clean][j]),
                                float(by_cond[pert][j])))
    return out


def _dose(level) -> float | None:
    """The numeric value of a level for a dose-response slope (None when it sets several things)."""
    change = as_intervention(level)
    if getattr(change, "compound", False):
        return None  # a factorial cell sets two factors
    values = [v for v in (change.kernel_size, change.dilation, change.stride) if v is not None]
    return float(values[0]) if len(values) == 1 else None


def _effects(spec: AuditSpec, outcomes: Outcomes) -> tuple[dict, dict, dict, dict]:
    """Bias effects, per-subgroup effects, pairwise differences and dose-response, per perturbation."""
    ref, levels, est = spec.target.reference_level, list(spec.target.levels), spec.estimand
    kw = dict(confidence=spec.inference.confidence, method=spec.inference.interval)
    bias, by_group, pairs, doses = {}, {}, {}, {}
    for pert in spec.data.perturbations:
        for level, e in estimate_effects(outcomes, ref, pert, estimand=est, **kw).items():
            bias[EffectKey(pert, level)] = e
        for level, effects in subgroup_effects(outcomes, ref, pert, est.outcome, **kw).items():
            by_group[EffectKey(pert, level)] = effects
        for level, effects in pairwise_effects(outcomes, ref, pert, est.outcome, **kw).items():
            pairs[EffectKey(pert, level)] = effects
        dose_values = [_dose(level) for level in levels]
        if len(levels) >= 3 and None not in dose_values:
            b = np.array([[outcomes.bias(level, s, pert, est) for s in outcomes.seeds] for level in levels])
            unit = next(n for n in HYPERPARAMETERS if getattr(as_intervention(levels[0]), n) is not None)
            doses[pert] = dose_response(dose_values, b, spec.inference.confidence,
                                        label=f"slope of {est.label} per unit of {unit} under {pert}")
    return bias, by_group, pairs, doses


def _placebos(spec: AuditSpec, evaluations: Evaluations, outcomes: Outcomes, predictions: dict, seeds: int) -> dict:
    ref, est = spec.target.reference_level, spec.estimand
    first_pert, first_level = next(iter(spec.data.perturbations)), spec.target.treatments[0]
    kw = dict(confidence=spec.inference.confidence, method=spec.inference.interval)
    found = {}
    if "shuffle" in spec.inference.placebos:
        found["subgroup-shuffle"] = shuffle_placebo(
            predictions, evaluations.labels, evaluations.codes, evaluations.names, ref, first_level, first_pert,
            est, metric=spec.inference.metric, **kw)
    if "aa" in spec.inference.placebos:
        fresh = outcomes_of(evaluations.of_role("aa"), evaluations, spec.inference.metric)
        first = spec.recipe.seed_offset
        found["A/A"] = aa_placebo(
            [outcomes.bias(ref, s, first_pert, est) for s in range(first, first + seeds)],
            [fresh.bias(ref, s, first_pert, est) for s in range(first + seeds, first + 2 * seeds)],
            label=f"placebo A/A: {level_label(ref)} on seeds {first + seeds}..{first + 2 * seeds - 1} vs "
                  f"{first}..{first + seeds - 1} under {first_pert}", **kw)
    return found


def spectral_effects(spec: AuditSpec, rows: list[dict]) -> dict:
    """level -> subgroup -> paired effect of the level on that subgroup's activation high-frequency share.

    Each level is compared with the reference at the layer it changes (a layer map's arm at its own
    layer, where the reference was measured too), on the seeds both have.
    """
    if not rows:
        return {}
    ratio = {(r["level"], r["seed"], r["subgroup"], r["layer"]): r["hf_ratio"] for r in rows}
    groups = sorted({r["subgroup"] for r in rows})
    ref, cutoff = level_label(spec.target.reference_level), spec.mechanism.spectral_cutoff
    effects = {}
    for level in spec.target.treatments:
        lab = level_label(level)
        layer = getattr(level, "layer", None) or rows[0]["layer"]
        seeds = sorted({s for (lv, s, _, lay) in ratio if lv == lab and lay == layer}
                       & {s for (lv, s, _, lay) in ratio if lv == ref and lay == layer})
        effects[level] = {
            g: paired_effect([ratio[(lab, s, g, layer)] for s in seeds], [ratio[(ref, s, g, layer)] for s in seeds],
                             confidence=spec.inference.confidence, method=spec.inference.interval,
                             p_method="permutation",
                             label=f"{lab} vs {ref}: high-frequency share (>= {cutoff:g} Nyquist) of {layer} "
                                   f"activations, {g}")
            for g in groups}
    return effects


def _gaps(spec: AuditSpec, outcomes: Outcomes) -> dict:
    """The subgroup gap B(k0) at the reference level, so a small effect of k is never read as a small gap."""
    ref, est = spec.target.reference_level, spec.estimand
    gaps = {}
    for pert in spec.data.perturbations:
        b = [outcomes.bias(ref, s, pert, est) for s in outcomes.seeds]
        gaps[pert] = paired_effect(b, [0.0] * len(b), confidence=spec.inference.confidence, method="t",
                                   label=f"{est.label} at {level_label(ref)} under {pert}")
    return gaps


def _adjusted(effects: dict[object, Effect], correction: str) -> dict[object, Effect]:
    """The same effects, each carrying its p adjusted within this family."""
    adjusted = adjust([e.p_value for e in effects.values()], correction)
    return {k: replace(e, p_adjusted=float(p)) for (k, e), p in zip(effects.items(), adjusted)}


def _adjust_subgroups(by_group: dict, correction: str) -> dict:
    flat = {(key, g): e for key, effects in by_group.items() for g, e in effects.items()}
    done = _adjusted(flat, correction) if flat else {}
    return {key: {g: done[(key, g)] for g in effects} for key, effects in by_group.items()}


def _test_noise(spec: AuditSpec, members: list[Member], evaluations: Evaluations, predictions: dict,
                outcomes: Outcomes) -> tuple[list[np.ndarray] | None, list[np.ndarray] | None]:
    """Per family member, the common test-set variance of its mean over its first j seeds (j = 1..its seeds),
    and its small-subgroup bias allowance (below, above) for the same means: its levels' image replicates and
    model allowances, combined as the member combines their effects."""
    if not (spec.inference.test_noise and spec.inference.interval == "t"):
        return None, None
    names = list(evaluations.names)
    weights = image_weights(evaluations.codes, len(names))
    ref, est, metric = spec.target.reference_level, spec.estimand, spec.inference.metric
    shared, room = [], []
    known: dict = {}  # (level, perturbation, seeds) -> allowances: a layer map's arms share the reference's

    def allowances(lv, pert, seeds):
        key = (lv, pert, tuple(seeds))
        if key not in known:
            known[key] = model_allowances(predictions, lv, pert, seeds, evaluations.labels, evaluations.codes, names,
                                          est, metric, weights)
        return known[key]

    reps: dict = {}  # bias key -> its replicates: a factorial's cell serves up to three members

    def replicates(key):
        if key not in reps:
            reps[key] = difference_replicates(predictions, key.level, ref, key.perturbation,
                                              outcomes.paired_seeds(key.level, ref), evaluations.labels,
                                              evaluations.codes, names, est, metric, weights)
        return reps[key]

    for member in members:
        pert, first = member.key.perturbation, next(iter(member.weights)).level
        seeds = outcomes.paired_seeds(first, ref)
        shared.append(shared_variances(member.combine({k: replicates(k) for k in member.weights}),
                                       member.differences))
        levels = member.level_weights(ref)
        room.append(contrast_allowances({lv: allowances(lv, pert, seeds) for lv in levels}, levels, est))
    return shared, room


INERT_SHARE = 0.999  # a level whose models predict as the reference's on this share of every condition's images


def warn_inert_levels(spec: AuditSpec, predictions: dict) -> None:
    """Warn when a treated level's models predict as the reference's almost everywhere, in every seed.

    Its effect is then ~0 with a near-zero interval, which reads as "shown harmless" although the
    intervened layer barely reaches the output (e.g. a residual branch scaled near 0); the audit
    cannot tell a harmless kernel size from a layer that does nothing.
    """
    ref = spec.target.reference_level
    for level in spec.target.treatments:
        seeds = [s for (lv, s) in predictions if lv == level and (ref, s) in predictions]
        shares = [float(np.mean(predictions[(level, s)][c] == predictions[(ref, s)][c]))
                  for s in seeds for c in predictions[(level, s)]]
        if shares and min(shares) >= INERT_SHARE:
            warnings.warn(InterventionWarning(
                f"{level_label(level)}: its models predict as the reference's on {min(shares):.2%} or more of the "
                f"test images in every seed and condition: the intervened layer barely reaches the output, so an "
                f"effect near 0 here means the layer does little, not that the change is harmless. Check "
                f"what the layer feeds (e.g. a residual branch scaled near 0 at init) or audit another layer"),
                stacklevel=3)


def arm_of(level: object) -> object:
    """The arm an effect belongs to: a layer map's arm is its layer; other audits are one arm."""
    return getattr(level, "layer", None)


def decide_family(spec: AuditSpec, members: list[Member], design: SequentialDesign,
                  shared: list | None, room: list | None = None, folds: list | None = None) -> tuple:
    """The family through the one decision procedure: its adjusted effects and the path.

    A layer map's arms are decided apart within the family, so a settled arm stops taking seeds.
    """
    keys = [m.key for m in members]
    inference = spec.inference
    path = run_sequential([m.differences for m in members], design,
                          inference.threshold, inference.rule, inference.confidence, method=inference.interval,
                          shared_variance=shared, allowance=room, labels=[m.label for m in members],
                          contexts=[m.context for m in members], arms=[arm_of(key.level) for key in keys],
                          fold_allowance=folds)
    return _adjusted(dict(zip(keys, path.effects)), inference.correction), path


def analyze(spec: AuditSpec, evaluations: Evaluations, design: SequentialDesign | None = None,
            seeds: int | None = None) -> Analysis:
    """Every effect, placebo and mechanism summary of the audit from its evaluations, at `seeds` per level
    (default: the spec's fixed count; a look of seeds="auto" gives its own).

    The bias effects (one per level x perturbation) are one family, decided by `run_sequential` under
    `design` (default: one look at the spec's seed count), so their intervals are family- and
    look-adjusted; the "subgroups" family (one per level x subgroup x perturbation) is descriptive and
    Holm-adjusted on its own, so that detail does not dilute the verdict's own family.
    """
    audit_items = evaluations.of_role("audit")
    learning = tuple(learning_of(ev.variant.label, level_label(ev.variant.level), next(iter(ev.preds.values())),
                                 evaluations.labels,
                                 evaluations.codes, evaluations.names, spec.inference.confidence,
                                 spec.inference.metric)
                     for ev in audit_items)
    if spec.inference.require_learning:
        check_learning(list(learning), spec.inference.learning_gain)  # before any effect is estimated
    outcomes = outcomes_of(audit_items, evaluations, spec.inference.metric)
    predictions = {(ev.variant.level, ev.variant.seed): ev.preds for ev in audit_items}
    warn_inert_levels(spec, predictions)
    bias, by_group, pairs, doses = _effects(spec, outcomes)
    design = design or spec.recipe.decision_design
    members = family_members(spec, bias, outcomes)
    shared, room = _test_noise(spec, members, evaluations, predictions, outcomes)
    ref = spec.target.reference_level
    folds = contrast_fold_allowances(outcomes, [(m.key.perturbation, m.level_weights(ref)) for m in members], ref,
                                     spec.estimand)
    decided, path = decide_family(spec, members, design, shared, room, folds)
    spectral = [row for ev in audit_items for row in ev.spectral]
    kernels: dict[str, list] = {}
    for ev in audit_items:
        # One layer's spectrum, or a map reference's, measured at every arm's layer: one curve per layer.
        named = ev.kernel if isinstance(ev.kernel, dict) else {None: ev.kernel}
        for layer, kernel in named.items():
            if kernel is not None:
                label = level_label(ev.variant.level) + ("" if layer is None else f" ({layer})")
                kernels.setdefault(label, []).append(torch.tensor(kernel))
    return Analysis(
        outcomes=outcomes, all_effects=decided,
        subgroup_effects=_adjust_subgroups(by_group, spec.inference.correction), pairwise=pairs,
        dose_response=doses, placebos=_placebos(spec, evaluations, outcomes, predictions, seeds or spec.recipe.seeds),
        spectral=spectral,
        spectral_effects=spectral_effects(spec, spectral),
        kernel_spectra={k: torch.stack(v).mean(0).tolist() for k, v in kernels.items()},
        heat_maps={level_label(ev.variant.level): ev.heat_map for ev in audit_items if ev.heat_map is not None},
        predictions=predictions, learning=learning, gaps=_gaps(spec, outcomes), path=path)
