"""What the zoo holds: every family (one benchmark name each) with its full and tiny members."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from benchmarks.zoo.data import SEQ_CLASSES, SEQ_FEATURES, SEQ_LENGTH
from benchmarks.zoo.models import RecurrentClassifier, VisionTransformer, cnn, mlp
from benchmarks.zoo.training import TrainConfig

ADVERSARIAL_RADIUS = 0.03          # PGD training radius on [0, 1] pixels
MLP_SHAPES = ((6, 100), (6, 200), (9, 100))   # (hidden layers, width), as in the GenBaB paper
MLP_ACTIVATIONS = ("sigmoid", "tanh", "sin", "gelu")
FAMILIES = tuple(f"zoo_{a}" for a in MLP_ACTIVATIONS) + (
    "zoo_cnn_sigmoid", "zoo_cnn_tanh", "zoo_lstm", "zoo_gru", "zoo_vit")
DATASET_OF_KIND = {"mlp": "digits_flat", "cnn": "digits_image", "vit": "digits_image",
                   "rnn": "sequences"}


@dataclass(frozen=True)
class ModelSpec:
    """One zoo member: ``make()`` builds the untrained module (call it after seeding)."""
    name: str                    # file stem, e.g. "mlp_sigmoid_6x100_pgd"
    family: str                  # benchmark name, e.g. "zoo_sigmoid"
    kind: str                    # "mlp", "cnn", "rnn" or "vit"
    make: Callable[[], nn.Module]
    train: TrainConfig
    architecture: str            # one line for models.csv

    @property
    def dataset(self) -> str:
        return DATASET_OF_KIND[self.kind]


def _mlp_spec(activation: str, layers: int, width: int, adversarial: bool,
              epochs: int = 30, lr: float = 1e-3) -> ModelSpec:
    suffix = "_pgd" if adversarial else ""
    config = TrainConfig(epochs=epochs, lr=lr,
                         adversarial_radius=ADVERSARIAL_RADIUS if adversarial else 0.0)
    training = f", PGD-trained at {ADVERSARIAL_RADIUS}" if adversarial else ""
    return ModelSpec(
        f"mlp_{activation}_{layers}x{width}{suffix}", f"zoo_{activation}", "mlp",
        lambda: mlp(activation, 64, (width,) * layers, 10), config,
        f"MLP 64-{'-'.join([str(width)] * layers)}-10, {activation}{training}")


def _cnn_spec(activation: str, channels: int, hidden: int | None, epochs: int = 40
              ) -> ModelSpec:
    lr = 1e-2 if activation == "sigmoid" else 3e-3
    head = f"linear {channels * 16}-{hidden}, {activation}, linear {hidden}-10" if hidden else (
        f"linear {channels * 16}-10")
    return ModelSpec(
        f"cnn_{activation}_{channels}c", f"zoo_cnn_{activation}", "cnn",
        lambda: cnn(activation, channels, hidden, 10), TrainConfig(epochs=epochs, lr=lr),
        f"conv 3x3 stride 2 1->{channels}x4x4, {activation}, {head}")


def _rnn_spec(cell: str, hidden: int, config: TrainConfig = TrainConfig(epochs=30, lr=1e-2)
              ) -> ModelSpec:
    return ModelSpec(
        f"{cell}_h{hidden}", f"zoo_{cell}", "rnn",
        lambda: RecurrentClassifier(cell, SEQ_FEATURES, hidden, SEQ_CLASSES),
        config,
        f"{cell.upper()} {SEQ_FEATURES}->{hidden} over {SEQ_LENGTH} steps, linear head on the "
        "last step")


def _vit_spec(patch: int, dim: int, heads: int, mlp_dim: int,
              config: TrainConfig = TrainConfig(epochs=40, lr=3e-3)) -> ModelSpec:
    tokens = (8 // patch) ** 2
    return ModelSpec(
        f"vit_p{patch}_d{dim}", "zoo_vit", "vit",
        lambda: VisionTransformer(patch, dim, heads, mlp_dim, blocks=1, classes=10),
        config, f"ViT {patch}x{patch} patches ({tokens} tokens), dim {dim}, {heads} head(s), "
        f"GeLU MLP {mlp_dim}, 1 block, mean pooling")


def full_specs() -> list[ModelSpec]:
    specs = [_mlp_spec(activation, layers, width, adversarial)
             for activation in MLP_ACTIVATIONS for layers, width in MLP_SHAPES
             for adversarial in (False, True)]
    specs += [_cnn_spec("sigmoid", 8, 32), _cnn_spec("tanh", 8, 32)]
    specs += [_rnn_spec("lstm", 16), _rnn_spec("gru", 16)]
    return specs + [_vit_spec(patch=2, dim=16, heads=2, mlp_dim=32)]


def tiny_specs() -> list[ModelSpec]:
    """The smallest member of every family, trained in seconds (for CI): fewer epochs with a
    larger step (but the 4-unit LSTM diverges with a larger one)."""
    specs = [_mlp_spec(activation, 2, 16, adversarial=False, epochs=20, lr=1e-2)
             for activation in MLP_ACTIVATIONS]
    specs += [_cnn_spec("sigmoid", 2, None, epochs=20), _cnn_spec("tanh", 2, None, epochs=20)]
    specs += [_rnn_spec("lstm", 4, TrainConfig(epochs=30, lr=1e-2)),
              _rnn_spec("gru", 4, TrainConfig(epochs=20, lr=3e-2))]
    return specs + [_vit_spec(patch=4, dim=8, heads=1, mlp_dim=16,
                              config=TrainConfig(epochs=15, lr=1e-2))]
