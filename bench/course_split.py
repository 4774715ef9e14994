"""The BlazingText train/validation files the benchmarks train on.

The course's own split (``blazingtext/train.txt`` and ``validation.txt`` in ``../shared/data``
or ``SAGESTACK_DATA``) when it is there; otherwise (a bare clone: only the two review CSVs are
embedded) the same 90/10 proportions made by ``sagestack data prepare`` from reviews_balanced.csv.
"""

from __future__ import annotations

from pathlib import Path

from sagestack.config import Settings
from sagestack.data import prepare_dataset, resolve_dataset
from sagestack.errors import DataError


def blazingtext_split(settings: Settings, work_dir: Path) -> tuple[Path, Path]:
    """``(train.txt, validation.txt)`` in fastText format; prints which split it is."""
    try:
        train = resolve_dataset(settings=settings, name="blazingtext/train.txt", use_embedded=False).path
        validation = resolve_dataset(settings=settings, name="blazingtext/validation.txt", use_embedded=False).path
        print(f"split: the course's BlazingText files ({train.parent})")
        return train, validation
    except DataError:
        reviews = resolve_dataset(settings=settings).path
        prepared = prepare_dataset(reviews, Path(work_dir) / "split", validation_fraction=0.1, test_fraction=0.0)
        print(f"split: the course's files are not here; a 90/10 split of {reviews} by sagestack data prepare")
        return prepared.files["train"]["fasttext"], prepared.files["validation"]["fasttext"]
