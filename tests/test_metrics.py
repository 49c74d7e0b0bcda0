import numpy as np
import pytest
import torch
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from pytest_kernelbias.errors import AuditConfigError, EmptySubgroupError
from pytest_kernelbias.evaluation._metrics import (
    METRICS,
    between_group_difference,
    check_defined,
    group_codes,
    group_metric,
    to_reference_difference,
)


def fairlearn_metric(name: str):
    """The fairlearn / sklearn function computing the same metric as ours."""
    import fairlearn.metrics as fm
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    return {
        "accuracy": accuracy_score,
        "error": lambda y, p: 1.0 - accuracy_score(y, p),
        "balanced_accuracy": balanced_accuracy_score,
        "tpr": fm.true_positive_rate,
        "fpr": fm.false_positive_rate,
    }[name]


def metric_frame(name: str, pred, labels, keys):
    import fairlearn.metrics as fm

    return fm.MetricFrame(metrics=fairlearn_metric(name), y_true=labels, y_pred=pred, sensitive_features=keys)


@st.composite
def binary_audit(draw):
    """Group keys, labels and predictions where every group has both classes (all metrics defined)."""
    n_groups = draw(st.integers(1, 8))
    n_extra = draw(st.integers(0, 60))
    extra = draw(st.lists(st.tuples(st.integers(0, n_groups - 1), st.integers(0, 1), st.integers(0, 1)),
                          min_size=n_extra, max_size=n_extra))
    both = [(g, y, draw(st.integers(0, 1))) for g in range(n_groups) for y in (0, 1)]
    g, y, p = map(np.array, zip(*(both + extra)))
    return np.array([f"group{k}" for k in g]), y, p


def random_audit(n: int, n_groups: int, seed_: int = 0):
    rng = np.random.default_rng(seed_)
    keys = np.array([f"g{k}" for k in rng.integers(0, n_groups, n)])
    return keys, rng.integers(0, 2, n), rng.integers(0, 2, n)


@seed(20240601)
@settings(max_examples=40, deadline=None)
@given(data=binary_audit(), metric=st.sampled_from(METRICS))
def test_per_group_metric_equals_fairlearn_metricframe(data, metric):
    pytest.importorskip("fairlearn")
    keys, labels, pred = data
    codes, names = group_codes(keys)
    ours = group_metric(pred, labels, codes, len(names), metric)
    ref = metric_frame(metric, pred, labels, keys).by_group
    assert ours == pytest.approx([ref[n] for n in names], abs=1e-12)


@seed(20240602)
@settings(max_examples=40, deadline=None)
@given(data=binary_audit(), metric=st.sampled_from(METRICS))
def test_between_group_difference_equals_fairlearn(data, metric):
    pytest.importorskip("fairlearn")
    keys, labels, pred = data
    codes, names = group_codes(keys)
    ours = between_group_difference(group_metric(pred, labels, codes, len(names), metric))
    ref = metric_frame(metric, pred, labels, keys).difference(method="between_groups")
    assert ours == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("metric", METRICS)
def test_eight_group_example_equals_fairlearn(metric):
    pytest.importorskip("fairlearn")
    keys, labels, pred = random_audit(4000, 8, seed_=7)
    codes, names = group_codes(keys)
    ours = group_metric(pred, labels, codes, 8, metric)
    mf = metric_frame(metric, pred, labels, keys)
    assert names == [f"g{k}" for k in range(8)]
    assert ours == pytest.approx(mf.by_group.loc[names].to_numpy(), abs=1e-12)
    assert between_group_difference(ours) == pytest.approx(mf.difference(method="between_groups"), abs=1e-12)


def test_group_codes_index_sorted_names():
    codes, names = group_codes(["b", "a", "c", "a"])
    assert names == ["a", "b", "c"]
    assert codes.tolist() == [1, 0, 2, 0]


@pytest.mark.parametrize("metric", METRICS)
def test_2d_pred_equals_row_by_row(metric):
    keys, labels, _ = random_audit(500, 5, seed_=1)
    codes, names = group_codes(keys)
    preds = np.random.default_rng(2).integers(0, 2, (4, 500))
    rows = [group_metric(p, labels, codes, 5, metric) for p in preds]
    np.testing.assert_array_equal(group_metric(preds, labels, codes, 5, metric), np.stack(rows))


@pytest.mark.parametrize("metric", METRICS)
def test_integer_weights_equal_repeated_items(metric):
    keys, labels, pred = random_audit(300, 6, seed_=3)
    codes, _ = group_codes(keys)
    counts = np.random.default_rng(4).integers(0, 4, 300)
    weighted = group_metric(pred, labels, codes, 6, metric, weights=counts)
    repeated = group_metric(np.repeat(pred, counts), np.repeat(labels, counts), np.repeat(codes, counts), 6, metric)
    np.testing.assert_allclose(weighted, repeated, rtol=1e-12)


def test_weight_rows_give_one_replicate_per_row():
    keys, labels, pred = random_audit(200, 3, seed_=5)
    codes, _ = group_codes(keys)
    w = np.random.default_rng(6).multinomial(200, np.full(200, 1 / 200), size=3)
    rows = [group_metric(pred, labels, codes, 3, "accuracy", weights=wi) for wi in w]
    np.testing.assert_allclose(group_metric(pred, labels, codes, 3, "accuracy", weights=w), np.stack(rows))


def test_torch_tensors_give_the_numpy_result():
    keys, labels, pred = random_audit(100, 4)
    codes, _ = group_codes(keys)
    ours = group_metric(torch.from_numpy(pred), torch.from_numpy(labels), torch.from_numpy(codes), 4, "tpr")
    np.testing.assert_array_equal(ours, group_metric(pred, labels, codes, 4, "tpr"))


def test_balanced_accuracy_of_one_class_group_is_that_class_recall():
    pred, labels, codes = np.array([1, 0, 0, 1, 0]), np.array([1, 1, 1, 0, 1]), np.array([0, 0, 0, 1, 1])
    assert group_metric(pred, labels, codes, 2, "balanced_accuracy")[0] == pytest.approx(1 / 3)


def test_empty_group_is_nan():
    values = group_metric([1, 0], [1, 1], [0, 2], 3, "accuracy")
    assert np.isnan(values[1]) and not np.isnan(values[[0, 2]]).any()


@pytest.mark.parametrize("metric, labels", [("tpr", [0, 0, 1]), ("fpr", [1, 1, 0])])
def test_group_without_needed_class_is_nan(metric, labels):
    assert np.isnan(group_metric([1, 0, 1], labels, [0, 0, 1], 2, metric)).tolist() == [True, False]


def test_zero_weight_group_is_nan():
    assert np.isnan(group_metric([1, 1], [1, 1], [0, 1], 2, weights=[0, 3])).tolist() == [True, False]


def test_check_defined_names_the_empty_group_and_the_fix():
    values = group_metric([[1, 0], [0, 0]], [1, 1], [0, 2], 3, "accuracy")
    with pytest.raises(EmptySubgroupError, match=r"accuracy is undefined for subgroup\(s\) 'b': no images.*Enlarge"):
        check_defined(values, ["a", "b", "c"], "accuracy")


def test_check_defined_says_tpr_needs_positives():
    with pytest.raises(EmptySubgroupError, match="'a'.*no images with label 1"):
        check_defined(np.array([np.nan, 0.5]), ["a", "b"], "tpr")


def test_check_defined_returns_values_when_all_defined():
    values = np.array([0.2, 0.9])
    assert check_defined(values, ["a", "b"], "accuracy") is values


def test_between_group_difference_propagates_nan():
    assert np.isnan(between_group_difference(np.array([0.2, np.nan, 0.9])))


def test_between_group_difference_of_rows_is_per_row():
    np.testing.assert_allclose(between_group_difference(np.array([[0.1, 0.5], [0.9, 0.3]])), [0.4, 0.6])


def test_to_reference_difference_subtracts_the_reference_group():
    diff = to_reference_difference(np.array([0.5, 0.75, 0.25]), ["a", "b", "c"], "b")
    np.testing.assert_allclose(diff, [-0.25, 0.0, -0.5])


def test_unknown_reference_lists_the_groups():
    with pytest.raises(AuditConfigError, match=r"'z' is not a subgroup; choose one of \['a', 'b'\]"):
        to_reference_difference(np.array([0.1, 0.2]), ["a", "b"], "z")


def test_unknown_metric_is_rejected():
    with pytest.raises(AuditConfigError, match="metric must be one of"):
        group_metric([1], [1], [0], 1, "precision")


def test_non_binary_labels_are_rejected_for_tpr():
    with pytest.raises(AuditConfigError, match="binary labels"):
        group_metric([1, 0], [2, 1], [0, 0], 1, "tpr")


def test_accuracy_accepts_more_than_two_classes():
    assert group_metric([2, 1, 0], [2, 0, 0], [0, 0, 0], 1).tolist() == [pytest.approx(2 / 3)]


def test_out_of_range_codes_are_rejected():
    with pytest.raises(AuditConfigError, match=r"group codes must lie in \[0, 2\)"):
        group_metric([1, 0], [1, 0], [0, 2], 2)


def test_negative_weights_are_rejected():
    with pytest.raises(AuditConfigError, match="weights must be >= 0"):
        group_metric([1, 0], [1, 0], [0, 1], 2, weights=[1, -1])
