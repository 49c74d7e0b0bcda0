"""Cache keys are made of what things do (issue 34): a model by what its factory builds and computes, a
perturbation by its parameters and output, a trainer by everything it reaches. Each change below once kept
its key, so a rerun on a shared cache reported the old numbers; each now gets other keys, and code that
computes alike whatever its form shares them."""

from __future__ import annotations

import dataclasses
import functools
import warnings

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn

from pytest_kernelbias import AuditSpec, Perturbation, TrainConfig, synthfaces
from pytest_kernelbias.audit import prepare_plan as prepare
from pytest_kernelbias.errors import TrainerKeyWarning
from pytest_kernelbias.fingerprints import model_fingerprint, perturbation_fingerprint, perturbation_probe

from .conftest import tiny_cnn

TRAIN, TEST = synthfaces(48, 0, "planted", "train"), synthfaces(48, 0, "planted", "test")


def plan(model=tiny_cnn, **kw):
    spec = AuditSpec.from_kwargs(model, "0", [3, 5], data=TRAIN, test_data=TEST, seeds=2, progress=None, workers=1,
                                 train_config=TrainConfig(epochs=1, batch_size=16), min_group_size=1,
                                 **{"spectral_cutoff": None, **kw})
    variants = prepare(spec)[0].variants
    return [v.key for v in variants], [v.eval_key for v in variants]


def cnn(width: int = 8, act: type = nn.ReLU, pool: type = nn.MaxPool2d, p: float = 0.0, pad: str = "zeros"):
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1, padding_mode=pad), act(), pool(2), nn.Dropout(p),
                         nn.Conv2d(width, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 2))


BASE = plan(lambda: cnn())


# ---------------------------------------------------------------- models
@pytest.mark.parametrize("width", [8, 16])
def test_a_parametrized_lambda_factory_is_keyed_by_what_it_builds(width):
    weights, _ = plan(lambda: cnn(width=width))
    assert (weights == BASE[0]) == (width == 8)


def test_a_closure_factory_is_keyed_by_its_cell():
    def make(width):
        return lambda: cnn(width=width)

    assert plan(make(8))[0] == BASE[0]
    assert not set(plan(make(16))[0]) & set(BASE[0])


POOLING = nn.MaxPool2d


def factory_reading_a_global():
    return cnn(pool=POOLING)


def helper(width):
    return cnn(width=width)


def factory_calling_a_helper():
    return helper(8)


def test_a_factory_reading_a_changed_global_gets_other_keys(monkeypatch):
    before = plan(factory_reading_a_global)[0]
    monkeypatch.setitem(globals(), "POOLING", nn.AvgPool2d)
    assert not set(plan(factory_reading_a_global)[0]) & set(before)


def test_a_factory_whose_helper_changed_gets_other_keys(monkeypatch):
    before = plan(factory_calling_a_helper)[0]
    assert before == BASE[0]  # the same model as a lambda builds: one key whatever the code
    monkeypatch.setitem(globals(), "helper", lambda width: cnn(width=width, act=nn.Tanh))
    assert not set(plan(factory_calling_a_helper)[0]) & set(before)


@pytest.mark.parametrize("change", ["tanh", "avgpool", "dropout", "padding_mode", "swapped"])
def test_a_module_instance_is_keyed_by_its_modules_not_its_class_source(change):
    base = cnn()
    torch.manual_seed(0)
    changed = {"tanh": lambda: cnn(act=nn.Tanh), "avgpool": lambda: cnn(pool=nn.AvgPool2d),
               "dropout": lambda: cnn(p=0.5), "padding_mode": lambda: cnn(pad="reflect"),
               "swapped": lambda: cnn(act=nn.GELU)}[change]()
    changed.load_state_dict(base.state_dict())  # same class, same weights: only the behaviour differs
    assert not set(plan(changed)[0]) & set(plan(base)[0])
    assert plan(cnn_copy(base))[0] == plan(base)[0]


def cnn_copy(module: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(module)


class Builder:
    """A callable object whose repr never changes."""

    def __init__(self, width):
        self._width = width

    def __repr__(self):
        return "Builder()"

    def __call__(self):
        return cnn(width=self._width)


def test_a_callable_object_is_keyed_by_what_it_builds_not_its_repr():
    assert plan(Builder(8))[0] == BASE[0]
    assert not set(plan(Builder(16))[0]) & set(BASE[0])


def _class_with_forward(scale: float) -> type:
    class Net(nn.Sequential):  # one qualname for both: an edited class, as after a code change
        def __init__(self, width: int):
            super().__init__(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(width, 2))

        def forward(self, x):
            return super().forward(x) * scale

    return Net


def test_a_partial_of_an_edited_class_gets_other_keys():
    one, two = (functools.partial(_class_with_forward(s), width=8) for s in (1.0, 2.0))
    assert not set(plan(one)[0]) & set(plan(two)[0])


def test_factories_that_build_alike_share_keys_whatever_their_form():
    def named():
        return cnn()

    class Factory:
        def __call__(self):
            return cnn()

    for form in (named, Factory(), functools.partial(cnn, 8), lambda: cnn(8, nn.ReLU)):
        assert plan(form)[0] == BASE[0]


KINDS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "max": lambda: nn.MaxPool2d(2),
         "avg": lambda: nn.AvgPool2d(2), "id": nn.Identity}
layers = st.lists(st.tuples(st.sampled_from([4, 6]), st.sampled_from([1, 3]), st.sampled_from(sorted(KINDS))),
                  min_size=1, max_size=3)


def tree(spec) -> nn.Module:
    mods, width = [], 3
    for out, k, kind in spec:
        mods += [nn.Conv2d(width, out, k, padding=k // 2), KINDS[kind]()]
        width = out
    return nn.Sequential(*mods, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 2))


@settings(max_examples=40, deadline=None)
@given(a=layers, b=layers)
def test_two_small_module_trees_share_a_fingerprint_exactly_when_they_are_the_same_tree(a, b):
    """Equal behaviour <=> equal key, over small trees: distinct specs build distinct trees, and a spec built
    through another code path (a closure here, a direct call there) keys alike."""
    images = TRAIN.images[:8, :, :16, :16]
    first = model_fingerprint(lambda: tree(a), images)
    second = model_fingerprint(functools.partial(tree, list(b)), images)
    assert (first == second) == (a == b)


# ---------------------------------------------------------------- perturbations
PROBE = perturbation_probe(TEST.images)
FACTOR = 0.5


class Private(Perturbation):
    def __init__(self, f):
        self._f = f

    def apply(self, x):
        return x * self._f


class ReadsGlobal(Perturbation):
    def apply(self, x):
        return x * FACTOR


class Base(Perturbation):
    def apply(self, x):
        return x * 0.5


class Child(Base):
    pass


class Constant:
    def __init__(self, v):
        self.v = v

    def __repr__(self):
        return "Constant()"


class HoldsConstant(Perturbation):
    def __init__(self, c):
        self.c = c

    def apply(self, x):
        return x * self.c.v


def closure_perturbation(f):
    class Closed(Perturbation):
        def apply(self, x):
            return x * f

    return Closed()


def fp(p):
    return perturbation_fingerprint(p, PROBE)


def test_a_perturbation_parameter_in_a_private_attribute_is_in_its_key():
    assert fp(Private(0.5)) != fp(Private(0.25)) and fp(Private(0.5)) == fp(Private(0.5))


def test_a_perturbation_reading_a_changed_global_gets_another_key(monkeypatch):
    before = fp(ReadsGlobal())
    monkeypatch.setitem(globals(), "FACTOR", 0.25)
    assert fp(ReadsGlobal()) != before


def test_a_perturbation_closure_an_inherited_apply_and_a_class_attribute_changed_at_run_time(monkeypatch):
    assert fp(closure_perturbation(0.5)) != fp(closure_perturbation(0.25))
    before = fp(Child())
    monkeypatch.setattr(Base, "apply", lambda self, x: x * 0.25)  # the base class edited: Child inherits it
    assert fp(Child()) != before
    monkeypatch.setattr(Perturbation, "clip", True)  # a class attribute changed at run time
    assert fp(Child()) != before


def test_an_attribute_with_a_constant_repr_is_keyed_by_its_state():
    assert fp(HoldsConstant(Constant(0.5))) != fp(HoldsConstant(Constant(0.25)))


def test_changed_perturbations_change_only_evaluation_keys():
    weights, evals = plan(lambda: cnn(), perturbation=Private(0.25))
    assert weights == BASE[0] and not set(evals) & set(BASE[1])


@settings(max_examples=30, deadline=None, derandomize=True)
@given(a=st.floats(0.1, 1.0), b=st.floats(0.1, 1.0))
@example(a=0.1, b=0.10000000000000002)
@example(a=0.1, b=float(np.nextafter(np.float32(0.1), np.float32(1))))  # the next float32 up
def test_perturbations_share_a_key_exactly_when_they_compute_alike(a, b):
    # The images are float32, so the factor acts as its float32 value: 0.1 and 0.10000000000000002 compute alike
    # (hypothesis found that pair) and rightly share a key; factors that differ in float32 never do.
    assert (fp(Private(a)) == fp(Private(b))) == (np.float32(a) == np.float32(b))


# ---------------------------------------------------------------- trainers
def _train(model, data, seed, epochs=1):
    return model


@dataclasses.dataclass
class DataclassTrainer:
    lr: float

    def __call__(self, model, data, seed):
        return model


def closure_trainer(lr):
    def train(model, data, seed):
        return model if lr else model

    return train


LR = 0.1


def trainer_reading_a_global(model, data, seed):
    return model if LR else model


def test_trainers_are_keyed_by_their_state_closures_and_globals(monkeypatch):
    keys = {str(plan(trainer=t)[0]) for t in (DataclassTrainer(0.1), DataclassTrainer(0.2), closure_trainer(0.1),
                                               closure_trainer(0.2), functools.partial(_train, epochs=2), _train)}
    assert len(keys) == 6
    assert plan(trainer=DataclassTrainer(0.1))[0] == plan(trainer=DataclassTrainer(0.1))[0]  # stable
    before = plan(trainer=trainer_reading_a_global)[0]
    monkeypatch.setitem(globals(), "LR", 0.2)
    assert not set(plan(trainer=trainer_reading_a_global)[0]) & set(before)


class Opaque:
    __slots__ = ()  # no state Python can see: known only by its address


def test_a_trainer_reaching_an_opaque_value_warns_and_cache_key_names_its_version():
    opaque = Opaque()

    def train(model, data, seed):
        return model if opaque else model

    with pytest.warns(TrainerKeyWarning, match=r"opaque.*cache_key='v1'"):
        plan(trainer=train)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainerKeyWarning)
        one, two = plan(trainer=train, cache_key="v1")[0], plan(trainer=train, cache_key="v2")[0]
    assert not set(one) & set(two)


def _compiled(source: str):
    space = {"__name__": __name__}
    exec(compile(source, "<trainer>", "exec"), space)
    return space["train"]


def test_a_trainer_is_keyed_by_its_code_not_its_comments_or_lines():
    from pytest_kernelbias.fingerprints import trainer_fingerprint

    plain = _compiled("def train(model, data, seed):\n    return model\n")
    moved = _compiled("\n\n# a comment above\ndef train(model, data, seed):\n    # and one inside\n    return model\n")
    edited = _compiled("def train(model, data, seed):\n    return model if seed >= 0 else None\n")
    assert trainer_fingerprint(plain) == trainer_fingerprint(moved) != trainer_fingerprint(edited)


def test_a_trainer_holding_the_training_set_is_keyed_by_its_content():
    from pytest_kernelbias.fingerprints import trainer_fingerprint

    def holding(data):
        return lambda model, d, seed: model if data else model

    copy = TRAIN.copy()
    TRAIN.fingerprint()  # a memo of version counters on one of them only
    assert trainer_fingerprint(holding(TRAIN)) == trainer_fingerprint(holding(copy))
    copy.images[0, 0, 0, 0] += 1
    assert trainer_fingerprint(holding(TRAIN)) != trainer_fingerprint(holding(copy))


def test_a_trainer_reaching_a_deep_or_huge_structure_warns_instead_of_crashing():
    from pytest_kernelbias.fingerprints import trainer_fingerprint

    deep: list = []
    for _ in range(5000):
        deep = [deep]

    def train(model, data, seed):
        return model if deep else model

    with pytest.warns(TrainerKeyWarning, match="nested deeper than"):
        assert "process" in trainer_fingerprint(train)


# ---------------------------------------------------------------- what a trainer reaches: the class, closed
def _reach_of(value):
    from pytest_kernelbias.fingerprints import Reach

    reach = Reach()
    return reach.encode(value, "x"), reach.unstable


class Slotted:
    __slots__ = ("__factor",)

    def __init__(self, f):
        self.__factor = f


class OneSlot:
    __slots__ = "factor"

    def __init__(self, f):
        self.factor = f


class Margin(nn.Module):
    def __init__(self, margin, weights):
        super().__init__()
        self._margin, self.class_weights = margin, weights
        self.register_buffer("scale", torch.tensor([margin]), persistent=False)


@pytest.mark.parametrize("make", [
    lambda v: __import__("collections").defaultdict(lambda: v),
    lambda v: __import__("collections").namedtuple("Cfg", ["lr", "mom"] if v == 1 else ["mom", "lr"])(1, 2),
    lambda v: Slotted(v), lambda v: OneSlot(v),
    lambda v: np.ma.masked_array([1.0, 2.0], mask=[False, v == 1]),
    lambda v: torch.ones(2).requires_grad_(v == 1),
    lambda v: __import__("io").BytesIO(b"a" if v == 1 else b"b"),
    lambda v: nn.Sequential(Margin(v, {"a": v})),
    lambda v: np.matrix([[1.0]]) if v == 1 else np.array([[1.0]]),
], ids=["defaultdict", "namedtuple", "mangled-slot", "string-slots", "masked", "requires_grad", "bytesio",
        "module-state", "matrix"])
def test_state_a_trainer_can_reach_is_in_its_encoding(make):
    one, unstable = _reach_of(make(1))
    assert one != _reach_of(make(2))[0] and not unstable


def test_a_user_module_an_exec_class_and_odd_values_are_followed_or_named():
    import enum
    import pathlib
    import random
    import types as pytypes

    pkg = pytypes.ModuleType("user_pkg_for_test")
    pkg.config = pytypes.ModuleType("user_pkg_for_test.config")
    pkg.config.LR = 0.1
    before = _reach_of(pkg)[0]
    pkg.config.LR = 0.2
    assert _reach_of(pkg)[0] != before  # a module reached as a value: its attributes, submodules followed
    space = {"__name__": "never_imported_module"}
    exec("class Aug:\n    def apply(self):\n        return 1\n", space)
    first = _reach_of(space["Aug"])[0]
    exec("class Aug:\n    def apply(self):\n        return 2\n", space)
    assert _reach_of(space["Aug"])[0] != first  # code of no known module is followed, not named
    path = pathlib.Path("/tmp/a")
    plain = _reach_of(pathlib.Path("/tmp/a"))[0]
    hash(path)
    assert _reach_of(path)[0] == plain  # a cached hash (per-process) is no part of it
    color = enum.Enum("Color", "RED GREEN")
    assert _reach_of(color.RED)[1] == [] and _reach_of(color.RED)[0] != _reach_of(color.GREEN)[0]
    assert _reach_of(10**5000)[0] != _reach_of(10**5000 + 1)[0]  # past JSON's digit limit, by its bytes
    assert _reach_of(random.SystemRandom())[1]  # no state to key: unstable, so never reused across runs


def test_a_lazy_model_is_fingerprinted_after_its_shapes_are_known():
    first = model_fingerprint(lambda: nn.Sequential(nn.Flatten(), nn.LazyLinear(2)), TRAIN.images)
    assert first == model_fingerprint(lambda: nn.Sequential(nn.Flatten(), nn.LazyLinear(2)), TRAIN.images)
    assert first != model_fingerprint(lambda: nn.Sequential(nn.Flatten(), nn.LazyLinear(3)), TRAIN.images)


def test_a_record_nested_too_deeply_is_damage_not_a_crash(tmp_path):
    from pytest_kernelbias._stored import read_memo

    (tmp_path / "m.json").write_text("[" * 100_000)
    assert read_memo(tmp_path / "m.json") is None
