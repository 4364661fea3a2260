"""The CIFAR-style ResNet against known sizes and exact block behaviour."""

from __future__ import annotations

import pytest
import torch

from lsutils.models import BasicBlock, ResNetSpec, count_parameters, resnet


def test_resnet_parameter_counts_match_he_et_al():
    # He et al. 2016's CIFAR ResNet-20 with parameter-free (option A) shortcuts, counted by
    # hand: stem 3*16*9 + 32 (BN); stage 1: 3 * (2 * 16*16*9 + 64); stage 2: 16*32*9 +
    # 32*32*9 + 128 + 2 * (2 * 32*32*9 + 128); stage 3: 32*64*9 + 64*64*9 + 256 +
    # 2 * (2 * 64*64*9 + 256); fc 64*10 + 10.  = 269,722 (the "0.27M" of the paper).
    # Without shortcuts the network has exactly these parameters.
    assert count_parameters(resnet(20, skip=False)) == 269_722
    # 1x1 projection shortcuts with BN at the two downsampling blocks: 16*32 + 64 + 32*64 + 128
    assert count_parameters(resnet(20, skip=True)) == 269_722 + 2_752
    # ResNet-56 (n = 9) by the same count: the paper's "0.85M"
    assert count_parameters(resnet(56, skip=False)) == 853_018


@pytest.mark.parametrize("dim, shape", [(1, (4, 1, 40)), (2, (4, 3, 32, 32))])
def test_shapes_in_one_and_two_dimensions(dim, shape):
    for skip in (True, False):
        net = resnet(20, width=2, skip=skip, dim=dim, in_channels=shape[1])
        assert net(torch.randn(*shape)).shape == (4, 10)


def test_no_skip_removes_every_shortcut():
    net = resnet(20, skip=False, dim=1, in_channels=1)
    assert not any("shortcut" in name for name, _ in net.named_parameters())
    assert sum("shortcut" in n for n, _ in resnet(20, dim=1, in_channels=1).named_parameters()) == 6


def test_block_is_residual_exactly_when_skip():
    x = torch.randn(2, 16, 10)
    for skip, expected in ((True, torch.relu(x)), (False, torch.zeros_like(x))):
        block = BasicBlock(16, 16, 1, skip, dim=1).eval()
        with torch.no_grad():  # make the residual branch output zero
            block.bn2.weight.zero_()
            block.bn2.bias.zero_()
        torch.testing.assert_close(block(x), expected)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"depth = 21; allowed: 6n \+ 2"):
        resnet(21)
    with pytest.raises(ValueError, match="dim = 3; allowed"):
        resnet(20, dim=3)
    with pytest.raises(ValueError, match="width = 0"):
        resnet(20, width=0)


def test_spec_builds_and_names():
    spec = ResNetSpec(20, skip=False, dim=1, in_channels=1)
    assert spec.name == "resnet20_noskip" and not spec.build().skip
    assert ResNetSpec(32, width=2).name == "resnet32_skip_w2"
