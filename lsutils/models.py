"""The CIFAR-style ResNet of He et al. 2016, with or without skip connections.

Depth ``6n + 2``: a 3x3 stem, three stages of ``n`` basic blocks with 16, 32 and 64
channels (times ``width``; strides 1, 2, 2), global average pooling and a linear
classifier. ``skip=False`` removes every identity and projection shortcut, the
"no skip" variant of Li et al. 2018 and Xie et al. 2024, leaving a plain
convolutional network of the same depth. One definition gives 1-D convolutions
(MNIST-1D signals) and 2-D ones (CIFAR-10 images).

Example:
    >>> net = resnet(depth=20, skip=False, dim=1, in_channels=1)
    >>> net(torch.zeros(8, 1, 40)).shape
    torch.Size([8, 10])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BasicBlock", "ResNet", "ResNetSpec", "resnet", "count_parameters", "PinnMLP"]


def _layers(dim: int) -> tuple[type, type, type]:
    if dim == 1:
        return nn.Conv1d, nn.BatchNorm1d, nn.AdaptiveAvgPool1d
    if dim == 2:
        return nn.Conv2d, nn.BatchNorm2d, nn.AdaptiveAvgPool2d
    raise ValueError(f"dim = {dim!r}; allowed: 1 (signals) or 2 (images)")


class BasicBlock(nn.Module):
    """conv3-BN-ReLU-conv3-BN, plus the shortcut when ``skip``, then ReLU.

    The shortcut is the identity, or a 1x1 convolution with BatchNorm (a
    projection) where the stride or the channel count changes.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, skip: bool, dim: int) -> None:
        super().__init__()
        conv, bn, _ = _layers(dim)
        self.conv1 = conv(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = bn(c_out)
        self.conv2 = conv(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = bn(c_out)
        self.skip = skip
        self.shortcut: nn.Module = nn.Identity()
        if skip and (stride != 1 or c_in != c_out):
            self.shortcut = nn.Sequential(conv(c_in, c_out, 1, stride=stride, bias=False), bn(c_out))

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.skip:
            out = out + self.shortcut(x)
        return torch.relu(out)


class ResNet(nn.Module):
    """CIFAR-style ResNet (see the module docstring)."""

    def __init__(self, depth: int = 20, width: int = 1, skip: bool = True, dim: int = 2,
                 in_channels: int = 3, num_classes: int = 10, base_channels: int = 16) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth = {depth!r}; allowed: 6n + 2 with n >= 1 (8, 14, 20, 32, 56, ...)")
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width = {width!r}; allowed: an integer >= 1")
        if not isinstance(base_channels, int) or base_channels < 1:
            raise ValueError(f"base_channels = {base_channels!r}; allowed: an integer >= 1")
        conv, bn, pool = _layers(dim)
        n = (depth - 2) // 6
        k = base_channels * width
        channels = [k, 2 * k, 4 * k]
        self.depth, self.width, self.skip, self.dim = depth, width, skip, dim
        self.conv1 = conv(in_channels, channels[0], 3, padding=1, bias=False)
        self.bn1 = bn(channels[0])
        blocks, c_in = [], channels[0]
        for stage, c_out in enumerate(channels):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(c_in, c_out, stride, skip, dim))
                c_in = c_out
        self.layers = nn.Sequential(*blocks)
        self.pool = pool(1)
        self.fc = nn.Linear(channels[-1], num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.pool(self.layers(out)).flatten(1)
        return self.fc(out)


def resnet(depth: int = 20, width: int = 1, skip: bool = True, dim: int = 2,
           in_channels: int = 3, num_classes: int = 10, base_channels: int = 16) -> ResNet:
    """Build a CIFAR-style ResNet (``depth = 6n + 2``) with stages of ``k, 2k, 4k`` channels,
    ``k = base_channels * width`` (16, 32, 64 for ResNet-20; Yang et al. 2021 vary ``k``)."""
    return ResNet(depth, width, skip, dim, in_channels, num_classes, base_channels)


@dataclass(frozen=True)
class ResNetSpec:
    """What to build: the arguments of :func:`resnet`, as a frozen, saveable record."""

    depth: int = 20
    width: int = 1
    skip: bool = True
    dim: int = 2
    in_channels: int = 3
    num_classes: int = 10
    base_channels: int = 16

    def build(self) -> ResNet:
        return resnet(self.depth, self.width, self.skip, self.dim, self.in_channels, self.num_classes,
                      self.base_channels)

    def record(self) -> dict:
        """The fields as a run's key records them (``base_channels`` only when it is not 16, so
        the runs made before it existed keep their key)."""
        out = dataclasses.asdict(self)
        if out["base_channels"] == 16:
            del out["base_channels"]
        return out

    @property
    def name(self) -> str:
        """e.g. ``resnet20_skip``, ``resnet20_noskip_w2`` or ``resnet20_skip_k4`` (4 base channels)."""
        w = f"_w{self.width}" if self.width != 1 else ""
        k = f"_k{self.base_channels}" if self.base_channels != 16 else ""
        return f"resnet{self.depth}_{'skip' if self.skip else 'noskip'}{w}{k}"


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class PinnMLP(nn.Module):
    """The tanh MLP ``(x, t) -> u``: ``depth`` hidden layers of ``width`` units.

    Xavier-normal weights and zero biases. Input ``[N, 2]``, output ``[N]``.
    """

    def __init__(self, width: int = 50, depth: int = 4) -> None:
        super().__init__()
        if width < 1 or depth < 1:
            raise ValueError(f"width = {width}, depth = {depth}; allowed: integers >= 1")
        sizes = [2] + [width] * depth + [1]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            lin = nn.Linear(a, b)
            nn.init.xavier_normal_(lin.weight)
            nn.init.zeros_(lin.bias)
            layers.append(lin)
            if i < len(sizes) - 2:
                layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, xt: Tensor, tangent: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        r"""``u(xt)``, or with ``tangent`` also the directional derivative ``du = J_u(xt) tangent``.

        ``tangent`` is ``[N, 2]``, or ``[2]`` for the same direction at every point (then
        the first layer's tangent is one row, broadcast). The function is ``self.net``'s,
        computed in sigmoid form: with :math:`\tanh(z) = 2\sigma(2z) - 1`, each layer
        :math:`z' = W \tanh(z) + b` becomes :math:`2z' = 4W\sigma(2z) + 2(b - W\mathbf{1})`,
        so a hidden layer costs one ``sigmoid`` and the rescaling moves into the (small)
        weights; on the CPU builds of torch measured here ``tanh`` is 3.5x slower than
        ``sigmoid``, and the batched PINN loss 1.3x faster this way. The tangent is carried
        through the layers by hand (:math:`d\sigma = \sigma(1 - \sigma)\,d(2z)`): plain
        operations, so reverse mode and ``vmap`` apply to it as to the forward pass,
        without forward-mode AD's overhead.
        """
        linears = [m for m in self.net if isinstance(m, nn.Linear)]
        first = linears[0]
        z = F.linear(xt, 2 * first.weight, 2 * first.bias)  # 2 z_1
        dz = None if tangent is None else tangent @ (2 * first.weight).T
        for i, lin in enumerate(linears[1:], start=2):
            s = torch.sigmoid(z)  # tanh(z_k) = 2 s - 1
            scale = 2.0 if i == len(linears) else 4.0  # the output layer is not doubled
            weight = scale * lin.weight
            z = F.linear(s, weight, scale / 2 * (lin.bias - lin.weight.sum(1)))
            if dz is not None:
                q = dz * s
                dz = torch.addcmul(q, q, s, value=-1) @ weight.T  # s (1 - s) d(2z), then the layer
        u = z.squeeze(-1)
        if dz is None:
            return u
        return u, dz.expand_as(z).squeeze(-1)
