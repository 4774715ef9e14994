"""Reviewed labels into the next training set (``sagestack pipeline run --include-reviewed``).

Completed loops are matched to the dataset by review text (whitespace-normalised, as datasets are
loaded): a reviewed label overrides the dataset's, and a reviewed review the dataset lacks is added
(with the product category its loop recorded, else :data:`UNKNOWN_CATEGORY`). When one text was
reviewed more than once, the latest completed loop wins. What was used is written as a snapshot
(loop, reviewers, the model version that asked) that the registered model version carries.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from sagestack.data.atomic import atomic_file
from sagestack.data.reviews import PRODUCT_CATEGORY, REVIEW_BODY, SENTIMENT, clean_text
from sagestack.errors import DataError
from sagestack.review.store import ReviewStore

UNKNOWN_CATEGORY = "Unknown"
SNAPSHOT_COLUMNS = ["loop", "flow", REVIEW_BODY, SENTIMENT, "original", "initial_value", "reviewers",
                    "model_name", "model_version", "ended"]


SENTIMENT_LABELS = frozenset({"-1", "0", "1"})


def reviewed_labels(store: ReviewStore, flow: str | None = None) -> pd.DataFrame:
    """One row per reviewed text (the latest completed loop): :data:`SNAPSHOT_COLUMNS` less ``original``,
    plus ``product_category`` (the loop's, or empty).

    Only flows whose labels are sentiments (-1, 0, 1) count: a flow asking something else (say
    ``--labels pos,neg``) labels another task and is left out.
    """
    sentiment_flows = {f.name for f in store.flows() if set(f.labels) <= SENTIMENT_LABELS}
    rows = [{
        "loop": loop.name, "flow": loop.flow, REVIEW_BODY: clean_text(loop.review), SENTIMENT: loop.label,
        "initial_value": loop.initial_value, "reviewers": ";".join(a["reviewer"] for a in loop.answers),
        "model_name": loop.model.get("name"), "model_version": loop.model.get("version"), "ended": loop.ended,
        PRODUCT_CATEGORY: loop.facet or "",
    } for loop in store.completed(flow) if loop.flow in sentiment_flows]  # oldest first: "last" is the latest
    frame = pd.DataFrame(rows, columns=[c for c in SNAPSHOT_COLUMNS if c != "original"] + [PRODUCT_CATEGORY])
    return frame.drop_duplicates(REVIEW_BODY, keep="last").reset_index(drop=True)


def apply_reviewed(reviews: pd.DataFrame, reviewed: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Merge reviewed labels into validated reviews (``sentiment`` int, ``review_body``, ``product_category``).

    Returns:
        ``(merged, snapshot, summary)``: the reviews with reviewed labels applied and unseen
        reviewed texts appended; one snapshot row per reviewed text used (with the dataset's
        ``original`` label, empty for added ones); ``{"loops", "relabelled", "confirmed", "added"}``.

    Raises:
        DataError: a reviewed label that is not a sentiment of the dataset (-1, 0 or 1).
    """
    if reviewed.empty:
        return reviews, pd.DataFrame(columns=SNAPSHOT_COLUMNS), {"loops": 0, "relabelled": 0, "confirmed": 0, "added": 0}
    labels = pd.to_numeric(reviewed[SENTIMENT], errors="coerce")
    allowed = set(int(v) for v in reviews[SENTIMENT].unique()) | {-1, 0, 1}
    bad = labels.isna() | ~labels.isin(allowed)
    if bad.any():
        raise DataError(f"reviewed label(s) {sorted(set(reviewed.loc[bad, SENTIMENT]))[:5]} are not sentiments "
                        f"({sorted(allowed)}); review with a flow whose labels are -1,0,1")
    reviewed = reviewed.assign(**{SENTIMENT: labels.astype(int)})
    by_text = dict(zip(reviewed[REVIEW_BODY], reviewed[SENTIMENT]))
    merged = reviews.copy()
    matched = merged[REVIEW_BODY].isin(by_text)
    original = merged.loc[matched].drop_duplicates(REVIEW_BODY).set_index(REVIEW_BODY)[SENTIMENT]
    merged.loc[matched, SENTIMENT] = merged.loc[matched, REVIEW_BODY].map(by_text).astype(int)
    fresh = reviewed[~reviewed[REVIEW_BODY].isin(set(reviews[REVIEW_BODY]))]
    added = pd.DataFrame({SENTIMENT: fresh[SENTIMENT].astype(int), REVIEW_BODY: fresh[REVIEW_BODY],
                          PRODUCT_CATEGORY: fresh[PRODUCT_CATEGORY].replace("", UNKNOWN_CATEGORY)})
    merged = pd.concat([merged, added], ignore_index=True)
    snapshot = reviewed.assign(original=reviewed[REVIEW_BODY].map(original))[SNAPSHOT_COLUMNS]
    changed = snapshot["original"].notna() & (snapshot["original"] != snapshot[SENTIMENT])
    summary = {"loops": int(len(reviewed)), "relabelled": int(changed.sum()),
               "confirmed": int((snapshot["original"].notna() & ~changed).sum()), "added": int(len(added))}
    return merged, snapshot, summary


def write_snapshot(snapshot: pd.DataFrame, folder: Path) -> dict:
    """Write the snapshot as ``<folder>/<sha256>.csv`` (content-addressed: the same labels, the same
    file); returns ``{"path", "sha256", "reviewers", "asked_by"}``."""
    text = snapshot.to_csv(index=False)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    path = Path(folder) / f"{digest}.csv"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    reviewers = sorted({r for cell in snapshot["reviewers"].dropna() for r in str(cell).split(";") if r})
    asked = sorted({f"{n}/{v}" for n, v in zip(snapshot["model_name"], snapshot["model_version"])
                    if isinstance(n, str) and n and v is not None and str(v) not in ("", "nan", "None")})
    return {"path": str(path.resolve()), "sha256": digest, "reviewers": reviewers, "asked_by": asked}


def pipeline_fingerprint(settings) -> str:
    """:func:`reviewed_fingerprint` of the store a pipeline's steps will read (``--include-reviewed``):
    the caller's, since the steps get the caller's settings."""
    from sagestack.review.store import review_store

    return reviewed_fingerprint(review_store(settings))


def reviewed_fingerprint(store: ReviewStore, flow: str | None = None) -> str:
    """A hash of the reviewed labels as they stand: it changes when a loop completes, so a pipeline
    step that includes them is not served from the cache of an older state."""
    frame = reviewed_labels(store, flow)
    return hashlib.sha256(json.dumps(frame[["loop", REVIEW_BODY, SENTIMENT]].values.tolist()).encode()).hexdigest()
