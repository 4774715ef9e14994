"""The fastText / BlazingText supervised input format: ``__label__<label> <tokens>``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sagestack.data.tokenize import course_tokenize

LABEL_PREFIX = "__label__"


def to_fasttext_lines(frame: pd.DataFrame, label: str = "sentiment", text: str = "review_body") -> list[str]:
    """Return one ``__label__X tokens`` line per row, tokenized as the course did."""
    return [f"{LABEL_PREFIX}{lab} {course_tokenize(body)}" for lab, body in zip(frame[label], frame[text])]


def write_fasttext(frame: pd.DataFrame, path: Path, label: str = "sentiment", text: str = "review_body") -> int:
    """Write the rows in fastText format to ``path`` (UTF-8, one line each); return the line count."""
    lines = to_fasttext_lines(frame, label, text)
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(lines)


def read_fasttext(path: Path) -> tuple[list[str], list[str]]:
    """Read a fastText supervised file; return (labels without the prefix, texts).

    Lines without a label are kept with the label ``""``; blank lines are skipped.
    """
    labels, texts = [], []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        first, _, rest = line.partition(" ")
        if first.startswith(LABEL_PREFIX):
            labels.append(first[len(LABEL_PREFIX) :])
            texts.append(rest)
        else:
            labels.append("")
            texts.append(line)
    return labels, texts
