"""Per-epoch training checkpoints, so an interrupted run of the same text and settings resumes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

STATE_FILE = "state.npz"


@dataclass
class TrainingState:
    """Everything a run needs to carry on after its last finished epoch."""

    epochs_done: int = 0
    examples: int = 0  # training windows seen so far
    best_loss: float = float("inf")  # best validation loss (nats per token)
    epochs_since_best: int = 0  # for early stopping
    stopped_early: bool = False
    train_seconds: float = 0.0  # time spent by the runs before, so a resumed run's card counts the whole training
    history: dict = field(default_factory=lambda: {"loss": [], "val_perplexity": [], "epoch_seconds": []})
    best_weights: list | None = None  # the model's weights at its best validation loss


class EpochCheckpoint:
    """One file in a folder keyed by a fingerprint of the data and settings; replaced atomically each epoch."""

    def __init__(self, folder: Path, fingerprint: str):
        from .storage_errors import storage_error

        self.folder = folder
        self.notice = ""  # one line on what restore() found: resumed from an epoch, or a checkpoint unreadable
        stamp = folder / "fingerprint"
        try:
            if folder.exists() and (not stamp.is_file() or stamp.read_text() != fingerprint):
                shutil.rmtree(folder)  # another corpus or other settings: start afresh
            folder.mkdir(parents=True, exist_ok=True)
            for leftover in folder.glob(f".{STATE_FILE}*.tmp"):  # of a save killed half-way
                leftover.unlink()
            stamp.write_text(fingerprint)
        except OSError as e:
            raise storage_error(e, "write the training checkpoint", folder) from None

    @staticmethod
    def fingerprint(train_ids: np.ndarray, *configs) -> str:
        digest = hashlib.sha256(train_ids.tobytes())
        digest.update(json.dumps([asdict(c) for c in configs], sort_keys=True).encode())
        return digest.hexdigest()

    def save(self, state: TrainingState, model, optimizer) -> None:
        meta = {k: v for k, v in asdict(state).items() if k != "best_weights"}
        arrays: dict[str, Any] = {"meta": np.array(json.dumps(meta))}
        arrays |= {f"w{i}": w for i, w in enumerate(model.get_weights())}
        arrays |= {f"o{i}": v.numpy() for i, v in enumerate(optimizer.variables)}
        arrays |= {f"b{i}": w for i, w in enumerate(state.best_weights or [])}
        tmp = self.folder / f".{STATE_FILE}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.folder / STATE_FILE)
        except OSError as e:  # a full disk, say: the half-written file must not keep it full
            tmp.unlink(missing_ok=True)
            from .storage_errors import storage_error

            raise storage_error(e, "save the training checkpoint", self.folder) from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def restore(self, model, optimizer, epochs: int | None = None) -> TrainingState:
        """The saved state, with the model's and optimizer's variables set from it; a fresh state if none.
        `epochs`: how many the run trains, so that the notice can say when none is left."""
        path = self.folder / STATE_FILE
        if not path.exists():
            return TrainingState()
        try:
            with np.load(path, allow_pickle=False) as saved:
                weights, optimizer_values = _numbered(saved, "w"), _numbered(saved, "o")
                state = TrainingState(**json.loads(str(saved["meta"])), best_weights=_numbered(saved, "b") or None)
            if len(optimizer_values) != len(optimizer.variables):
                raise ValueError("optimizer state does not match")
            model.set_weights(weights)
        except Exception as e:  # noqa: BLE001 - any damage (empty, cut short, foreign file): a checkpoint only saves time
            self.notice = (
                f"the checkpoint in {self.folder} is unreadable ({type(e).__name__}); starting afresh from epoch 1"
            )
            path.unlink(missing_ok=True)
            return TrainingState()
        for variable, value in zip(optimizer.variables, optimizer_values, strict=True):
            variable.assign(value)
        if state.epochs_done:
            done = f"epochs 1-{state.epochs_done}" if state.epochs_done > 1 else "epoch 1"
            if state.stopped_early or (epochs is not None and state.epochs_done >= epochs):
                self.notice = f"all its epochs came from the checkpoint ({done}); saving the model"
            else:
                self.notice = f"resuming from epoch {state.epochs_done + 1} ({done} came from the checkpoint)"
        return state

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _numbered(saved, prefix: str) -> list:
    """The arrays saved as prefix0, prefix1, ... in order."""
    names = sorted((n for n in saved.files if n[0] == prefix and n[1:].isdigit()), key=lambda n: int(n[1:]))
    return [saved[n] for n in names]
