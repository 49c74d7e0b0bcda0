"""A factorial design: two factors, each a layer and its levels, crossed into cells.

The first factor is the cause (e.g. conv1's kernel size), the second the fix (e.g. anti-aliasing the pool
after it); each factor's first level is its reference, and the cell of both references is the audit's
reference. A cell is a level like any other: a paired model per seed, the factor layers changed together.
`Contrast` names the effects a factorial audit decides (analysis/_family.py): the cause's effect at each
fix level, the fix's at the reference cause, and their interaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..errors import InterventionError
from ._levels import Intervention, as_intervention, scoped
from ._select import Each


def _level_text(level: object) -> str:
    return "as built" if level is None else str(as_intervention(level))


@dataclass(frozen=True)
class Factor:
    """One factor: a layer (its exact name) and its levels, the first its reference. A level is a kernel size,
    an `Intervention` (`AntiAlias(3)`, `Pooling("blur")`, ...) or None, the layer as built."""

    layer: str
    levels: tuple

    def __init__(self, layer: str, levels: Sequence):
        if not isinstance(layer, str):
            raise InterventionError(f"Factor(layer={layer!r}): a factor changes one layer, named exactly")
        levels = tuple(levels)
        for level in levels:
            if level is not None:
                as_intervention(level)  # its own check, naming the fix (before hashing: a list is no level)
        if len(levels) < 2 or len(set(levels)) != len(levels):
            raise InterventionError(f"Factor({layer!r}, {list(levels)}): give two or more distinct levels, the first "
                                    "the reference, e.g. Factor('pool', [None, AntiAlias(3)])")
        object.__setattr__(self, "layer", layer)
        object.__setattr__(self, "levels", levels)


@dataclass(frozen=True)
class Cell:
    """One cell of a factorial design: the cause factor's level on its layer and the fix factor's on its own."""

    cause_layer: str
    cause: object  # a level, or None: as built
    fix_layer: str
    fix: object

    layer = None  # a cell is not a layer map's arm
    compound = True  # a level of its own kind (as_intervention returns it as it is)

    def parts(self) -> list[tuple[str, Intervention]]:
        """(layer, what it gets) for each factor that changes its layer."""
        return [(layer, as_intervention(level)) for layer, level in
                ((self.cause_layer, self.cause), (self.fix_layer, self.fix)) if level is not None]

    def __str__(self) -> str:
        return f"{self.cause_layer}: {_level_text(self.cause)} & {self.fix_layer}: {_level_text(self.fix)}"


@dataclass(frozen=True)
class Contrast:
    """An effect of a factorial audit, as a key: "cause" (cause level vs reference at fix level `fix`),
    "fix" (fix level vs reference at the reference cause) or "interaction" (how the fix level changes the
    cause level's effect)."""

    kind: str
    cause: object
    fix: object
    design: "FactorialDesign"

    layer = None
    compound = True

    def __str__(self) -> str:
        d = self.design
        cause, fix = f"{d.cause.layer} {_level_text(self.cause)}", f"{d.fix.layer} {_level_text(self.fix)}"
        ref_cause = f"{d.cause.layer} {_level_text(d.cause.levels[0])}"
        if self.kind == "cause":
            return f"{cause} vs {_level_text(d.cause.levels[0])} with {fix}"
        if self.kind == "fix":
            return f"{fix} vs {_level_text(d.fix.levels[0])} with {ref_cause}"
        return f"interaction: {fix} on the effect of {cause}"


@dataclass(frozen=True)
class FactorialDesign:
    """The two factors; `cells` is every combination, the reference (both factors' first levels) first."""

    cause: Factor
    fix: Factor

    def cell(self, cause: object, fix: object) -> Cell:
        return Cell(self.cause.layer, cause, self.fix.layer, fix)

    @property
    def cells(self) -> list[Cell]:
        return [self.cell(a, b) for b in self.fix.levels for a in self.cause.levels]

    def contrasts(self) -> list[tuple[Contrast, dict[Cell, float]]]:
        """The effects the audit decides, each with its weights over cells (they sum to 0): the cause's effect
        at every fix level, the fix's at the reference cause, and every interaction."""
        (a0, *causes), (b0, *fixes) = self.cause.levels, self.fix.levels
        out = [(Contrast("cause", a, b, self), {self.cell(a, b): 1.0, self.cell(a0, b): -1.0})
               for b in self.fix.levels for a in causes]
        out += [(Contrast("fix", a0, b, self), {self.cell(a0, b): 1.0, self.cell(a0, b0): -1.0}) for b in fixes]
        out += [(Contrast("interaction", a, b, self),
                 {self.cell(a, b): 1.0, self.cell(a, b0): -1.0, self.cell(a0, b): -1.0, self.cell(a0, b0): 1.0})
                for b in fixes for a in causes]
        return out


class Factorial(list):
    """The cells of a factorial design, as an audit's levels (reference first), with the design beside them."""

    def __init__(self, design: FactorialDesign):
        super().__init__(design.cells)
        self.design = design


def factorial(cause: Factor, fix: Factor) -> Factorial:
    """Levels that cross `cause` with `fix`: ``levels=factorial(Factor("conv1", [3, 9]),
    Factor("pool", [None, AntiAlias(3)]))`` trains every cell, paired by seed, and decides the cause's effect
    with and without the fix and their interaction as one family."""
    if not isinstance(cause, Factor) or not isinstance(fix, Factor):
        raise InterventionError("factorial(cause, fix) takes two Factor(layer, levels)")
    if cause.layer == fix.layer:
        raise InterventionError(f"factorial: both factors change {cause.layer!r}; cross two layers, or give one "
                                "factor levels that combine both settings (KernelSize(9) & AntiAlias(3))")
    return Factorial(FactorialDesign(cause, fix))


def design_of(levels: Sequence) -> FactorialDesign | None:
    """The factorial design `levels` come from, or None when they are not the cells of one."""
    cells = [level for level in levels if isinstance(level, Cell)]
    if not cells:
        return None
    first = cells[0]
    causes = list(dict.fromkeys(c.cause for c in cells))
    fixes = list(dict.fromkeys(c.fix for c in cells))
    design = FactorialDesign(Factor(first.cause_layer, causes), Factor(first.fix_layer, fixes))
    if len(cells) != len(levels) or set(cells) != set(design.cells):
        raise InterventionError("a factorial audit's levels are every cell of factorial(cause, fix), nothing else; "
                                "pass levels=factorial(...) as it is")
    return design


def check_factorial(layer: object, levels: Sequence, reference: object) -> None:
    """A factorial audit's levels are its cells, its reference the cell of both factors' first levels, and its
    layers its factors' own (no layer map)."""
    design = design_of(levels)
    if design is None:
        return
    if isinstance(layer, Each):
        raise InterventionError("layer=each(...) with factorial levels: a factorial audit changes its factors' "
                                "layers; pass layer=[cause layer, fix layer]")
    if reference != design.cells[0]:
        raise InterventionError(f"reference={reference}: a factorial audit's reference is the cell of both "
                                f"factors' first levels ({design.cells[0]}); drop reference=, or reorder a "
                                "factor's levels")


def check_factorial_layers(changes: Sequence, layers: Sequence[str]) -> None:
    """A factorial cell changes its factors' layers: the audit's selection must hold them."""
    wanted = list(dict.fromkeys(name for change in changes for name, _ in scoped(change, layers)))
    missing = [name for name in wanted if name not in layers]
    if missing:
        raise InterventionError(f"the factors change {wanted}, and layer= selects {list(layers)}; pass "
                                f"layer={wanted}")
