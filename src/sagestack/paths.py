"""Path helpers that the settings and the output-folder checks share (and nothing else imports)."""

from __future__ import annotations

from pathlib import Path


def nearest_existing(path: Path) -> Path:
    """The closest of ``path``'s ancestors (``path`` excluded) that exists: where making ``path`` starts."""
    parent = Path(path).parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent
