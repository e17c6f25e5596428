"""Convolutional image classifiers: LeNet-5, AlexNet (small-image variant), ResNet-18 (CIFAR stem).

Inputs are NHWC float arrays in [0, 1].

Batch norm (ResNet-18) is vmap-safe: statistics are computed over the batch
axis of each replica's own minibatch (no ``axis_name``, so nothing is shared
across the replica axis), and the running averages live in the separate
``batch_stats`` collection, which the sweep carries per replica next to the
params. The differentiable ``params`` never contain them.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp
from jaxtyping import Array, Float

from hgcnet_jax.models.registry import register

__all__ = ["LeNet5", "AlexNet", "ResNet18", "BasicBlock"]


@register("lenet5", kinds=("image",))
class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) for 28×28 (or 32×32) inputs.

    conv 6@5×5 (same padding) → ReLU → max-pool 2 → conv 16@5×5 → ReLU →
    max-pool 2 → dense 120 → ReLU → dense 84 → ReLU → dense ``num_classes``.
    """

    num_classes: int = 10

    @nn.compact
    def __call__(self, x: Float[Array, "n h w c"], *, train: bool = False) -> Float[Array, "n k"]:
        pad = "SAME" if x.shape[1] < 32 else "VALID"
        h = nn.relu(nn.Conv(6, (5, 5), padding=pad)(x))
        h = nn.max_pool(h, (2, 2), strides=(2, 2))
        h = nn.relu(nn.Conv(16, (5, 5), padding="VALID")(h))
        h = nn.max_pool(h, (2, 2), strides=(2, 2))
        h = h.reshape(h.shape[0], -1)
        h = nn.relu(nn.Dense(120)(h))
        h = nn.relu(nn.Dense(84)(h))
        return nn.Dense(self.num_classes)(h)


@register("alexnet", kinds=("image",))
class AlexNet(nn.Module):
    """AlexNet for small images (the usual CIFAR-sized variant, 3×3 kernels).

    Five convolutions (64, 192, 384, 256, 256) with three max-pools, then two
    dropout-regularised dense layers of ``dense_width`` and the classifier.
    """

    num_classes: int = 10
    dense_width: int = 512
    dropout: float = 0.5

    @nn.compact
    def __call__(self, x: Float[Array, "n h w c"], *, train: bool = False) -> Float[Array, "n k"]:
        h = x
        for i, f in enumerate((64, 192, 384, 256, 256)):
            h = nn.relu(nn.Conv(f, (3, 3), padding="SAME")(h))
            if i in (0, 1, 4):
                h = nn.max_pool(h, (2, 2), strides=(2, 2), padding="SAME")
        h = h.reshape(h.shape[0], -1)
        for _ in range(2):
            h = nn.Dropout(self.dropout, deterministic=not train)(h)
            h = nn.relu(nn.Dense(self.dense_width)(h))
        return nn.Dense(self.num_classes)(h)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3×3 convolutions with batch norm and a projection shortcut."""

    features: int
    stride: int = 1

    @nn.compact
    def __call__(self, x, *, train: bool):
        norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)  # noqa: E731
        h = nn.Conv(self.features, (3, 3), strides=self.stride, padding="SAME", use_bias=False)(x)
        h = nn.relu(norm()(h))
        h = nn.Conv(self.features, (3, 3), padding="SAME", use_bias=False)(h)
        h = norm()(h)
        if self.stride != 1 or x.shape[-1] != self.features:
            x = nn.Conv(self.features, (1, 1), strides=self.stride, use_bias=False)(x)
            x = norm()(x)
        return nn.relu(h + x)


@register("resnet18", kinds=("image",))
class ResNet18(nn.Module):
    """ResNet-18 (He et al. 2016) with the CIFAR stem: one 3×3 convolution, no max-pool.

    Attributes:
        num_classes: output width.
        widths: widths of the four stages (64, 128, 256, 512).
    """

    num_classes: int = 10
    widths: Sequence[int] = (64, 128, 256, 512)

    @nn.compact
    def __call__(self, x: Float[Array, "n h w c"], *, train: bool = False) -> Float[Array, "n k"]:
        h = nn.Conv(self.widths[0], (3, 3), padding="SAME", use_bias=False)(x)
        h = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(h))
        for i, f in enumerate(self.widths):
            for j in range(2):
                h = BasicBlock(f, stride=2 if (i > 0 and j == 0) else 1)(h, train=train)
        h = jnp.mean(h, axis=(1, 2))
        return nn.Dense(self.num_classes)(h)
