"""Example audits on the embedded SynthFaces data. Run: pytest --kernel-audit example_audits

Each audit trains on 2,000 SynthFaces images (1,000 for resnet18) instead of the 4,000 of
data="planted"/"null", which halves the training (docs/performance.md): the null audit passes (on
8,000 test images, which cost only evaluation), the planted one catches its bias, the layer map finds that conv1 is the
layer whose kernel size moves the gap, resnet18 stops undecided for futility, which its strict=True turns into
the expected failure, and the factorial audit measures how much of conv1's kernel-size effect anti-aliasing the
max pool removes; the whole file runs in about 5 minutes cold on 2 CPU cores.
"""

import pytest

from pytest_kernelbias import AuditFailure, LowPass, SynthFacesCNN, TrainConfig, each
from pytest_kernelbias.audit import default_data
from pytest_kernelbias.intervention import AntiAlias, Factor, factorial


@pytest.mark.kernel_audit(threshold=0.05)
def test_null_synthfaces_has_no_kernel_bias(kernel_audit):
    # Subgroups are drawn from one distribution: the first conv's kernel size cannot change a gap.
    # The defaults: seeds="auto" and rule="evidence", so "pass" means the interval (seeds and test-set noise)
    # lies inside +-0.05. The per-seed effects scatter by about 0.005, so the first look of 3 seeds settles it,
    # given 8,000 test images: with 1,000 the test set's own noise (about +-0.05 at the first look's 99% level)
    # keeps it undecided whatever the seed count (measured 2026-12-02), and the warning says so.
    train_data, test_data = default_data("null", n_train=2000, n_test=8000)
    result = kernel_audit(SynthFacesCNN, layer="conv1", levels=[3, 9], data=train_data, test_data=test_data,
                          attributes="skin_tone", perturbation=LowPass(0.4))
    result.assert_below()


# raises=AuditFailure: only the audit's own verdict counts as the expected failure, never a crash or a
# refusal (e.g. models that did not learn).
@pytest.mark.xfail(strict=True, raises=AuditFailure,
                   reason="planted bias: the audit must catch it (CI of the effect excludes 0)")
@pytest.mark.kernel_audit(seeds=6, threshold=0.0, rule="lower")
def test_planted_synthfaces_kernel_bias_is_caught(kernel_audit):
    # Dark-skinned faces also carry label evidence in 3-px stripes; LowPass(0.4) erases them.
    # rule="lower" with threshold 0 fails exactly when the 95% CI excludes 0.
    train_data, test_data = default_data("planted", n_train=2000, n_test=1000)
    result = kernel_audit(SynthFacesCNN, layer="conv1", levels=[3, 9], data=train_data, test_data=test_data,
                          attributes="skin_tone", perturbation=LowPass(0.4))
    result.assert_below()


@pytest.mark.xfail(strict=True, raises=AuditFailure,
                   reason="3-4 seeds cannot settle resnet18's stem effect (per-seed sd about 0.09 against a 0.05 "
                          "threshold): the verdict is undecided, and strict=True makes undecided fail the test")
@pytest.mark.kernel_audit(max_seeds=4, threshold=0.05, strict=True)
def test_resnet18_stem_kernel(kernel_audit):
    # timm resnet18's stem is a 7x7 stride-2 conv; does shrinking it to 3x3 change the LowPass drop gap?
    # max_seeds=4 caps the audit at 8 resnet18 trainings on 2 cores. When even 4 seeds would very probably leave
    # the interval across the threshold (futility), it stops after the first look, undecided, with the seeds a
    # fixed design would need. Without strict=True that is a warning; a merge gate makes it a failure.
    train_data, test_data = default_data("planted", n_train=1000, n_test=1000)
    result = kernel_audit("resnet18", layer="conv1", levels=[7, 3], data=train_data, test_data=test_data,
                          attributes="skin_tone", perturbation=LowPass(0.4), train_config=TrainConfig(epochs=3))
    result.assert_below()


@pytest.mark.xfail(strict=True, raises=AuditFailure,
                   reason="planted bias: conv1's kernel size moves the gap beyond the threshold (the map says which)")
@pytest.mark.kernel_audit(seeds=3, threshold=0.05)
def test_layer_map_finds_the_layer_that_moves_the_gap(kernel_audit):
    # One arm per conv of SynthFacesCNN (conv1, conv2, conv3), each do(kernel_size=9) on that layer alone against
    # the architecture as built (3x3 everywhere), trained once per seed and shared by the three arms: 4 models a
    # seed instead of 6. The stripes that carry dark-skinned faces' label are 3 px wide, so the first conv, which
    # sees the raw image, is where the kernel size decides whether they are learned.
    train_data, test_data = default_data("planted", n_train=2000, n_test=1000)
    result = kernel_audit(SynthFacesCNN, layer=each("all"), levels=[3, 9], data=train_data, test_data=test_data,
                          attributes="skin_tone", perturbation=LowPass(0.4))
    worst = max(result.layer_map(), key=lambda row: abs(row["effect"]))
    assert worst["layer"] == "conv1", result.layer_map()  # not an AuditFailure: the xfail would not cover it
    result.assert_below()


@pytest.mark.xfail(strict=True, raises=AuditFailure,
                   reason="planted bias: conv1's 9x9 kernel moves the gap without the fix, and anti-aliasing the "
                          "max pool removes little of that (docs/walkthroughs.md)")
@pytest.mark.kernel_audit(seeds=4, threshold=0.05)
def test_anti_aliasing_the_pool_against_conv1s_kernel_size(kernel_audit):
    # Cause x fix: conv1's kernel size (3, 9) crossed with the max pool as built or anti-aliased (a 3x3 binomial
    # blur before its subsampling, Zhang 2019), 4 cells on the same seeds. The family: the kernel size's effect
    # without and with the fix, the fix's own, and their interaction; the summary says in words what share of
    # the kernel-size effect the fix removes. Measured 2026-12-08: 13%, the interaction's interval spanning 0:
    # the stripes conv1 learns or misses are in the raw image, before any downsampling.
    train_data, test_data = default_data("planted", n_train=2000, n_test=1000)
    result = kernel_audit(SynthFacesCNN, layer=["conv1", "pool"],
                          levels=factorial(Factor("conv1", [3, 9]), Factor("pool", [None, AntiAlias(3)])),
                          data=train_data, test_data=test_data, attributes="skin_tone", perturbation=LowPass(0.4))
    result.assert_below()
