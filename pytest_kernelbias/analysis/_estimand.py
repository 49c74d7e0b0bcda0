"""The estimand: how one model's clean and perturbed subgroup metrics become its bias B(m).

Every consumer (the effects, the placebos, the hierarchical bootstrap, the dose
response, the reports) asks this one object, so a new bias form is added here
and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence, get_args

import numpy as np

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

