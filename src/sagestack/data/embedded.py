"""The review datasets shipped inside the package, so a bare clone runs with no ``../shared``.

The course's two review CSVs are public domain (Women's E-Commerce Clothing Reviews, CC0) and
small: they are embedded xz-compressed under ``sagestack/data/embedded/``. A pipeline step, the
feature store and lineage all want a real file with a stable content hash, so the copy is
decompressed once into ``$SAGESTACK_HOME/cache/embedded/`` and checked against the sha256 of
the original CSV recorded here.
"""

from __future__ import annotations

import lzma
import shutil
from pathlib import Path

from sagestack.data.atomic import atomic_file, sha256_file
from sagestack.errors import DataError

EMBEDDED_DIR = Path(__file__).resolve().parent / "embedded"
# sha256 of each decompressed CSV: identical to the files in the course's shared data folder.
EMBEDDED_SHA256 = {
    "reviews_balanced.csv": "c30871312c32f87aa72f61bb856478563edae0b526a269b71706260e5254dc49",
    "reviews_clarify_lab.csv": "6367d754c5fb0a34d478074a3729cd04c23ebfbb3ff3d1f2e0e40cd869c173da",
}


def embedded_names() -> list[str]:
    """The dataset file names the package carries."""
    return sorted(EMBEDDED_SHA256)


def embedded_dataset(name: str, cache_dir: Path) -> Path | None:
    """The decompressed embedded copy of ``name`` under ``cache_dir/embedded``, or ``None``.

    Decompresses on first use (atomically) and re-uses a cached copy whose sha256 matches.

    Raises:
        DataError: the packaged copy is damaged (its content does not match the recorded hash).
    """
    expected = EMBEDDED_SHA256.get(name)
    packed = EMBEDDED_DIR / f"{name}.xz"
    if expected is None or not packed.is_file():
        return None
    target = Path(cache_dir) / "embedded" / name
    if target.is_file() and sha256_file(target) == expected:
        return target
    with atomic_file(target) as tmp:
        with lzma.open(packed, "rb") as source, open(tmp, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
        if sha256_file(tmp) != expected:
            raise DataError(f"the embedded copy of {name} is damaged ({packed}); reinstall sagestack")
    return target
