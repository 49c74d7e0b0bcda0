"""The learning check judges the audit's own metric against its own chance level, before any verdict;
labels a subgroup cannot be scored on are named before training."""
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score

from pytest_kernelbias import KernelAuditWarning, ModelsDidNotLearnError, SubgroupDataset, from_tensors, run_audit
from pytest_kernelbias.analysis._learning import check_learning, learning_of
from pytest_kernelbias.errors import EmptySubgroupError, InputDataError, InputDataWarning
from tests.test_pipeline import tiny_cnn


def _skewed(seed: int = 0, n: int = 2000):
    """90/10 labels; a model that finds 75% of the rare class and 85% of the common one (balanced 0.80)."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.1).astype(np.int64)
    hit = np.where(labels == 1, rng.random(n) < 0.75, rng.random(n) < 0.85)
    pred = np.where(hit, labels, 1 - labels)
    codes = (np.arange(n) % 2).astype(np.intp)
    return pred, labels, codes


def test_balanced_accuracy_is_judged_against_its_own_chance_not_the_majority_rate():
    pred, labels, codes = _skewed()
    accuracy = learning_of("m", "k=3", pred, labels, codes, ["a", "b"], 0.95, "accuracy")
    balanced = learning_of("m", "k=3", pred, labels, codes, ["a", "b"], 0.95, "balanced_accuracy")
    # Below the majority rate by accuracy: refused when the audit scores accuracy ...
    assert accuracy.accuracy < accuracy.majority and accuracy.at_chance
    with pytest.raises(ModelsDidNotLearnError, match="clean accuracy .* for always predicting the majority class"):
        check_learning([accuracy], 0.05)
    # ... far above chance by balanced accuracy, the metric a balanced-accuracy audit actually reads.
    assert balanced.score == pytest.approx(balanced_accuracy_score(labels, pred), abs=1e-12)
    assert balanced.chance == 0.5 and not balanced.at_chance
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_learning([balanced], 0.05)


def test_tpr_and_fpr_audits_are_judged_by_balanced_accuracy_against_one_half():
    pred, labels, codes = _skewed()
    for metric in ("tpr", "fpr"):
        m = learning_of("m", "k=3", pred, labels, codes, ["a", "b"], 0.95, metric)
        assert m.judged_by == "balanced accuracy" and m.chance == 0.5
    always_one = np.ones_like(labels)  # TPR 1, yet it learned nothing: every constant predictor scores 0.5
    m = learning_of("m", "k=3", always_one, labels, codes, ["a", "b"], 0.95, "tpr")
    assert m.score == 0.5 and m.at_chance


@pytest.mark.slow
def test_a_multiclass_balanced_interval_covers_at_its_level():
    """The normal interval of mean per-class recall, by simulation: coverage within 3 binomial SE of 95%."""
    rng = np.random.default_rng(4)
    recall, n, hits, runs = np.array([0.8, 0.6, 0.7]), 300, 0, 2000
    labels = np.repeat([0, 1, 2], n // 3)
    for _ in range(runs):
        ok = rng.random(n) < recall[labels]
        pred = np.where(ok, labels, (labels + 1) % 3)
        m = learning_of("m", "k", pred, labels, np.zeros(n, np.intp), ["all"], 0.95, "accuracy")
        b = learning_of("m", "k", pred, labels, np.zeros(n, np.intp), ["all"], 0.95, "balanced_accuracy")
        assert m.chance == pytest.approx(1 / 3) and b.chance == pytest.approx(1 / 3)
        hits += b.ci[0] <= recall.mean() <= b.ci[1]
    assert abs(hits / runs - 0.95) <= 3 * np.sqrt(0.95 * 0.05 / runs)


def test_a_subgroup_whose_label_never_varies_is_left_out_of_the_subgroup_check():
    pred, labels, codes = _skewed()
    labels = labels.copy()
    labels[codes == 1] = 0  # subgroup b holds one class
    m = learning_of("m", "k=3", np.where(codes == 1, 0, pred), labels, codes, ["a", "b"], 0.95, "accuracy")
    assert set(m.by_group) == {"a"} and "b" not in m.weak_groups()


def _data(labels_by_group: dict, n: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels, groups = [], []
    for g, pool in labels_by_group.items():
        labels += list(rng.choice(pool, n))
        groups += [g] * n
    images = torch.rand(len(labels), 3, 16, 16, generator=torch.Generator().manual_seed(seed))
    if max(labels) > 1:  # from_tensors takes 0/1 labels; a multi-class set is built directly
        return SubgroupDataset(images, torch.tensor(labels, dtype=torch.int64), {"g": [str(g) for g in groups]})
    return from_tensors(images, labels, {"g": groups})


def _refused_before_training(error, match, **settings):
    trained = []
    with pytest.raises(error, match=match):
        run_audit(tiny_cnn, "0", [3, 5], seeds=2, attributes="g", progress=None, min_group_size=1,
                  trainer=lambda model, data, seed: trained.append(seed) or model, **settings)
    assert trained == []


def test_a_tpr_audit_with_a_subgroup_without_positives_is_refused_before_training():
    data, test = _data({"x": [0, 1], "y": [0]}), _data({"x": [0, 1], "y": [0]}, seed=1)
    _refused_before_training(EmptySubgroupError, r"metric='tpr' is undefined for test subgroup 'g=y': it has no "
                                                 r"positives", data=data, test_data=test, metric="tpr")


def test_a_binary_metric_on_three_classes_is_refused_before_training():
    data, test = _data({"x": [0, 1, 2], "y": [0, 1, 2]}), _data({"x": [0, 1, 2], "y": [0, 1, 2]}, seed=1)
    _refused_before_training(InputDataError, r"metric='tpr' needs 0/1 labels.*classes \[0, 1, 2\]",
                             data=data, test_data=test, metric="tpr")


def test_an_attribute_that_determines_the_label_is_named_before_training():
    data, test = _data({"x": [0], "y": [1]}), _data({"x": [0], "y": [1]}, seed=1)
    trained = []
    with pytest.warns(InputDataWarning, match=r"attribute\(s\) determine the label.*'g=x' \(always 0\), 'g=y' "
                                              r"\(always 1\)"):
        try:
            run_audit(tiny_cnn, "0", [3, 5], seeds=2, attributes="g", progress=None, min_group_size=1, data=data,
                      test_data=test, trainer=lambda model, d, seed: trained.append(seed) or model)
        except (ModelsDidNotLearnError, KernelAuditWarning):
            pass  # untrained models: what matters is the warning, given before this
    one, other = _data({"x": [0, 1], "y": [1]}), _data({"x": [0, 1], "y": [1]}, seed=1)
    with pytest.warns(InputDataWarning, match=r"the label never varies in test subgroup\(s\) 'g=y' \(always 1\)"):
        try:
            run_audit(tiny_cnn, "0", [3, 5], seeds=2, attributes="g", progress=None, min_group_size=1, data=one,
                      test_data=other, trainer=lambda model, d, seed: model)
        except ModelsDidNotLearnError:
            pass
