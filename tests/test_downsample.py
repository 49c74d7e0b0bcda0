"""AntiAlias and Pooling levels: the same outputs as the layers built by hand, shapes kept for every geometry,
paired weights, and a clear error for a layer a level cannot change."""

import pytest
import timm
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from timm.layers import BlurPool2d
from torch import nn

from pytest_kernelbias.errors import InterventionError
from pytest_kernelbias.intervention import (
    AntiAlias,
    BlurPool,
    KernelIntervention,
    KernelSize,
    Pooling,
    binomial_filter,
    intervene,
)
from pytest_kernelbias.models import SynthFacesCNN


class Net(nn.Module):
    def __init__(self, pool: nn.Module | None = None, stride: int = 2, padding: int = 1, kernel: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.pool = pool if pool is not None else nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 5, kernel, stride=stride, padding=padding)
        self.head = nn.Linear(5, 2)

    def forward(self, x):
        return self.head(self.conv2(self.pool(self.conv1(x))).mean((2, 3)))


@pytest.mark.parametrize("filter_size", [3, 5])
@pytest.mark.parametrize("channels", [4, None])
def test_the_blur_is_timms_blurpool_at_stride_2(filter_size, channels):
    x = torch.rand(2, 4, 17, 16)
    timm_blur = BlurPool2d(channels, filt_size=filter_size, stride=2)
    assert torch.allclose(BlurPool(filter_size, 2)(x), timm_blur(x), atol=1e-7, rtol=0)


def test_the_binomial_filter_is_the_outer_product_of_pascals_row():
    assert torch.equal(binomial_filter(3) * 16, torch.tensor([[1., 2, 1], [2, 4, 2], [1, 2, 1]]))
    assert binomial_filter(5).sum().item() == pytest.approx(1.0, abs=1e-7)


def test_anti_aliasing_a_strided_conv_is_the_conv_at_stride_1_then_a_blur_pool():
    torch.manual_seed(0)
    model, x = Net(), torch.rand(3, 3, 32, 32)
    changed = intervene(model, "conv2", AntiAlias(3), seed=0, example_input=x)
    by_hand = nn.Conv2d(6, 5, 3, stride=1, padding=1)
    by_hand.load_state_dict(model.conv2.state_dict())  # weights as built: anti-aliasing draws none
    features = model.pool(model.conv1(x))
    expected = BlurPool2d(5, filt_size=3, stride=2)(by_hand(features))
    assert torch.allclose(changed.conv2(features), expected, atol=1e-6, rtol=0)
    assert torch.equal(changed.conv2.weight, model.conv2.weight)


def test_anti_aliasing_a_max_pool_is_the_max_blur_pool():
    torch.manual_seed(0)
    model, x = Net(pool=nn.MaxPool2d(3, 2, 1)), torch.rand(2, 6, 16, 16)
    changed = intervene(model, "pool", AntiAlias(5), seed=0)
    expected = BlurPool2d(6, filt_size=5, stride=2)(nn.MaxPool2d(3, 1, 1)(x))
    assert torch.allclose(changed.pool(x), expected, atol=1e-6, rtol=0)


def test_pooling_kinds_are_the_pools_built_by_hand():
    model, x = Net(pool=nn.MaxPool2d(3, 2, 1)), torch.rand(2, 6, 16, 16)
    avg = intervene(model, "pool", Pooling("avg"), seed=0).pool
    assert torch.equal(avg(x), nn.AvgPool2d(3, 2, 1, count_include_pad=False)(x))
    blur = intervene(model, "pool", Pooling("blur"), seed=0).pool
    weight = binomial_filter(3)[None, None].expand(6, 1, 3, 3)
    assert torch.allclose(blur(x), F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), weight, stride=2, groups=6),
                          atol=1e-6, rtol=0)
    back = intervene(Net(pool=nn.AvgPool2d(2)), "pool", Pooling("max"), seed=0).pool
    assert torch.equal(back(x), nn.MaxPool2d(2)(x))


@settings(max_examples=80, deadline=None)
@given(size=st.integers(5, 23), kernel=st.integers(1, 5), stride=st.integers(2, 4), padding=st.integers(0, 2),
       filter_size=st.sampled_from([3, 5]), ceil=st.booleans(), dilation=st.integers(1, 2))
def test_every_geometry_keeps_its_output_shape(size, kernel, stride, padding, filter_size, ceil, dilation):
    padding = min(padding, kernel // 2)  # torch refuses pool padding over half the kernel
    x = torch.rand(1, 6, size, size)
    layers = [nn.Conv2d(6, 4, kernel, stride=stride, padding=padding, dilation=dilation),
              nn.MaxPool2d(kernel, stride, padding, dilation=dilation, ceil_mode=ceil)]
    layers += [nn.AvgPool2d(kernel, stride, padding, ceil_mode=ceil)] if dilation == 1 else []
    for layer in layers:
        if size + 2 * padding < dilation * (kernel - 1) + 1:
            continue
        holder = nn.Sequential(layer)
        changed = intervene(holder, "0", AntiAlias(filter_size), seed=0)
        assert changed(x).shape == holder(x).shape
        if not isinstance(layer, nn.Conv2d):
            for kind in ("max", "avg", "blur") if dilation == 1 else ("max",):
                assert intervene(holder, "0", Pooling(kind), seed=0)(x).shape == holder(x).shape


def test_levels_are_paired_every_unchanged_weight_equal_and_anti_aliasing_draws_none():
    levels = [KernelSize(3), KernelSize(3) & AntiAlias(3), KernelSize(5), KernelSize(5) & AntiAlias(3)]
    intervention = KernelIntervention(Net, ["conv2"], levels, input_size=(1, 3, 32, 32))
    models = {str(level): intervention.build(level, seed=4) for level in levels}
    states = {name: model.state_dict() for name, model in models.items()}
    reference = states["kernel_size=3"]
    for name, state in states.items():
        for key, value in reference.items():
            if not key.startswith("conv2."):
                assert torch.equal(state[key], value), (name, key)
    conv = {name: models[name].conv2.weight for name in models}
    assert torch.equal(conv["kernel_size=3, anti_alias=3"], conv["kernel_size=3"])  # the kernel as built
    assert torch.equal(conv["kernel_size=5, anti_alias=3"], conv["kernel_size=5"])  # the same fresh 5x5 draw
    assert not torch.equal(intervention.build(levels[3], seed=5).conv2.weight, conv["kernel_size=5"])


def test_a_tied_pool_is_changed_at_every_use():
    model = SynthFacesCNN(width=4)
    changed = intervene(model, "pool", AntiAlias(3), seed=0, example_input=torch.rand(1, 3, 32, 32))
    assert changed(torch.rand(2, 3, 32, 32)).shape == (2, 2)
    assert type(changed.pool).__name__ == "AntiAliased"


@pytest.mark.parametrize("layer, level, says", [
    ("conv1", AntiAlias(3), "has stride 1: nothing is subsampled"),
    ("conv1", Pooling("avg"), "changes a pooling layer, and this is a Conv2d"),
    ("pool", KernelSize(5), "sets a conv hyperparameter, and this layer is a MaxPool2d"),
])
def test_a_layer_a_level_cannot_change_is_refused_with_the_layers_to_choose(layer, level, says):
    with pytest.raises(InterventionError, match=says):
        KernelIntervention(Net, [layer], [level, KernelSize(7) if layer == "pool" else AntiAlias(5)],
                           input_size=(1, 3, 32, 32))


@pytest.mark.parametrize("make, says", [(lambda: AntiAlias(4), "odd size of at least 3"),
                                        (lambda: AntiAlias(1), "odd size of at least 3"),
                                        (lambda: Pooling("median"), "one of")])
def test_a_setting_no_blur_or_pool_can_take_is_refused(make, says):
    with pytest.raises(InterventionError, match=says):
        make()


def test_a_ceil_mode_pool_keeps_its_extra_row_and_column_and_the_rest_is_the_max_blur_pool():
    pool, x = nn.MaxPool2d(3, 2, ceil_mode=True), torch.rand(2, 6, 16, 16)  # 8 x 8 out; floor mode gives 7 x 7
    changed = intervene(Net(pool=pool), "pool", AntiAlias(3), seed=0).pool
    assert changed(x).shape == pool(x).shape == (2, 6, 8, 8)
    expected = BlurPool2d(6, filt_size=3, stride=2)(nn.MaxPool2d(3, 1)(x))  # 7 x 7: every full window
    assert torch.allclose(changed(x)[..., :7, :7], expected, atol=1e-6, rtol=0)


def test_a_dilated_max_pool_cannot_become_an_average_of_the_same_shape():
    with pytest.raises(InterventionError, match="dilated"):
        intervene(Net(pool=nn.MaxPool2d(2, dilation=2)), "pool", Pooling("avg"), seed=0)


def test_resnet18s_strided_convs_and_max_pool_take_anti_aliasing_with_shapes_kept():
    model = timm.create_model("resnet18", pretrained=False, num_classes=2).eval()
    strided = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.stride != (1, 1)]
    x = torch.rand(1, 3, 64, 64)
    for layer in strided + ["maxpool"]:
        changed = intervene(model, layer, AntiAlias(3), seed=0, example_input=x)
        assert changed(x).shape == (1, 2), layer
    assert intervene(model, "maxpool", Pooling("blur"), seed=0, example_input=x)(x).shape == (1, 2)


def test_labels_and_the_intervention_table_say_what_changed():
    intervention = KernelIntervention(Net, ["pool"], [Pooling("max"), AntiAlias(3), Pooling("blur")],
                                      input_size=(1, 3, 32, 32))
    assert [str(level) for level in intervention.levels] == ["pooling=max", "anti_alias=3", "pooling=blur"]
    text = str(intervention.table)
    assert "max pool k=2 s=1 pad=0, then blur 3x3 s=2" in text and "blur pool k=2 s=2" in text


def test_a_layer_map_of_anti_aliasing_has_one_arm_per_downsampling_against_the_architecture_as_built():
    from pytest_kernelbias.intervention import each
    from pytest_kernelbias.spec import AuditSpec

    spec = AuditSpec.from_kwargs("resnet18", each(["conv1", "maxpool", "layer2.0.conv1"]), [AntiAlias(3)])
    assert spec.target.levels == (AntiAlias(3),)  # one level: the map's reference is the architecture as built
    intervention = KernelIntervention("resnet18", spec.target.layer, list(spec.target.levels),
                                      input_size=(1, 3, 32, 32))
    assert [str(level) for level in intervention.levels] == [
        "as built", "conv1: anti_alias=3", "maxpool: anti_alias=3", "layer2.0.conv1: anti_alias=3"]
    with pytest.raises(InterventionError, match=r"the strided ones of this selection are \['conv1', 'layer2.0.conv1'"):
        KernelIntervention("resnet18", each("all"), [AntiAlias(3)], input_size=(1, 3, 32, 32))
    with pytest.raises(Exception, match="give two or more"):
        AuditSpec.from_kwargs("resnet18", "conv1", [AntiAlias(3)])  # outside a map, one level compares nothing
