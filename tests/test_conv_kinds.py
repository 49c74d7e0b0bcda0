"""Interventions on timm's conv classes, selectors, init modes and the description table."""

import pytest
import timm
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from timm.layers import CondConv2d, Conv2dSame, MixedConv2d, ScaledStdConv2d, StdConv2d, StdConv2dSame
from torch import nn

from pytest_kernelbias import Dilation, KernelSize, Select, Stride
from pytest_kernelbias.errors import InterventionError, UnknownLayerError
from pytest_kernelbias.intervention import describe_intervention, find_stem, intervene
from pytest_kernelbias.intervention._kinds import has_dynamic_same_pad, is_cond_conv, is_conv
from pytest_kernelbias.intervention._select import resolve_layers


def _wrap(conv):
    return nn.Sequential(conv, nn.ReLU())


@pytest.mark.parametrize("make", [
    lambda: Conv2dSame(3, 8, 3, stride=2),
    lambda: StdConv2d(3, 8, 3, stride=2),
    lambda: StdConv2dSame(3, 8, 3, stride=2),
    lambda: ScaledStdConv2d(3, 8, 3, stride=2),
    lambda: nn.Conv2d(3, 8, 3, stride=2, padding="valid"),
    lambda: nn.Conv2d(3, 8, 3, padding="same"),
], ids=["Conv2dSame", "StdConv2d", "StdConv2dSame", "ScaledStdConv2d", "valid", "same"])
@pytest.mark.parametrize("k", [1, 2, 5, 6])
@pytest.mark.parametrize("size", [17, 32])
def test_timm_conv_classes_keep_class_and_output_shape(make, k, size):
    model = _wrap(make())
    new = intervene(model, "0", k, seed=0)
    assert type(new[0]) is type(model[0]) and new[0].kernel_size == (k, k)
    x = torch.randn(2, 3, size, size)
    assert new(x).shape == model(x).shape


@pytest.mark.parametrize("make,conv,cond,dynamic", [
    (lambda: nn.Conv2d(3, 8, 3), True, False, False),
    (lambda: Conv2dSame(3, 8, 3), True, False, True),
    (lambda: StdConv2dSame(3, 8, 3, stride=2), True, False, True),  # stride 2: SAME cannot be static
    (lambda: StdConv2dSame(3, 8, 3), True, False, False),  # static SAME is plain numeric padding
    (lambda: CondConv2d(3, 8, 3, padding="same", stride=2), True, True, True),
    (lambda: CondConv2d(3, 8, 3, padding=""), True, True, False),
    (lambda: MixedConv2d(6, 6, [3, 5]), False, False, False),  # a wrapper; the convs inside it count
    (lambda: nn.BatchNorm2d(3), False, False, False),
], ids=["Conv2d", "Conv2dSame", "StdConv2dSame-dynamic", "StdConv2dSame-static", "CondConv2d-dynamic",
        "CondConv2d", "MixedConv2d", "BatchNorm2d"])
def test_conv_kinds(make, conv, cond, dynamic):
    m = make()
    assert (is_conv(m), is_cond_conv(m), has_dynamic_same_pad(m)) == (conv, cond, dynamic)


@pytest.mark.parametrize("k", [2, 4, 6])
@pytest.mark.parametrize("size", [9, 16])
def test_odd_total_padding_splits_like_timm_pad_same(k, size):
    # At stride 1 the extra pixel goes right/bottom exactly as timm's dynamic TF-style SAME padding puts it.
    new = intervene(_wrap(nn.Conv2d(3, 8, 3, padding=1)), "0", k, seed=0)[0]
    same = Conv2dSame(3, 8, k)
    same.load_state_dict(new.state_dict())
    x = torch.randn(2, 3, size, size)
    torch.testing.assert_close(new(x), same(x))


def test_scaled_std_conv_rescales_for_the_new_fan_in():
    conv = ScaledStdConv2d(3, 8, 3)
    new = intervene(_wrap(conv), "0", 5)[0]
    assert new.scale == pytest.approx(conv.scale * (27 / 75) ** 0.5)


def test_cond_conv_gets_new_expert_kernels():
    conv = CondConv2d(3, 8, 3, stride=1, padding="", num_experts=4)
    new = intervene(_wrap(conv), "0", 5)[0]
    assert new.weight.shape == (4, 8 * 3 * 25) and new.weight_shape == (8, 3, 5, 5)
    x, route = torch.randn(2, 3, 16, 16), torch.softmax(torch.randn(2, 4), 1)
    assert new(x, route).shape == conv(x, route).shape


def test_naming_a_mixed_conv_of_one_kernel_selects_every_conv_inside_it():
    model = nn.Sequential(MixedConv2d(6, 6, [3, 3], depthwise=True))
    assert resolve_layers(model, "0") == ["0.0", "0.1"]
    new = intervene(model, "0", 5)
    x = torch.randn(1, 6, 15, 15)
    assert new(x).shape == model(x).shape and all(c.kernel_size == (5, 5) for c in new[0].values())


def test_naming_a_mixed_conv_of_several_kernels_is_refused_with_its_splits_and_a_split_can_be_named():
    from pytest_kernelbias.errors import UnknownLayerError
    model = nn.Sequential(MixedConv2d(6, 6, [3, 5, 7], depthwise=True))
    with pytest.raises(UnknownLayerError, match=r"'0' is a MixedConv2d whose splits have different kernels: '0\.0' "
                                                 r"\(3x3\), '0\.1' \(5x5\), '0\.2' \(7x7\); one level for all"):
        resolve_layers(model, "0")
    assert resolve_layers(model, "0.2") == ["0.2"]
    new = intervene(model, "0.2", 3)  # the 7x7 split becomes 3x3, the others keep the mix
    assert [c.kernel_size for c in new[0].values()] == [(3, 3), (5, 5), (3, 3)]
    x = torch.randn(1, 6, 15, 15)
    assert new(x).shape == model(x).shape
    assert resolve_layers(model, ["0.0", "0.1", "0.2"]) == ["0.0", "0.1", "0.2"]  # alike, on purpose


def test_depthwise_and_grouped_convs_keep_groups():
    model = _wrap(nn.Conv2d(8, 8, 3, padding=1, groups=8))
    new = intervene(model, "0", 6)
    assert new[0].groups == 8 and new[0].weight.shape == (8, 1, 6, 6)


def test_selectors_glob_list_predicate_all_with_kernel_filter():
    model = timm.create_model("resnet18", pretrained=False)
    assert resolve_layers(model, "layer1.*.conv1") == ["layer1.0.conv1", "layer1.1.conv1"]
    assert resolve_layers(model, ["conv1", "layer4.1.conv2"]) == ["conv1", "layer4.1.conv2"]
    assert resolve_layers(model, lambda n, m: m.stride == (2, 2) and m.kernel_size == (1, 1)) == \
        ["layer2.0.downsample.0", "layer3.0.downsample.0", "layer4.0.downsample.0"]
    threes = resolve_layers(model, Select("all", kernel_size=3))
    assert len(threes) == 16 and "conv1" not in threes
    assert resolve_layers(model, "stem") == ["conv1"]


def test_stem_is_the_first_conv_executed_not_the_first_registered():
    class LateStem(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Conv2d(8, 2, 1)  # registered first, runs last
            self.stem = nn.Conv2d(3, 8, 7, stride=2, padding=3)

        def forward(self, x):
            return self.head(self.stem(x))

    assert find_stem(LateStem()) == "stem"


def test_selector_matching_only_non_conv_modules_says_so():
    model = timm.create_model("resnet18", pretrained=False)
    with pytest.raises(UnknownLayerError, match=r"matches only non-conv modules \(layer1.0.bn1"):
        resolve_layers(model, "layer1.*.bn1")
    with pytest.raises(UnknownLayerError, match="no selected conv has a 5x5 kernel"):
        resolve_layers(model, Select("all", kernel_size=5))


def test_dilation_keeps_shape_and_stride_changes_it_as_documented():
    model = _wrap(nn.Conv2d(3, 8, 3, padding=1))
    x = torch.randn(1, 3, 16, 16)
    dilated = intervene(model, "0", Dilation(2), example_input=x)
    assert dilated[0].dilation == (2, 2) and dilated(x).shape == model(x).shape
    both = intervene(model, "0", KernelSize(5) & Dilation(2), example_input=x)
    assert both[0].kernel_size == (5, 5) and both(x).shape == model(x).shape
    strided = intervene(model, "0", Stride(2), example_input=x)
    assert strided(x).shape == (1, 8, 8, 8)


def test_combining_conflicting_interventions_is_an_error():
    with pytest.raises(InterventionError, match="both set kernel_size"):
        KernelSize(3) & KernelSize(5)


def test_kernel_larger_than_the_padded_input_is_a_clear_error():
    # Zero padding always grows with the kernel; reflect padding cannot exceed the input itself.
    model = _wrap(nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect"))
    with pytest.raises(InterventionError, match="kernel larger than the padded input"):
        intervene(model, "0", Dilation(20), example_input=torch.randn(1, 3, 8, 8))


def test_transfer_centre_crops_and_zero_pads():
    conv = nn.Conv2d(1, 1, 5, padding=2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.arange(25.0).view(1, 1, 5, 5))
    small = intervene(_wrap(conv), "0", 3, init="transfer")[0].weight[0, 0]
    torch.testing.assert_close(small, torch.arange(25.0).view(5, 5)[1:4, 1:4])
    big = intervene(_wrap(conv), "0", 7, init="transfer")[0].weight[0, 0]
    assert big[1:6, 1:6].equal(conv.weight[0, 0].detach()) and big[0].abs().sum() == 0


@pytest.mark.parametrize("k", [1, 2, 4, 7, 9])
def test_interpolate_keeps_the_response_to_a_constant_input(k):
    model = _wrap(nn.Conv2d(3, 4, 5, padding=2))
    new = intervene(model, "0", k, init="interpolate")
    torch.testing.assert_close(new[0].weight.sum(dim=(-2, -1)), model[0].weight.sum(dim=(-2, -1)))
    torch.testing.assert_close(new[0].bias, model[0].bias)


def test_describe_intervention_table_flags_placebo_and_unseen_pixels():
    model = timm.create_model("resnet18", pretrained=False)
    table = describe_intervention(model, "conv1", [7, 3, 1])
    rows = {r["level"]: r for r in table}
    assert "unchanged level" in "; ".join(rows["kernel_size=7"]["notes"])
    assert rows["kernel_size=3"]["params_change"] == 64 * 3 * (9 - 49)
    assert "never seen" in "; ".join(rows["kernel_size=1"]["notes"])
    text = str(table)
    assert text.splitlines()[0].split() == ["level", "layer", "class", "before", "after", "params", "notes"]
    assert "k=7x7 s=2 d=1 g=1 pad=(3, 3)" in text


def test_smaller_than_stride_kernel_warns_that_pixels_are_never_seen():
    model = _wrap(nn.Conv2d(3, 8, 4, stride=4))
    with pytest.warns(UserWarning, match="some input pixels are never seen"):
        intervene(model, "0", 3)


conv_configs = st.fixed_dictionaries({
    "groups": st.sampled_from([1, 2, 4]),
    "k": st.integers(1, 7), "new_k": st.integers(1, 8),
    "stride": st.integers(1, 3), "dilation": st.integers(1, 3),
    "padding": st.integers(0, 4),
    "mode": st.sampled_from(["zeros", "reflect", "replicate", "circular"]),
    "size": st.integers(9, 24),
})


@settings(max_examples=60, deadline=None)
@given(cfg=conv_configs)
def test_property_shape_kept_and_nothing_outside_the_layer_changes(cfg):
    conv = nn.Conv2d(4, 8, cfg["k"], stride=cfg["stride"], dilation=cfg["dilation"], padding=cfg["padding"],
                     groups=cfg["groups"], padding_mode=cfg["mode"])
    model = nn.Sequential(conv, nn.BatchNorm2d(8), nn.Conv2d(8, 4, 3, padding=1))
    x = torch.randn(2, 4, cfg["size"], cfg["size"])
    try:
        expected = model[0](x).shape
    except RuntimeError:
        return  # the original layer rejects this input size; nothing to preserve
    try:
        new = intervene(model, "0", cfg["new_k"], seed=1)
    except InterventionError as exc:
        # The only refusal: cropping needed but the padding mode cannot crop.
        assert cfg["mode"] != "zeros" and "cannot do" in str(exc)
        return
    try:
        got = new[0](x).shape
    except RuntimeError:
        # Zero padding keeps (padded input - kernel extent) fixed, so it cannot fail where the original
        # worked; only reflect/replicate/circular padding wider than the input itself can.
        assert cfg["mode"] != "zeros"
        return
    assert got == expected
    old_state, new_state = model.state_dict(), new.state_dict()
    for key, value in old_state.items():
        if not key.startswith("0."):
            assert torch.equal(value, new_state[key]), key
    assert model[0].kernel_size == (cfg["k"], cfg["k"])  # the input model is untouched
