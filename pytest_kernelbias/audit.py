"""The audit: levels x seeds -> trained models -> per-subgroup outcomes -> effects."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch
from torch import nn

from .data.loaders import SubgroupLoaders, as_perturbations
from .data.subgroups import SubgroupDataset
from .data.synthfaces import synthfaces
from .effects import RULE_MEANING, Effect, check_rule, check_seeds, check_threshold, paired_effect
from .errors import AuditConfigError
from .evaluation import CLEAN
from .intervention import KernelIntervention, Level, layer_seed, level_label
from .layers import LayerSpec
from .outcomes import Outcome, Outcomes, bias_label, check_bias_form, estimate_effects
from .perturbations import LowPass, Perturbation
from .spectra import activation_spectra, fourier_heat_map, high_frequency_ratio, kernel_spectrum
from .training import Progress, TrainConfig, train

Trainer = Callable[[nn.Module, SubgroupDataset, int], nn.Module]


def _stderr(msg: str) -> None:
    print(f"[kernel-audit] {msg}", file=sys.stderr, flush=True)


@dataclass
class AuditResult:
    """One audit: outcomes per (k, seed, subgroup), effects per level, and verdicts."""

    name: str
    intervention: str
    perturbation: str
    data: str
    group_counts: dict[str, int]
    outcomes: Outcomes
    all_effects: dict  # (perturbation name, level) -> Effect
    reference: object
    bias: str
    threshold: float
    rule: str
    settings: dict = field(default_factory=dict)
    asserted: Optional[bool] = None
    spectral: list = field(default_factory=list)  # rows: level, seed, subgroup, layer, hf_ratio
    spectral_effects: dict = field(default_factory=dict)  # level -> subgroup -> Effect
    kernel_spectra: dict = field(default_factory=dict)  # level label -> mean radial spectrum (list)
    heat_maps: dict = field(default_factory=dict)  # level label -> subgroup -> 2-D list of error rates

    @property
    def effects(self) -> dict:
        """level -> Effect under the first perturbation (the only one unless a sweep was given)."""
        return {level: e for (pert, level), e in self.all_effects.items() if pert == self.perturbation}

    @property
    def effect(self) -> Effect:
        """The effect with the largest |estimate| (the only one for two levels)."""
        return max(self.effects.values(), key=lambda e: abs(e.estimate))

    def failing(self, threshold: float | None = None, rule: str | None = None) -> dict:
        t = self.threshold if threshold is None else check_threshold(threshold)
        r = check_rule(rule or self.rule)
        return {k: e for k, e in self.all_effects.items() if not e.passes(t, r)}

    @property
    def verdict(self) -> str:
        return "fail" if self.failing() else "pass"

    def assert_below(self, threshold: float | None = None, rule: str | None = None) -> "AuditResult":
        """Fail (AssertionError with the outcome table) if any level's effect passes the threshold."""
        if threshold is not None:
            self.threshold = check_threshold(threshold)
        if rule is not None:
            self.rule = check_rule(rule)
        bad = self.failing()
        self.asserted = not bad
        if bad:
            worst = max(bad.values(), key=lambda e: e.statistic(self.rule))
            others = [e.summary() for e in bad.values() if e is not worst]
            msg = worst.failure_message(self.threshold, self.rule)
            if others:
                msg += "\n  also failing:\n" + "\n".join("    " + o for o in others)
            raise AssertionError(f"{self.name}: {msg}")
        return self

    def assert_spectral_shift_below(self, threshold: float, rule: str = "estimate") -> "AuditResult":
        """Fail when the level's effect on any subgroup's activation high-frequency ratio passes `threshold`."""
        threshold, rule = check_threshold(threshold), check_rule(rule)
        if not self.spectral_effects:
            raise AuditConfigError("this audit measured no spectra; run it with spectral_cutoff set (e.g. 0.5)")
        bad = [e for by_group in self.spectral_effects.values() for e in by_group.values()
               if not e.passes(threshold, rule)]
        if bad:
            worst = max(bad, key=lambda e: e.statistic(rule))
            raise AssertionError(f"{self.name}: spectral shift: " + worst.failure_message(threshold, rule))
        return self

    def summary_rows(self) -> list[dict]:
        """One row per treated level: what the terminal summary and JSON report print."""
        rows = []
        for (pert, level), e in self.all_effects.items():
            rows.append({
                "audit": self.name, "contrast": f"{level_label(level)} vs {level_label(self.reference)}",
                "perturbation": pert, "bias": self.bias,
                "effect": e.estimate, "ci_low": e.ci[0], "ci_high": e.ci[1], "p_value": e.p_value,
                "n": e.n, "threshold": self.threshold, "rule": self.rule,
                "verdict": "pass" if e.passes(self.threshold, self.rule) else "fail",
            })
        return rows

    def to_dict(self) -> dict:
        return {
            "name": self.name, "intervention": self.intervention, "perturbation": self.perturbation,
            "perturbations": self.outcomes.perturbations,
            "data": self.data, "group_counts": self.group_counts, "reference": level_label(self.reference),
            "bias": self.bias, "threshold": self.threshold, "rule": self.rule, "verdict": self.verdict,
            "settings": self.settings, "effects": self.summary_rows(), "outcomes": self.outcomes.as_records(),
            "spectral": self.spectral,
            "spectral_effects": [
                {"level": level_label(level), "subgroup": g, "effect": e.estimate, "ci_low": e.ci[0],
                 "ci_high": e.ci[1], "p_value": e.p_value, "n": e.n}
                for level, by_group in self.spectral_effects.items() for g, e in by_group.items()],
            "kernel_spectra": self.kernel_spectra, "heat_maps": self.heat_maps,
        }

    def __repr__(self) -> str:
        lines = [f"AuditResult {self.name}", f"  intervention: {self.intervention}",
                 f"  data: {self.data} {self.group_counts}"]
        lines += [self.outcomes.table(p) for p in self.outcomes.perturbations]
        lines.append(f"  bias: {self.bias}")
        lines += ["  " + e.summary() for e in self.all_effects.values()]
        for by_group in self.spectral_effects.values():
            lines += ["  " + e.summary() for e in by_group.values()]
        lines.append(f"  verdict: {self.verdict} (threshold {self.threshold:g}, rule {self.rule!r}: "
                     f"{RULE_MEANING[self.rule]})")
        return "\n".join(lines)


def default_data(config: str, n_train: int = 4000, n_test: int = 2000, seed: int = 0):
    """SynthFaces train/test splits for the named configuration ("planted" or "null")."""
    return synthfaces(n_train, seed, config, "train"), synthfaces(n_test, seed, config, "test")


def run_audit(
    model: object,
    layer: LayerSpec,
    levels: Sequence[Level],
    *,
    data: SubgroupDataset | str = "planted",
    test_data: SubgroupDataset | None = None,
    attributes: str | Sequence[str] = "skin_tone",
    perturbation: Perturbation | Sequence[Perturbation] | None = None,
    seeds: int = 6,
    reference: Level | None = None,
    init: str = "fresh",
    train_config: TrainConfig = TrainConfig(),
    trainer: Trainer | None = None,
    device: str | torch.device = "cpu",
    bias: str = "spread",
    contrast: Sequence[str] | None = None,
    outcome: str = "drop",
    confidence: float = 0.95,
    interval: str = "t",
    threshold: float = 0.05,
    rule: str = "estimate",
    paired: bool = True,
    spectral_cutoff: float | None = 0.5,
    heat_map: dict | None = None,
    name: str = "audit",
    progress: Progress | None = _stderr,
) -> AuditResult:
    """Train every (level, seed) model, measure each subgroup clean and perturbed, estimate effects.

    `model` is a zero-argument builder, a timm model name, or a module to copy.
    `data` is a training `SubgroupDataset` (then `test_data` is required) or a
    SynthFaces configuration name. `trainer(model, data, seed)` replaces the
    default trainer. No assertion is made; call `.assert_below()` on the result.

    With `spectral_cutoff` (a fraction of Nyquist), each model's first
    intervened layer is also measured: the high-frequency share of its output
    maps' power per subgroup, whose paired effects land in `spectral_effects`,
    and its kernels' radial spectrum. `heat_map=dict(eps=4.0, step=4, images=256)`
    adds Yin et al. Fourier heat maps per subgroup for each level's first seed.
    """
    check_seeds(seeds)
    threshold = check_threshold(threshold)
    check_rule(rule)
    if isinstance(data, str):
        train_data, test_set = default_data(data)
    else:
        if test_data is None:
            raise AuditConfigError("pass test_data= alongside a training dataset (the audit never tests on training images)")
        train_data, test_set = data, test_data
    perturbations = as_perturbations(perturbation or LowPass(0.4))
    intervention = KernelIntervention(model, layer, levels, reference,
                                      num_classes=int(max(train_data.labels.max(), test_set.labels.max())) + 1,
                                      init=init, input_size=(1, *test_set.images.shape[1:]))
    # Subgroups seen in training must all be measurable in the test set.
    loaders = SubgroupLoaders(test_set, attributes, perturbations, device=device,
                              expected_groups=list(train_data.subgroup_indices(attributes)))
    check_bias_form(bias, contrast, outcome, list(loaders.groups))
    outcomes = Outcomes()
    spectral: list[dict] = []
    kernels: dict[str, list] = {}
    heat_maps: dict[str, dict] = {}
    n_models, done, started = len(intervention.levels) * seeds, 0, time.time()
    for seed in range(seeds):
        for level in intervention.levels:
            label = f"{name} {level_label(level)} seed {seed + 1}/{seeds}"
            model_ks = intervention.build(level, seed, paired=paired)
            # Unpaired runs also decorrelate the data order, as independent trainings would.
            order_seed = seed if paired else layer_seed(seed, f"order-{level_label(level)}") % (2**31)
            t0 = time.time()
            if trainer is None:
                trained = train(model_ks, train_data, order_seed, train_config, device, label,
                                progress=None if progress is None else (lambda m: progress(m)))
            else:
                trained = trainer(model_ks, train_data, order_seed)
            metrics = loaders.evaluate(trained)
            if spectral_cutoff is not None:
                _measure_spectra(trained, intervention, level, seed, loaders, spectral_cutoff, spectral, kernels)
            if heat_map is not None and seed == 0:
                heat_maps[level_label(level)] = _heat_maps(trained, loaders, heat_map)
            done += 1
            if progress is not None:
                progress(f"{label} trained+evaluated in {time.time() - t0:.1f}s ({done}/{n_models} models)")
            for pert in perturbations:
                for g in loaders.groups:
                    outcomes.add(Outcome(level, seed, g, pert, metrics[CLEAN][g], metrics[pert][g]))
    all_effects = {(pert, level): e for pert in perturbations for level, e in estimate_effects(
        outcomes, intervention.reference, pert, bias, contrast, outcome, confidence, interval).items()}
    spectral_effects = {}
    if spectral:
        spectral_effects = _spectral_effects(spectral, intervention, seeds, confidence, interval, spectral_cutoff)
    return AuditResult(
        name=name, intervention=intervention.describe(), perturbation=next(iter(perturbations)), data=train_data.name,
        group_counts=loaders.counts(), outcomes=outcomes, all_effects=all_effects, reference=intervention.reference,
        bias=bias_label(bias, contrast, outcome), threshold=threshold, rule=rule,
        settings={"seeds": seeds, "levels": [level_label(v) for v in intervention.levels],
                  "intervention_table": list(intervention.table), "layers": intervention.layers,
                  "attributes": loaders.attributes, "train": train_config.as_dict(), "device": str(device),
                  "paired": paired, "interval": interval, "confidence": confidence,
                  "spectral_cutoff": spectral_cutoff, "seconds": round(time.time() - started, 1)},
        spectral=spectral, spectral_effects=spectral_effects,
        kernel_spectra={k: torch.stack(v).mean(0).tolist() for k, v in kernels.items()}, heat_maps=heat_maps,
    )


def _measure_spectra(model, intervention, level, seed, loaders, cutoff, rows, kernels) -> None:
    layer = intervention.layers[0]
    kernels.setdefault(level_label(level), []).append(kernel_spectrum(model.get_submodule(layer)))
    by_group = activation_spectra(model, layer, loaders.data.images, loaders.groups, device=loaders.device)
    for g, spectrum in by_group.items():
        rows.append({"level": level_label(level), "seed": seed, "subgroup": g, "layer": layer,
                     "hf_ratio": float(high_frequency_ratio(spectrum, cutoff))})


def _spectral_effects(rows, intervention, seeds, confidence, interval, cutoff) -> dict:
    ratio = {(r["level"], r["seed"], r["subgroup"]): r["hf_ratio"] for r in rows}
    groups = sorted({r["subgroup"] for r in rows})
    ref = level_label(intervention.reference)
    effects = {}
    for level in intervention.treatments:
        lab = level_label(level)
        effects[level] = {
            g: paired_effect([ratio[(lab, s, g)] for s in range(seeds)], [ratio[(ref, s, g)] for s in range(seeds)],
                             confidence=confidence, method=interval,
                             label=f"{lab} vs {ref}: high-frequency share (>= {cutoff:g} Nyquist) of "
                                   f"{intervention.layers[0]} activations, {g}")
            for g in groups}
    return effects


def _heat_maps(model, loaders, options: dict) -> dict:
    n = int(options.get("images", 256))
    # A fixed, seeded subset per subgroup keeps the cost bounded and the maps paired across levels.
    gen = torch.Generator().manual_seed(0)
    picked = {g: idx[torch.randperm(len(idx), generator=gen)[:n]] for g, idx in loaders.groups.items()}
    index = torch.cat(list(picked.values()))
    offsets, groups = 0, {}
    for g, idx in picked.items():
        groups[g] = torch.arange(offsets, offsets + len(idx))
        offsets += len(idx)
    maps = fourier_heat_map(model, loaders.data.images[index], loaders.data.labels[index],
                            eps=float(options.get("eps", 4.0)), groups=groups, step=int(options.get("step", 4)),
                            device=loaders.device)
    return {g: m.tolist() for g, m in maps.items()}
