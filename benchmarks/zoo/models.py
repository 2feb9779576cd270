"""The zoo's network architectures; each ``forward`` takes ``(batch, *input_shape)``."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


class Sin(nn.Module):
    """Elementwise sine; exported as the ONNX ``Sin`` op."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(x)


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "sin": Sin, "gelu": nn.GELU,
}


# Glorot's gain for the logistic sigmoid (slope 1/4 at 0): with torch's default initialisation
# a 6- or 9-layer sigmoid MLP starts with vanishing gradients and stays at chance.
_SIGMOID_GAIN = 4.0


def mlp(activation: str, inputs: int, hidden: tuple[int, ...], classes: int) -> nn.Sequential:
    """Linear -> activation for every hidden width, then a linear head: (batch, inputs)."""
    layers: list[nn.Module] = []
    width = inputs
    for size in hidden:
        linear = nn.Linear(width, size)
        if activation == "sigmoid":
            nn.init.xavier_normal_(linear.weight, gain=_SIGMOID_GAIN)
            nn.init.zeros_(linear.bias)
        layers += [linear, ACTIVATIONS[activation]()]
        width = size
    return nn.Sequential(*layers, nn.Linear(width, classes))


def cnn(activation: str, channels: int, hidden: int | None, classes: int) -> nn.Sequential:
    """(batch, 1, 8, 8): a 3x3 stride-2 convolution to ``channels`` x 4 x 4, the activation,
    then (optionally a hidden linear layer and the activation again) a linear head."""
    layers: list[nn.Module] = [nn.Conv2d(1, channels, 3, stride=2, padding=1),
                               ACTIVATIONS[activation](), nn.Flatten()]
    width = channels * 16
    if hidden:
        layers += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, classes))


class RecurrentClassifier(nn.Module):
    """(batch, steps, features) -> an LSTM or GRU (batch_first) -> linear head on the output
    of the last step.  An LSTM's forget gates start with bias 1 (remember by default): with
    torch's initialisation the 4-unit LSTM often stays at chance on the memory task."""

    def __init__(self, cell: str, features: int, hidden: int, classes: int):
        super().__init__()
        recurrent = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.recurrent = recurrent(features, hidden, batch_first=True)
        if cell == "lstm":
            with torch.no_grad():   # gate order i, f, g, o: the forget gate is rows hidden:2h
                self.recurrent.bias_ih_l0[hidden:2 * hidden] = 1.0
                self.recurrent.bias_hh_l0[hidden:2 * hidden] = 0.0
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: Tensor) -> Tensor:
        outputs, _ = self.recurrent(x)
        return self.head(outputs[:, -1, :])


class VisionTransformer(nn.Module):
    """(batch, 1, 8, 8) -> ``patch`` x ``patch`` patches embedded by a strided convolution,
    plus a learnt position embedding -> ``blocks`` pre-LayerNorm transformer blocks (multi-head
    self-attention, GeLU MLP, residuals) -> LayerNorm of the token mean -> linear head."""

    def __init__(self, patch: int, dim: int, heads: int, mlp_dim: int, blocks: int,
                 classes: int):
        super().__init__()
        tokens = (8 // patch) ** 2
        self.embed = nn.Conv2d(1, dim, patch, stride=patch)
        self.position = nn.Parameter(0.02 * torch.randn(1, tokens, dim))
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_dim) for _ in range(blocks))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2) + self.position   # (batch, tokens, dim)
        for block in self.blocks:
            tokens = block(tokens)
        return self.head(self.norm(tokens.mean(dim=1)))


class TransformerBlock(nn.Module):
    """x + attention(LayerNorm(x)), then x + MLP(LayerNorm(x)) with a GeLU MLP."""

    def __init__(self, dim: int, heads: int, mlp_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        normed = self.norm1(x)
        attended, _ = self.attention(normed, normed, normed, need_weights=False)
        x = x + attended
        return x + self.mlp(self.norm2(x))


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
