"""The zoo's two data sets, both made on the spot (no download).

* ``digits``: scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes), pixels
  scaled from 0..16 to [0, 1], split 75/25 (stratified, ``random_state=0``) once and for all.
* ``sequences``: a synthetic task that needs memory.  Each sequence has ``SEQ_LENGTH`` steps of
  ``SEQ_FEATURES`` features in [0, 1].  The class (one of ``SEQ_CLASSES``) decides only the
  first ``SEQ_CUE_STEPS`` steps (a class template plus noise); the remaining steps follow one
  template shared by every class plus noise.  A recurrent classifier that reads the output of
  the last step must therefore carry the cue through the distractor steps.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor

DATA_SEED = 0              # the data never change with the build's --seed
DIGITS_TEST_FRACTION = 0.25
SEQ_LENGTH = 8
SEQ_FEATURES = 4
SEQ_CLASSES = 4
SEQ_CUE_STEPS = 3
SEQ_NOISE = 0.12
SEQ_TRAIN, SEQ_TEST = 2000, 500


@dataclass(frozen=True)
class Dataset:
    """Train and test tensors; ``x_*``: (n, *input_shape) float32 in [0, 1], ``y_*``: (n,)."""
    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def load_digits_dataset(image: bool) -> Dataset:
    """The digits as flat (64,) vectors or as (1, 8, 8) images."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=DIGITS_TEST_FRACTION, random_state=DATA_SEED,
        stratify=digits.target)
    shape = (1, 8, 8) if image else (64,)
    return Dataset("digits_image" if image else "digits_flat",
                   torch.from_numpy(x_train).reshape(-1, *shape), torch.from_numpy(y_train).long(),
                   torch.from_numpy(x_test).reshape(-1, *shape), torch.from_numpy(y_test).long(),
                   num_classes=10)


def sequence_templates(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(class cues (classes, cue_steps, features), shared tail (length - cue_steps, features)),
    values in [0.2, 0.8] so that noise rarely reaches the clipping at 0 and 1."""
    cues = rng.uniform(0.2, 0.8, size=(SEQ_CLASSES, SEQ_CUE_STEPS, SEQ_FEATURES))
    tail = rng.uniform(0.2, 0.8, size=(SEQ_LENGTH - SEQ_CUE_STEPS, SEQ_FEATURES))
    return cues, tail


def _sequences(rng: np.random.Generator, cues: np.ndarray, tail: np.ndarray, n: int
               ) -> tuple[Tensor, Tensor]:
    labels = rng.integers(0, SEQ_CLASSES, size=n)
    clean = np.concatenate([cues[labels], np.broadcast_to(tail, (n, *tail.shape))], axis=1)
    noisy = np.clip(clean + SEQ_NOISE * rng.standard_normal(clean.shape), 0.0, 1.0)
    return torch.from_numpy(noisy.astype(np.float32)), torch.from_numpy(labels).long()


def load_sequence_dataset() -> Dataset:
    """Sequences (SEQ_LENGTH, SEQ_FEATURES) with the memory task described in the module."""
    rng = np.random.default_rng(DATA_SEED)
    cues, tail = sequence_templates(rng)
    x_train, y_train = _sequences(rng, cues, tail, SEQ_TRAIN)
    x_test, y_test = _sequences(rng, cues, tail, SEQ_TEST)
    return Dataset("sequences", x_train, y_train, x_test, y_test, num_classes=SEQ_CLASSES)
