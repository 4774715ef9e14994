"""Training splits read back from the feature store, written as files every trainer reads."""

from __future__ import annotations

import json
from pathlib import Path

from sagestack.config import Settings
from sagestack.data.reviews import PRODUCT_CATEGORY, REVIEW_BODY, SENTIMENT


def write_training_splits(
    settings: Settings, out_dir: Path, *, review_ids: list[int] | None = None, seed: int = 42
) -> dict:
    """Write train/validation/test (CSV + fastText) from point-in-time training sets read through Feast.

    Training reads exactly what serving reads (the feature store), not the CSV. Rows are
    shuffled (seeded): the store returns them by review id, and data sorted by label (as
    reviews_balanced.csv is) makes fastText's SGD learn one class after another. With
    ``review_ids`` only those reviews are used (the pipeline's own input, not the whole store).

    Returns:
        ``{"counts": {split: {label: rows}}}``; ``out_dir`` appears complete or not at all.
    """
    from sagestack.data.atomic import atomic_dir
    from sagestack.data.fasttext_format import write_fasttext
    from sagestack.features.store import SPLITS, TRAINING_SERVICE, training_sets

    counts = {}
    with atomic_dir(Path(out_dir), command="features splits") as tmp:
        for split, frame in training_sets(settings, SPLITS).items():  # one Feast retrieval, not one per split
            frame = frame[["review_id", SENTIMENT, REVIEW_BODY, PRODUCT_CATEGORY]]
            if review_ids is not None:
                frame = frame[frame["review_id"].isin(set(review_ids))]
            frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
            frame.to_csv(tmp / f"{split}.csv", index=False)
            write_fasttext(frame, tmp / f"{split}.txt")
            counts[split] = {str(k): int(v) for k, v in sorted(frame[SENTIMENT].value_counts().items())}
        manifest = {"source": f"feast:{TRAINING_SERVICE}", "counts": counts}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return {"counts": counts}
