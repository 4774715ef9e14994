"""The data-preparation step: load → validate → (balance) → split → write CSV + fastText files."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from sagestack import __version__
from sagestack.data.atomic import atomic_dir, sha256_file
from sagestack.data.fasttext_format import write_fasttext
from sagestack.data.reviews import DEFAULT_LABELS, SENTIMENT, load_reviews
from sagestack.data.split import balance_by_label, stratified_split

SPLITS = ("train", "validation", "test")
MANIFEST = "manifest.json"


@dataclass
class PreparedData:
    """What :func:`prepare_dataset` wrote. ``files[split]`` has ``csv`` and ``fasttext`` paths."""

    out_dir: Path
    source: Path
    source_sha256: str
    counts: dict[str, dict[str, int]]
    files: dict[str, dict[str, Path]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-serialisable summary."""
        return {
            "out_dir": str(self.out_dir),
            "source": str(self.source),
            "source_sha256": self.source_sha256,
            "counts": self.counts,
            "files": {s: {k: str(v) for k, v in f.items()} for s, f in self.files.items()},
        }


def prepare_dataset(
    input_path: Path | str,
    out_dir: Path | str,
    *,
    labels: Sequence[int] = DEFAULT_LABELS,
    balance: bool = False,
    validation_fraction: float = 0.05,
    test_fraction: float = 0.05,
    seed: int = 42,
    overwrite: bool = False,
) -> PreparedData:
    """Prepare a review CSV for training.

    Writes ``{train,validation,test}.csv`` (course layout), ``{train,validation,test}.txt``
    (fastText format, course tokenization) and ``manifest.json`` (source, sha256, counts,
    parameters) into ``out_dir``. The directory appears only when everything is written.

    Args:
        input_path: a CSV in the course or raw layout.
        out_dir: the output directory (replaced if it exists).
        labels: allowed sentiment values.
        balance: down-sample every label to the rarest one first.
        validation_fraction: share of rows for validation.
        test_fraction: share of rows for test.
        seed: random seed for balancing and splitting.

    Returns:
        What was written.

    Raises:
        DataError: the input fails validation (nothing is written).
    """
    input_path, out_dir = Path(input_path), Path(out_dir)
    loaded = load_reviews(input_path, labels=labels)
    frame = balance_by_label(loaded.frame, seed=seed) if balance else loaded.frame
    splits = stratified_split(
        frame, validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed
    )
    result = PreparedData(out_dir=out_dir, source=input_path.resolve(), source_sha256=sha256_file(input_path), counts={})
    with atomic_dir(out_dir, command="data prepare", overwrite=overwrite) as tmp:
        for name in SPLITS:
            part = getattr(splits, name)
            part.to_csv(tmp / f"{name}.csv", index=False)
            write_fasttext(part, tmp / f"{name}.txt")
            result.counts[name] = {str(k): int(v) for k, v in sorted(part[SENTIMENT].value_counts().items())}
            result.files[name] = {"csv": out_dir / f"{name}.csv", "fasttext": out_dir / f"{name}.txt"}
        manifest = {
            **result.to_dict(),
            "layout": loaded.layout,
            "dropped_empty_reviews": loaded.dropped_empty,
            "parameters": {
                "labels": list(labels),
                "balance": balance,
                "validation_fraction": validation_fraction,
                "test_fraction": test_fraction,
                "seed": seed,
            },
            "sagestack_version": __version__,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return result
