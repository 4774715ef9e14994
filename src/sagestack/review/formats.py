"""Loops in and out: a CSV of every loop, and Label Studio's JSON task format (an adapter: Label
Studio itself is not a dependency).

A Label Studio task is ``{"data": {"text": …, "loop": …, "initial_value": …}, "annotations": [...],
"predictions": [...]}``; an annotation's ``result`` holds a ``choices`` value (the label) and its
``completed_by`` names the annotator. Exported tasks carry the loop's name, so annotations made in
Label Studio come back to the same loops; a task without one starts a new loop on import.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sagestack.data.atomic import atomic_file
from sagestack.errors import DataError
from sagestack.review.store import MAX_REVIEW_CHARS, NAME, AlreadyAnswered, LoopClosed, LoopInput, ReviewStore, _iso

FORMATS = ("csv", "label-studio", "ground-truth")
FROM_NAME, TO_NAME = "sentiment", "text"
CSV_COLUMNS = ["loop", "flow", "status", "review", "initial_value", "confidence", "label", "decided_by", "answers",
               "model_name", "model_version", "inference_id", "source", "created", "ended"]


def export_loops(store: ReviewStore, out: Path, *, fmt: str, flow: str | None = None, status: str | None = None,
                 categories: dict[str, str] | None = None) -> int:
    """Write the loops (of one flow / status, when given) to ``out``; returns how many.

    Formats: ``csv`` (one row per loop, its answers), ``label-studio`` (JSON tasks), and
    ``ground-truth``: the completed loops that came from the endpoint as ``sagestack monitor run
    --ground-truth`` reads them (``inference_id``, ``item``, ``sentiment``, ``product_category``),
    the category from the loop or, by review text, from ``categories`` (e.g. the feature store's).

    Raises:
        DataError: an unknown format.
    """
    if fmt not in FORMATS:
        raise DataError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if flow is not None:
        store.flow(flow)  # an unknown flow is an error, not an empty file
    if fmt == "ground-truth":
        status = "Completed"
    loops = list(reversed(store.loops(flow=flow, status=status, limit=10**9)))  # oldest first
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as tmp:
        if fmt == "ground-truth":
            import pandas as pd

            from sagestack.data.reviews import clean_text

            loops = [loop for loop in loops if loop.inference_id]
            pd.DataFrame([{
                "inference_id": loop.inference_id, "item": loop.item or 0, "sentiment": loop.label,
                "product_category": loop.facet or (categories or {}).get(clean_text(loop.review), ""),
            } for loop in loops], columns=["inference_id", "item", "sentiment", "product_category"]).to_csv(tmp, index=False)
        elif fmt == "csv":
            import pandas as pd

            pd.DataFrame([{
                "loop": loop.name, "flow": loop.flow, "status": loop.status, "review": loop.review,
                "initial_value": loop.initial_value, "confidence": loop.confidence, "label": loop.label,
                "decided_by": loop.decided_by, "answers": ";".join(f"{a['reviewer']}={a['label']}" for a in loop.answers),
                "model_name": loop.model.get("name"), "model_version": loop.model.get("version"),
                "inference_id": loop.inference_id, "source": loop.source,
                "created": _iso(loop.created), "ended": _iso(loop.ended),  # ISO 8601 (UTC), as describe shows them
            } for loop in loops], columns=CSV_COLUMNS).to_csv(tmp, index=False)
        else:
            tasks = [{
                "id": number,
                # The consolidated label (and how it was decided: majority or a tie-break) travels with the task.
                "data": {"text": loop.review, "loop": loop.name, "flow": loop.flow, "initial_value": loop.initial_value,
                         "label": loop.label, "decided_by": loop.decided_by},
                "annotations": [{"completed_by": {"email": a["reviewer"]}, "was_cancelled": False,
                                 "result": [_choice(a["label"])]} for a in loop.answers],
                "predictions": ([{"model_version": str(loop.model.get("version") or ""), "score": loop.confidence,
                                  "result": [_choice(loop.initial_value)]}] if loop.initial_value is not None else []),
            } for number, loop in enumerate(loops, start=1)]
            tmp.write_text(json.dumps(tasks, indent=1, ensure_ascii=False), encoding="utf-8")
    return len(loops)


def known_categories(settings) -> dict[str, str]:
    """Review text -> product category of every review in the home's feature store (empty without one):
    where a ground-truth export finds the facet an endpoint request did not carry."""
    from sagestack.features import read_features

    table = read_features(settings)
    return {} if table is None else dict(zip(table["review_body"], table["product_category"]))


def _choice(label: str) -> dict:
    return {"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices", "value": {"choices": [label]}}


@dataclass
class ImportResult:
    """What an import did: loops started, answers recorded, answers left out (and why)."""

    started: int = 0
    answers: int = 0
    skipped: list[str] | None = None

    def to_dict(self) -> dict:
        return {"started": self.started, "answers": self.answers, "skipped": self.skipped or []}


def import_label_studio(store: ReviewStore, path: Path, *, flow: str) -> ImportResult:
    """Bring a Label Studio JSON export into ``flow``: each annotation becomes an answer of the task's
    loop (a task without a known loop starts one). The whole file is checked before anything is
    written; answers the store refuses (a reviewer's second answer, a closed loop) are reported in
    ``skipped``.

    Raises:
        DataError: not JSON, not a list of tasks, a task without text, an annotation without a
            choice, or a label outside the flow's labels.
    """
    labels = store.flow(flow).labels
    try:
        tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"no file {path}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a Label Studio JSON export: {exc}") from None
    if not isinstance(tasks, list):
        raise DataError(f"{path} is not a Label Studio JSON export: it should be a list of tasks, not a "
                        f"{type(tasks).__name__}")
    plan = []
    for number, task in enumerate(tasks, start=1):
        where = f"{path}: task {number}"
        data = task.get("data") if isinstance(task, dict) else None
        text = data.get("text") or data.get("review") if isinstance(data, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where} has no data.text (the review to label)")
        if len(" ".join(text.split())) > MAX_REVIEW_CHARS:
            raise DataError(f"{where}: data.text is longer than {MAX_REVIEW_CHARS} characters")
        annotations = task.get("annotations") or []
        if not isinstance(annotations, list):
            raise DataError(f"{where}: annotations must be a list")
        answers = []
        for annotation in annotations:
            if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
                continue
            label = _annotation_label(annotation, where)
            if label not in labels:
                raise DataError(f"{where}: label {label!r} is not one of the flow's labels ({', '.join(labels)})")
            answers.append((_annotator(annotation), label))
        loop = data.get("loop")
        plan.append((loop if isinstance(loop, str) and NAME.match(loop) else None, text, data.get("initial_value"),
                     answers))

    result = ImportResult(skipped=[])
    for loop, text, initial, answers in plan:
        owner = _flow_of(store, loop) if loop is not None else None
        if owner is not None and owner != flow:  # never touch another flow's loops
            result.skipped.append(f"task of loop {loop}: that loop belongs to flow {owner}, not {flow}")
            continue
        if owner is None:
            initial = str(initial) if initial is not None and str(initial) in labels else None
            loop = store.start_loops(flow, [LoopInput(review=text, initial_value=initial, source="label-studio",
                                                      name=loop)])[0]
            result.started += 1
        for reviewer, label in answers:
            try:
                store.answer(loop, reviewer, label)
                result.answers += 1
            except (AlreadyAnswered, LoopClosed) as exc:
                result.skipped.append(str(exc))
    return result


def _flow_of(store: ReviewStore, name: str) -> str | None:
    """The flow a loop of that name belongs to (None: no such loop)."""
    from sagestack.review.store import UnknownLoop

    try:
        return store.loop(name).flow
    except UnknownLoop:
        return None


def _annotation_label(annotation: dict, where: str) -> str:
    results = annotation.get("result") or []
    for result in results if isinstance(results, list) else []:
        if isinstance(result, dict) and result.get("type") == "choices":
            choices = (result.get("value") or {}).get("choices") if isinstance(result.get("value"), dict) else None
            if isinstance(choices, list) and len(choices) == 1:
                return str(choices[0])
    raise DataError(f"{where}: an annotation has no single choice (result of type 'choices' with one value)")


def _annotator(annotation: dict) -> str:
    from sagestack.review.store import check_reviewer

    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    return check_reviewer(f"label-studio {who}" if isinstance(who, int) or (isinstance(who, str) and who.isdigit())
                          else str(who or "label-studio"))
