"""Training, evaluation, prediction and checkpoints (lab 02 onwards).

    history = fit(model, loaders.train, loaders.val, epochs=10, scheduler="cosine", patience=3,
                  checkpoint=lab.checkpoints_dir / "run.pt", resume=True)
    preds = predict(model, loaders.test)

Files: `loop.py` (fit), `optim.py` (optimisers, schedules, loss), `history.py`, `predict.py`
(evaluate, predict), `overfit.py`, `lookahead.py` (Lookahead), `checkpoint.py` (save/load),
`rng.py` (generator states),
`distributed.py` (fit under torchrun), `epoch.py` (one plain epoch, lab 02's exercise), `recipe.py` (`python -m course train`: the labs' recipes).
"""

from __future__ import annotations

from labkit.train.checkpoint import load_checkpoint, save_checkpoint
from labkit.train.epoch import train_one_epoch
from labkit.train.history import History, smooth
from labkit.train.lookahead import Lookahead
from labkit.train.loop import fit
from labkit.train.optim import norm_scaled_groups
from labkit.train.overfit import overfit_one_batch
from labkit.train.predict import Predictions, evaluate, predict

__all__ = [
    "History",
    "Lookahead",
    "Predictions",
    "evaluate",
    "fit",
    "load_checkpoint",
    "norm_scaled_groups",
    "overfit_one_batch",
    "predict",
    "save_checkpoint",
    "smooth",
    "train_one_epoch",
]
