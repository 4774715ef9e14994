"""Recordings: the scalars a Debugger hook saves while training runs, read back for the rules.

A recording is a folder with ``tensors.jsonl`` (one JSON object per scalar, appended while
training runs, so a crash loses at most the last line) and ``run.json`` (what was recorded and
the run's facts). Each scalar is one reduction of one tensor at one step::

    {"step": 100, "mode": "train", "collection": "gradients", "tensor": "bert.encoder.layer.0.attention.self.query.weight",
     "reduction": "l2", "value": 0.0123, "wall_time": 1764150000.12}

Collections: ``losses`` (tensor ``loss``, reduction ``value``: in mode ``train`` the mean training
loss of the steps since the previous record, plus the loss of the first step, saved or not, at
which it is NaN or infinite; in mode ``eval`` the validation loss),
``gradients``, ``weights``, ``biases``, ``outputs`` (module outputs through forward hooks),
``optimizer`` (tensor ``learning_rate``, reduction ``value``), ``labels`` and ``predictions``
(tensor ``class_<id>``, reduction ``count``: rows of that label / correct predictions of that
label in the batch — what ClassImbalance reads), ``metrics`` (evaluation figures, reduction ``value``).

Reductions (:data:`REDUCTIONS`): ``mean``, ``std``, ``min``, ``max``, ``l2`` (L2 norm),
``abs_mean`` (mean of absolute values), ``zero_fraction`` (fraction of exact zeros),
``nonfinite`` (count of NaN and infinite values), ``nan`` (count of NaN values),
``p05``/``p95`` (5th/95th percentiles, of at most 100,000 sampled values), ``update_l2``
(L2 norm of the last optimizer update of a weight), ``value`` (a scalar as is), ``count``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

TENSORS_FILE = "tensors.jsonl"
# The collection of session markers (tensor ``start``, value = wall time): one per time a run
# (re)started, so a resumed run's gap between its sessions is not read as a stall.
SESSIONS = "sessions"
RUN_FILE = "run.json"
COLUMNS = ["step", "mode", "collection", "tensor", "reduction", "value", "wall_time"]
REDUCTIONS = ("mean", "std", "min", "max", "l2", "abs_mean", "zero_fraction", "nonfinite", "nan", "p05", "p95")
# Reductions the hook computes on its own occasions, not chosen per tensor.
SPECIAL_REDUCTIONS = ("update_l2", "value", "count")


def _json_value(value: float):
    # JSON has no NaN/Infinity: write them as strings and read them back as floats.
    value = float(value)
    return value if math.isfinite(value) else str(value)


class RecordingWriter:
    """Appends scalars to a recording folder's ``tensors.jsonl`` (line-buffered)."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._file = open(self.directory / TENSORS_FILE, "a", encoding="utf-8", buffering=1)

    def write(self, step: int, mode: str, collection: str, tensor: str, reduction: str, value: float,
              wall_time: float) -> None:
        """Append one scalar."""
        self._file.write(json.dumps({
            "step": int(step), "mode": mode, "collection": collection, "tensor": tensor,
            "reduction": reduction, "value": _json_value(value), "wall_time": round(float(wall_time), 4),
        }) + "\n")

    def write_run(self, facts: dict) -> None:
        """Write ``run.json`` (what was recorded, the run's facts)."""
        (self.directory / RUN_FILE).write_text(json.dumps(facts, indent=2, default=str), encoding="utf-8")

    def close(self) -> None:
        """Flush and close the file."""
        if not self._file.closed:
            self._file.close()


@dataclass
class Recording:
    """A recording read back: the scalars as a frame (columns :data:`COLUMNS`) and the run's facts.

    Rules read it through :meth:`series` and :meth:`select` only, so they run the same on a
    recording read from disk and on a frame built in a unit test.
    """

    frame: pd.DataFrame
    run: dict = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: list[dict], run: dict | None = None) -> "Recording":
        """A recording from scalar rows (dicts with the keys of :data:`COLUMNS`; ``mode`` defaults to
        ``train`` and ``wall_time`` to the step number)."""
        frame = pd.DataFrame(rows, columns=COLUMNS)
        frame["mode"] = frame["mode"].fillna("train")
        frame["wall_time"] = pd.to_numeric(frame["wall_time"], errors="coerce").fillna(frame["step"]).astype(float)
        frame["value"] = frame["value"].astype(float)
        frame["step"] = frame["step"].astype(int)
        return cls(frame, run or {})

    @classmethod
    def load(cls, directory: Path | str) -> "Recording":
        """Read a recording folder.

        Raises:
            FileNotFoundError: the folder has no ``tensors.jsonl``.
        """
        from sagestack.lazy import read_jsonl

        directory = Path(directory)
        rows = read_jsonl(directory / TENSORS_FILE)  # a line cut short by a crash is skipped
        run_path = directory / RUN_FILE
        run = json.loads(run_path.read_text(encoding="utf-8")) if run_path.is_file() else {}
        return cls.from_rows(rows, run)

    def select(self, collection: str | None = None, reduction: str | None = None, mode: str | None = None,
               tensor_regex: str | None = None) -> pd.DataFrame:
        """Rows matching every filter given (``tensor_regex`` is matched with ``re.search``)."""
        frame = self.frame
        if collection is not None:
            frame = frame[frame["collection"] == collection]
        if reduction is not None:
            frame = frame[frame["reduction"] == reduction]
        if mode is not None:
            frame = frame[frame["mode"] == mode]
        if tensor_regex:
            pattern = re.compile(tensor_regex)
            frame = frame[[bool(pattern.search(name)) for name in frame["tensor"]]]
        return frame

    def series(self, collection: str, tensor: str, reduction: str, mode: str | None = "train") -> pd.Series:
        """One tensor's reduction over steps (index: step, sorted)."""
        rows = self.select(collection, reduction, mode)
        rows = rows[rows["tensor"] == tensor]
        return rows.groupby("step")["value"].last().sort_index()

    def tensors(self, collection: str, reduction: str | None = None) -> list[str]:
        """Names of the tensors recorded in a collection (with that reduction), in first-seen order."""
        return list(dict.fromkeys(self.select(collection, reduction)["tensor"]))
