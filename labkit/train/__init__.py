"""Training, evaluation, prediction and checkpoints (lab 02 onwards).

    history = fit(model, loaders.train, loaders.val, epochs=10, scheduler="cosine", patience=3,
                  checkpoint=lab.checkpoints_dir / "run.pt", resume=True)
    preds = predict(model, loaders.test)

Files: `loop.py` (fit), `epoch.py` (one epoch: lab 02's exercise, and fit's), `optim.py`
(optimisers and schedules by name), `history.py` (what fit returns and carries between epochs),
`predict.py` (evaluate, predict), `checkpoint.py` (save/load, and fit's training state for exact
resume), `rng.py` (generator states), `world.py` (the processes fit trains with; the torchrun one is
`course.distributed`), `overfit.py`, `lookahead.py` (Lookahead).
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
