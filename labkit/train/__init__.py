"""Training, evaluation, prediction and checkpoints, from notebooks/02_naive_cnn.ipynb on: `fit` (loop.py),
one epoch (epoch.py), optimisers by name (optim.py), evaluate and predict (predict.py), checkpoints."""

from __future__ import annotations

from labkit.train.checkpoint import load_checkpoint, save_checkpoint
from labkit.train.epoch import train_one_epoch
from labkit.train.history import History, smooth
from labkit.train.lookahead import Lookahead
from labkit.train.loop import fit
from labkit.train.optim import norm_scaled_groups
from labkit.train.overfit import overfit_one_batch
from labkit.train.predict import Predictions, evaluate, predict

__all__ = ["History", "Lookahead", "Predictions", "evaluate", "fit", "load_checkpoint", "norm_scaled_groups",
           "overfit_one_batch", "predict", "save_checkpoint", "smooth", "train_one_epoch"]  # fmt: skip
