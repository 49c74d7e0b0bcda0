"""The estimand: how one model's clean and perturbed subgroup metrics become its bias B(m).

Every consumer (the effects, the placebos, the hierarchical bootstrap, the dose
response, the reports) asks this one object, so a new bias form is added here
and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence, get_args

import numpy as np
from scipy import stats

from ..errors import AuditConfigError, EmptySubgroupError

BiasForm = Literal["spread", "between_groups", "contrast", "to_reference"]
OutcomeKind = Literal["drop", "perturbed"]
BIAS_FORMS: tuple[str, ...] = get_args(BiasForm)
OUTCOME_KINDS: tuple[str, ...] = get_args(OutcomeKind)


def _contrast_groups(form: str, contrast: object) -> tuple[str, ...]:
    if contrast is None:
        return ()
    if isinstance(contrast, str):
        return (contrast,)
    try:
        groups = tuple(contrast)  # type: ignore[arg-type]
    except TypeError:
        raise AuditConfigError(f"contrast must be a subgroup name or a pair of them, got {contrast!r}") from None
    if not all(isinstance(g, str) for g in groups):
        raise AuditConfigError(f"contrast must name subgroups as strings, e.g. 'skin_tone=dark'; got {contrast!r}")
    return groups


@dataclass(frozen=True)
class Estimand:
    """B(m) from a model's per-subgroup metrics.

    `form` "spread" (or its alias "between_groups") is max_g Y - min_g Y;
    "contrast" is Y(g1) - Y(g2) for `contrast=(g1, g2)`; "to_reference" is the
    largest signed Y(g) - Y(ref) for `contrast=ref`. Y is the drop
    (clean - perturbed) when `outcome="drop"`, the perturbed metric itself
    when `outcome="perturbed"`.
    """

    form: BiasForm = "spread"
    contrast: tuple[str, ...] = ()
    outcome: OutcomeKind = "drop"

    def __post_init__(self) -> None:
        if self.form not in BIAS_FORMS:
            raise AuditConfigError(f"bias must be one of {BIAS_FORMS}, got {self.form!r}")
        if self.outcome not in OUTCOME_KINDS:
            raise AuditConfigError(f"outcome must be one of {OUTCOME_KINDS}, got {self.outcome!r}")
        groups = _contrast_groups(self.form, self.contrast)
        object.__setattr__(self, "contrast", groups)
        if self.form == "contrast" and len(groups) != 2:
            raise AuditConfigError('bias="contrast" needs contrast=(group1, group2), e.g. '
                                   '("skin_tone=dark", "skin_tone=light")')
        if self.form == "contrast" and groups[0] == groups[1]:
            raise AuditConfigError(f'bias="contrast" of {groups[0]!r} with itself is 0 for every model, so the audit '
                                   "could never fail; name two different subgroups")
        if self.form == "to_reference" and len(groups) != 1:
            raise EmptySubgroupError(f'bias="to_reference" needs contrast=<reference subgroup>; got {self.contrast!r}')

    @classmethod
    def of(cls, bias: str = "spread", contrast: str | Sequence[str] | None = None,
           outcome: str = "drop") -> "Estimand":
        """The estimand named by the loose `bias`, `contrast`, `outcome` arguments of the public functions."""
        return cls(bias, contrast, outcome)  # type: ignore[arg-type]

    def check_groups(self, subgroups: Sequence[str]) -> None:
        """Refuse contrast groups that are not subgroups of the test set (before any model trains)."""
        if self.form in ("spread", "between_groups") and len(subgroups) < 2:
            raise EmptySubgroupError(f"the spread needs at least two subgroups, found {list(subgroups)}; audit "
                                     "an attribute with two or more values, or several attributes")
        missing = [g for g in self.contrast if g not in subgroups]
        if not missing:
            return
        if self.form == "to_reference":
            raise EmptySubgroupError(f'bias="to_reference" needs contrast=<reference subgroup>; {missing[0]!r} is '
                                     f"not one of {list(subgroups)}")
        raise EmptySubgroupError(f"contrast group {missing[0]!r} is not a subgroup of the test set; subgroups are "
                                 f"{list(subgroups)}")

    def values(self, clean: np.ndarray, perturbed: np.ndarray) -> np.ndarray:
        """Y per subgroup (last axis) from the clean and perturbed metrics."""
        clean, perturbed = np.asarray(clean, dtype=float), np.asarray(perturbed, dtype=float)
        return clean - perturbed if self.outcome == "drop" else perturbed

    def bias(self, values: np.ndarray, subgroups: Sequence[str]) -> np.ndarray:
        """B from Y, vectorized over leading axes; the last axis runs over `subgroups` in that order."""
        y = np.asarray(values, dtype=float)
        if self.form in ("spread", "between_groups"):
            if y.shape[-1] < 2:
                raise EmptySubgroupError(f"the spread needs at least two subgroups, found {list(subgroups)}")
            return y.max(axis=-1) - y.min(axis=-1)
        names = list(subgroups)
        self.check_groups(names)
        if self.form == "contrast":
            return y[..., names.index(self.contrast[0])] - y[..., names.index(self.contrast[1])]
        d = y - y[..., names.index(self.contrast[0])][..., None]
        # The largest |difference| keeps its sign; ties go to the first subgroup, as max() over a dict does.
        pick = np.abs(d).argmax(axis=-1)
        return np.take_along_axis(d, pick[..., None], axis=-1)[..., 0]

    def roles(self, values: np.ndarray, subgroups: Sequence[str]) -> np.ndarray:
        """Which subgroups set B, per model (leading axes): one code per (max, min) pair for the spread, the
        subgroup picked for "to_reference", 0 for a fixed contrast. B is a smooth (linear) function of the
        metrics only while its roles stay put; where they change from model to model, B folds (`first_fold`)."""
        y = np.asarray(values, dtype=float)
        if self.form in ("spread", "between_groups"):
            return y.argmax(axis=-1) * y.shape[-1] + y.argmin(axis=-1)
        if self.form == "contrast":
            return np.zeros(y.shape[:-1], dtype=int)
        d = y - y[..., list(subgroups).index(self.contrast[0])][..., None]
        return np.abs(d).argmax(axis=-1)

    def first_fold(self, values: np.ndarray, subgroups: Sequence[str], confidence: float = 0.95) -> int | None:
        """The seed count (rows of `values`, in seed order) from which B may fold, or None: the subgroups that
        set B trade places among the models so far, or their order is not shown at one-sided `confidence`
        (a near tie, e.g. |g + noise| near a small gap g: the skew a few seeds may not have shown yet).
        Each count is judged on the seeds up to it, so a sequential look acts on it without peeking ahead."""
        y = np.asarray(values, dtype=float)
        for n in range(2, len(y) + 1):
            if self._may_fold(y[:n], subgroups, confidence):
                return n
        return None

    def _may_fold(self, y: np.ndarray, subgroups: Sequence[str], confidence: float) -> bool:
        if self.form == "contrast":
            return False
        if len(set(self.roles(y, subgroups).tolist())) > 1:
            return True
        if self.form == "to_reference":
            v = np.abs(y - y[:, [list(subgroups).index(self.contrast[0])]])
            order = np.argsort(-v.mean(axis=0))
            pairs = [(v, order[0], order[1])]
        else:
            order = np.argsort(-y.mean(axis=0))
            pairs = [(y, order[0], order[1]), (y, order[-2], order[-1])]
        critical = stats.t.ppf(confidence, len(y) - 1)
        for v, a, b in pairs:
            d = v[:, a] - v[:, b]
            sd = d.std(ddof=1)
            if d.mean() <= 0 or (sd > 0 and d.mean() / (sd / np.sqrt(len(d))) < critical):
                return True
        return False

    def bias_of(self, by_group: dict[str, float]) -> float:
        """B of one model from {subgroup: Y}."""
        names = list(by_group)
        return float(self.bias(np.array([by_group[g] for g in names]), names))

    @property
    def label(self) -> str:
        what = "drop" if self.outcome == "drop" else "perturbed accuracy"
        if self.form in ("spread", "between_groups"):
            return f"spread of {what} (max-min over subgroups)"
        if self.form == "to_reference":
            return f"largest signed difference in {what} from {self.contrast[0]}"
        return f"{what} of {self.contrast[0]} minus {self.contrast[1]}"

    def as_dict(self) -> dict:
        return {"bias": self.form, "contrast": list(self.contrast) or None, "outcome": self.outcome}

