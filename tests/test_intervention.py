import pytest
import timm
import torch
from torch import nn

from pytest_kernelbias import KernelIntervention
from pytest_kernelbias.errors import InterventionError, UnknownLayerError
from pytest_kernelbias.intervention import intervene
from pytest_kernelbias.intervention._surgery import AsymmetricPad


def _net(stride=1, dilation=1, groups=1, padding=1, bias=True, k=3):
    return nn.Sequential(nn.Conv2d(4, 8, k, stride=stride, dilation=dilation, groups=groups, padding=padding,
                                   bias=bias),
                         nn.ReLU())


@pytest.mark.parametrize("new_k", [1, 2, 3, 4, 5, 8, 9])
@pytest.mark.parametrize("stride,dilation,groups,padding", [(1, 1, 1, 1), (2, 1, 1, 1), (1, 2, 2, 2), (2, 1, 4, 1),
                                                            (3, 1, 1, 2)])
@pytest.mark.parametrize("size", [15, 16, 32])
def test_intervene_keeps_output_shape_and_conv_hyperparameters(new_k, stride, dilation, groups, padding, size):
    model = _net(stride, dilation, groups, padding)
    x = torch.randn(2, 4, size, size)
    new = intervene(model, "0", new_k, seed=0)
    conv = new[0]
    assert conv.kernel_size == (new_k, new_k)
    assert (conv.in_channels, conv.out_channels, conv.stride, conv.dilation, conv.groups) == \
        (4, 8, (stride, stride), (dilation, dilation), groups)
    assert conv.bias is not None
    assert new(x).shape == model(x).shape


def test_even_kernel_uses_asymmetric_padding_extra_on_right_and_bottom():
    conv = intervene(_net(), "0", 4, seed=0)[0]
    assert type(conv) is nn.Conv2d  # the class is kept; a pre-hook pads
    (hook,) = [h for h in conv._forward_pre_hooks.values() if isinstance(h, AsymmetricPad)]
    assert hook.pad == (1, 2, 1, 2) and conv.padding == (0, 0)


def test_intervene_leaves_input_model_untouched():
    model = _net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    intervene(model, "0", 7, seed=0)
    assert model[0].kernel_size == (3, 3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_no_bias_stays_no_bias():
    assert intervene(_net(bias=False), "0", 5)[0].bias is None


@pytest.mark.parametrize("new_k", [3, 4, 5, 7])
def test_timm_resnet18_stem(new_k):
    model = timm.create_model("resnet18", pretrained=False, num_classes=2).eval()
    new = intervene(model, "conv1", new_k, seed=0).eval()
    assert new.conv1.kernel_size == (new_k, new_k) and new.conv1.stride == (2, 2)
    for size in (32, 45):
        x = torch.randn(1, 3, size, size)
        assert new.conv1(x).shape == model.conv1(x).shape
        assert new(x).shape == (1, 2)


def test_unknown_layer_lists_the_conv_layers():
    with pytest.raises(UnknownLayerError) as info:
        intervene(timm.create_model("resnet18", pretrained=False), "conv_1", 5)
    msg = str(info.value)
    assert "'conv_1'" in msg and "conv1 (7x7)" in msg and "layer1.0.conv1 (3x3)" in msg and "Did you mean" in msg


def test_non_conv_layer_is_named_as_such():
    with pytest.raises(UnknownLayerError, match="is a ReLU, not a convolution"):
        intervene(_net(), "1", 5)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_kernel_size_is_a_clear_error(bad):
    with pytest.raises(InterventionError, match="kernel_size|kernel size"):
        intervene(_net(), "0", bad)


def test_smaller_kernel_in_a_valid_conv_crops_the_input_and_keeps_the_shape():
    model = _net(padding=0, k=5)
    new = intervene(model, "0", 3)
    (hook,) = new[0]._forward_pre_hooks.values()
    assert hook.pad == (-1, -1, -1, -1)
    x = torch.randn(1, 4, 13, 13)
    assert new(x).shape == model(x).shape


def test_crop_with_reflect_padding_is_refused_with_the_fix():
    model = nn.Sequential(nn.Conv2d(4, 8, 5, padding=1, padding_mode="reflect"))
    with pytest.raises(InterventionError, match="padding_mode='reflect' cannot do"):
        intervene(model, "0", 1)


def test_levels_of_one_seed_share_every_non_intervened_weight(cnn_factory):
    ki = KernelIntervention(cnn_factory, "0", [3, 7])
    a, b = ki.build(3, seed=4), ki.build(7, seed=4)
    other = {k: v for k, v in a.state_dict().items() if not k.startswith("0.")}
    assert other and all(torch.equal(v, b.state_dict()[k]) for k, v in other.items())
    # The replaced layer is drawn from the seed too: same level, same seed, same weights.
    assert torch.equal(ki.build(7, seed=4)[0].weight, b[0].weight)
    assert not torch.equal(ki.build(7, seed=5)[0].weight, b[0].weight)


def test_unpaired_build_does_not_share_initialization(cnn_factory):
    ki = KernelIntervention(cnn_factory, "0", [3, 7])
    a, b = ki.build(3, seed=4, paired=False), ki.build(7, seed=4, paired=False)
    assert not torch.equal(a[3].weight, b[3].weight)


def test_intervention_checks_layer_and_levels_before_training(cnn_factory):
    with pytest.raises(UnknownLayerError):
        KernelIntervention(cnn_factory, "conv9", [3, 5])
    with pytest.raises(InterventionError, match="at least two levels"):
        KernelIntervention(cnn_factory, "0", [3])


def test_check_init_names_the_bad_value_and_the_valid_modes(cnn_factory):
    from pytest_kernelbias.intervention import check_init

    assert check_init("transfer") == "transfer"
    message = r"init must be one of \('fresh', 'transfer', 'interpolate'\), got 'Fresh'"
    for call in (lambda: check_init("Fresh"), lambda: intervene(_net(), "0", 5, init="Fresh"),
                 lambda: KernelIntervention(cnn_factory, "0", [3, 5], init="Fresh")):
        with pytest.raises(InterventionError, match=message):
            call()
