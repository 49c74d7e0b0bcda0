"""The views of an `AuditResult` that reports print: the settings in force, the seeds="auto" record, the
summary rows, the JSON record and the text a repr shows. Each is computed from the typed result, never stored
beside it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from .analysis import OPEN, RULE_MEANING, Effect, EffectKey, SequentialDesign, SequentialPath, level_text
from .execution import report_options
from .intervention import Contrast, design_of, level_label

if TYPE_CHECKING:
    from .result import AuditResult, Looks, Verdict

PLACEBO_MEANING = (
    "A placebo effect should be near 0. One whose CI excludes 0 is not proof of a bug (that happens in 5% of "
    "placebo runs by chance), but if it recurs the audit's own noise produces 'effects' of that size: treat real "
    "effects no larger than it as unproven. A/A compares the reference level with itself on fresh seeds (seed "
    "noise); subgroup-shuffle permutes subgroup labels on the test set (a gap not tied to group membership)."
)


def settings_record(result: AuditResult) -> dict:
    """The settings in force, as reports print them: what was asked (spec), what preparing it settled (setup), the
    decision's seeds and family, and how it ran (run)."""
    spec, setup, path = result.spec, result.setup, result.path
    recipe, inference = spec.recipe, spec.inference
    return {"seeds": path.seeds, "levels": list(setup.levels), "intervention_table": list(setup.intervention_table),
            "layers": setup.layers, "attributes": list(spec.data.attributes), "train": recipe.train_config.as_dict(),
            "recipe_source": setup.recipe_source, "lr_probe": setup.lr_probe, "device": recipe.device,
            "paired": recipe.paired, "metric": inference.metric, "interval": inference.interval,
            "confidence": inference.confidence, "effect_confidence": path.looks[-1].confidence,
            "family": path.family, "test_noise": inference.test_noise and inference.interval == "t",
            "strict": inference.strict, "contrast": list(spec.estimand.contrast) or None,
            "outcome": spec.estimand.outcome, "placebos": list(inference.placebos),
            "spectral_cutoff": spec.mechanism.spectral_cutoff, "layer_kernels": setup.layer_kernels,
            "layer_inputs": setup.layer_inputs, "ray_options": report_options(spec.execution),
            "fingerprints": setup.fingerprints, **result.run.as_dict()}


def sequential_record(design: SequentialDesign, path: SequentialPath, looks: Looks) -> dict:
    """The JSON record of a seeds="auto" audit: every look and why it stopped."""
    rows = [{"seeds": look.seeds, "confidence": look.confidence, "decision": look.decision, "trained": count,
             "settle_chance": look.settle_chance, "intervals": {e.label: [e.ci[0], e.ci[1]] for e in look.effects},
             "stopped": [e.label for e, done in zip(look.effects, look.stopped) if done and e.n < look.seeds]}
            for look, count in zip(path.looks, looks.trained)]
    stopped = None
    if path.verdict == "undecided":
        rows[-1]["decision"] = "undecided"
        stopped = "max_seeds" if path.seeds == design.max_seeds else "futility"
    record = {"min_seeds": design.min_seeds, "max_seeds": design.max_seeds, "round": design.round_size,
              "boundary": design.boundary, "futility": design.futility, "family": path.family, "looks": rows,
              "decision": path.verdict, "fixed_seeds": path.fixed_seeds, "stopped_for": stopped,
              "reason": path.reason, "arms": [a for a in path.arm_outcomes() if a["arm"] is not None]}
    if looks.budget is not None:
        record["budget"] = looks.budget
    return record


def summary_rows(result: AuditResult, verdict: Verdict) -> list[dict]:
    """One row per (perturbation, treated level) at `verdict`'s threshold and rule."""
    path, verdicts = result.path, verdict.by_effect
    rows = []
    for i, (key, e) in enumerate(result.all_effects.items()):
        pert, level = key
        contrast = str(level) if isinstance(level, Contrast) else (
            f"{level_label(level)} vs {level_label(result.reference)}")
        note = "; ".join(part for part in (
            result.open_note(key, verdicts[key], verdict.threshold) if verdicts[key] in OPEN
            else "", e.shape_note(), e.p_note(), path.fold_note(i)) if part)
        rows.append({
            "audit": result.name, "contrast": contrast,
            "level": level_label(level), "reference_level": level_label(result.reference),
            "perturbation": pert, "bias": result.bias,
            "effect": e.estimate, "ci_low": e.ci[0], "ci_high": e.ci[1], "p_value": e.p_value,
            "p_adjusted": e.p_adjusted, "p_method": e.p_name, "n": e.n, "threshold": verdict.threshold,
            "rule": verdict.rule, "verdict": verdicts[key], "mde": e.minimum_detectable_effect(), "note": note,
            "p_floor": e.p_floor, "learned_partly": result.learning_note is not None, "allowance": list(e.allowance),
            "fold_allowance": list(path.folds[i]) if path.folds else [0.0, 0.0],
            "confidence": e.confidence, "shared_variance": e.shared_variance,
            **_context_cells(result, pert, level),
        })
    return rows


def _context_cells(result: AuditResult, pert: str, level: object) -> dict:
    """The gap at the reference and the clean accuracies beside each effect, for every report."""
    gap, clean = result.gaps.get(pert), result.clean_accuracy()
    return {"gap": gap.estimate if gap else None, "gap_ci_low": gap.ci[0] if gap else None,
            "gap_ci_high": gap.ci[1] if gap else None,
            "clean_reference": clean.get(level_label(result.reference)), "clean_level": clean.get(level_label(level)),
            "majority": clean.get("majority")}


def _effect_row(e: Effect, **extra) -> dict:
    return {**extra, "effect": e.estimate, "ci_low": e.ci[0], "ci_high": e.ci[1], "p_value": e.p_value,
            "p_adjusted": e.p_adjusted, "p_method": e.p_name, "n": e.n, "method": e.method}


def audit_record(result: AuditResult, verdict: Verdict) -> dict:
    """The JSON record of the audit at `verdict`'s threshold, rule and verdicts."""
    return {
        "name": result.name, "intervention": result.intervention, "perturbation": result.perturbation,
        "perturbations": result.outcomes.perturbations,
        "data": result.data, "group_counts": result.group_counts, "reference": level_label(result.reference),
        "bias": result.bias, "threshold": verdict.threshold, "rule": verdict.rule, "verdict": verdict.overall,
        "correction": result.correction, "settings": result.settings, "effects": summary_rows(result, verdict),
        "subgroup_effects": [_effect_row(e, perturbation=p, level=level_label(k), subgroup=g)
                             for (p, k), by_g in result.subgroup_effects.items() for g, e in by_g.items()],
        "pairwise": [_effect_row(e, perturbation=p, level=level_label(k), subgroups=list(pair))
                     for (p, k), by_pair in result.pairwise.items() for pair, e in by_pair.items()],
        "dose_response": [_effect_row(e, perturbation=p) for p, e in result.dose_response.items()],
        "placebos": [_effect_row(e, placebo=name) for name, e in result.placebos.items()],
        "placebo_meaning": PLACEBO_MEANING if result.placebos else "",
        "outcomes": result.outcomes.as_records(),
        "spectral": result.spectral,
        "spectral_effects": [_effect_row(e, level=level_label(k), subgroup=g)
                             for k, by_g in result.spectral_effects.items() for g, e in by_g.items()],
        "kernel_spectra": result.kernel_spectra, "heat_maps": result.heat_maps, "examples": result.examples,
        "clean_accuracy": result.clean_accuracy(), "learning_note": result.learning_note,
        "learning": [{"model": m.label, "accuracy": m.accuracy, "ci_low": m.ci[0], "ci_high": m.ci[1],
                      "majority": m.majority} for m in result.learning],
        "sequential": result.sequential, "layer_map": result.layer_map(verdict),
        "factorial": factorial_rows(result),
    }


def _interval(e: Effect) -> str:
    return f"{e.estimate:+.3f} [{e.ci[0]:+.3f}, {e.ci[1]:+.3f}]"


def factorial_rows(result: AuditResult) -> list[dict]:
    """A factorial audit's answer, per perturbation and (cause level, fix level): the cause's effect without
    and with the fix, the interaction (how much the fix changes it) and, where the effect without the fix is
    told from 0, the share of it the fix removes, in one sentence. Empty for other audits."""
    design = design_of(result.spec.target.levels)
    rows: list[dict] = []
    if design is None:
        return rows
    b0 = design.fix.levels[0]
    for (pert, c), e in result.all_effects.items():
        if not (isinstance(c, Contrast) and c.kind == "interaction"):
            continue
        without = result.all_effects[EffectKey(pert, Contrast("cause", c.cause, b0, design))]
        with_fix = result.all_effects[EffectKey(pert, Contrast("cause", c.cause, c.fix, design))]
        told = without.ci[0] > 0 or without.ci[1] < 0
        share = -e.estimate / without.estimate if told else None
        cause, fix = f"{design.cause.layer} {level_label(c.cause)}", f"{design.fix.layer} {level_label(c.fix)}"
        what = f"the effect of {cause} on the {result.bias} under {pert}"
        lead = (f"{fix} removes {share:.0%} of {what}" if share is not None else
                f"{fix} and {what} (no share removed is given: without the fix the effect is not told from 0)")
        sentence = (f"{lead}: {_interval(without)} without it, {_interval(with_fix)} with it; the change "
                    f"{_interval(e)} ({level_text(e.confidence)} intervals, one family)")
        rows.append({"perturbation": pert, "cause": cause, "fix": fix, "removed_share": share,
                     "without": [without.estimate, *without.ci], "with": [with_fix.estimate, *with_fix.ci],
                     "interaction": [e.estimate, *e.ci], "confidence": e.confidence, "sentence": sentence})
    return rows


def result_text(result: AuditResult) -> str:
    """What `repr(result)` shows: the outcome tables, every effect, the looks and the verdict."""
    lines = [f"AuditResult {result.name}", f"  intervention: {result.intervention}",
             f"  data: {result.data} {result.group_counts}"]
    lines += [result.outcomes.table(p) for p in result.outcomes.perturbations]
    lines += [f"  bias: {result.bias}", result.gap_line(result.perturbation)]
    lines += ["  " + e.summary() for e in result.all_effects.values()]
    lines += ["  " + e.summary() for e in result.dose_response.values()]
    for by_group in result.spectral_effects.values():
        lines += ["  " + e.summary() for e in by_group.values()]
    lines += ["  " + e.summary() for e in result.placebos.values()]
    sequential: Optional[dict] = result.sequential
    if sequential is not None:
        looks = ", ".join(f"{look['seeds']}: {look['decision']}" for look in sequential["looks"])
        lines.append(f"  seeds=auto looks ({looks}): {sequential['reason']}")
    lines += ["  " + row["sentence"] for row in factorial_rows(result)]
    lines.append(f"  verdict: {result.verdict} (threshold {result.threshold:g}, rule {result.rule!r}: "
                 f"{RULE_MEANING[result.rule]}; p adjusted by {result.correction})")
    return "\n".join(lines)
