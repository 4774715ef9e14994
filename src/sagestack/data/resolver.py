"""Finding a dataset: explicit path (or the name of an embedded dataset) → ``SAGESTACK_DATA`` →
the copy embedded in the package → download.

The embedded copies (the two course CSVs) make a bare clone work with no other folder: ``--data
reviews_balanced.csv`` finds the embedded copy from any working directory, unless a file of
that name is there (an existing path always wins). Nothing outside the clone or the user's
explicit settings is searched: a folder that happens to sit beside the working directory never
stands in for a dataset. The download (for other files) goes to ``$SAGESTACK_HOME/cache/data``
and is accepted only if its sha256 matches; a mismatch leaves nothing in the cache.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from sagestack.config import Settings
from sagestack.data.atomic import atomic_file, sha256_file
from sagestack.data.embedded import embedded_dataset, embedded_names
from sagestack.errors import DataError

DEFAULT_DATASET = "reviews_balanced.csv"


@dataclass(frozen=True)
class ResolvedData:
    """Where a dataset was found and how."""

    path: Path
    source: str  # "explicit", "env", "shared" (a search_dirs folder), "embedded", "cache" or "download"


def download(url: str, sha256: str, target: Path, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``target`` atomically, verifying its sha256.

    Raises:
        DataError: the download fails or the checksum does not match (nothing is kept).
    """
    try:
        with atomic_file(target) as tmp:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
            actual = sha256_file(tmp)
            if actual != sha256.lower():
                raise DataError(
                    f"download from {url} has sha256 {actual}, expected {sha256}; check SAGESTACK_DATA_URL/SHA256"
                )
    except urllib.error.HTTPError as exc:
        raise DataError(f"could not download {url} (HTTP {exc.code} {exc.reason}); check the URL or set SAGESTACK_DATA") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"could not download {url} ({reason}); check the URL or set SAGESTACK_DATA") from None
    return target


def resolve_dataset(
    path: Path | str | None = None,
    *,
    settings: Settings,
    name: str = DEFAULT_DATASET,
    search_dirs: list[Path] | None = None,
    use_embedded: bool = True,
) -> ResolvedData:
    """Find a dataset file.

    Args:
        path: what the user passed as ``--data``: an existing file (used as it is), or else a
            dataset name (``reviews_balanced.csv``, see :func:`list_datasets`) looked up in
            ``SAGESTACK_DATA`` and among the embedded copies.
        settings: supplies ``data_dir`` (``SAGESTACK_DATA``), ``data_url``/``data_sha256``
            and the cache directory.
        name: the file name to look for when no ``path`` is given (may contain ``/``).
        search_dirs: more data folders to try after ``SAGESTACK_DATA`` (default: none).
        use_embedded: fall back to the copy embedded in the package (for the course's CSVs).

    Returns:
        The resolved file and which rule found it.

    Raises:
        DataError: ``path`` is neither a file nor a known dataset name, or the dataset is found
            nowhere and cannot be downloaded.
    """
    if path is not None:
        return _resolve_given(Path(path), settings, use_embedded)
    if settings.data.dir is not None:
        env_path = settings.data.dir / name if settings.data.dir.is_dir() else settings.data.dir
        if not env_path.is_file():
            raise DataError(f"SAGESTACK_DATA points to {settings.data.dir}, which has no {name}; fix the variable")
        return ResolvedData(env_path, "env")
    for directory in search_dirs or ():
        if (directory / name).is_file():
            return ResolvedData(directory / name, "shared")
    if use_embedded and (embedded := embedded_dataset(name, settings.cache_dir)) is not None:
        return ResolvedData(embedded, "embedded")
    cached = settings.cache_dir / "data" / name
    if cached.is_file() and settings.data.sha256 and sha256_file(cached) == settings.data.sha256.lower():
        return ResolvedData(cached, "cache")
    if settings.data.url:
        if not settings.data.sha256:
            raise DataError("SAGESTACK_DATA_URL is set without SAGESTACK_DATA_SHA256; set the expected checksum")
        return ResolvedData(download(settings.data.url, settings.data.sha256, cached), "download")
    raise DataError(
        f"dataset {name} not found (no --data given, SAGESTACK_DATA unset, not embedded); "
        "pass --data FILE or a name from `sagestack data list`, set SAGESTACK_DATA, "
        "or set SAGESTACK_DATA_URL and SAGESTACK_DATA_SHA256"
    )


def _resolve_given(path: Path, settings: Settings, use_embedded: bool) -> ResolvedData:
    """``--data PATH``: the file itself, else a dataset of that name in ``SAGESTACK_DATA`` or the package."""
    if path.is_file():
        return ResolvedData(path, "explicit")
    if not path.is_absolute():
        data_dir = settings.data.dir
        if data_dir is not None and data_dir.is_dir() and (data_dir / path).is_file():
            return ResolvedData(data_dir / path, "env")
        if use_embedded and (embedded := embedded_dataset(path.as_posix(), settings.cache_dir)) is not None:
            return ResolvedData(embedded, "embedded")
    if path.is_dir():
        raise DataError(f"--data {path} is a folder; pass a data file or a name from `sagestack data list`")
    raise DataError(f"data file not found: {path}; pass an existing file or a dataset name from `sagestack data list` "
                    f"({', '.join(embedded_names())})")


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset that ``--data NAME`` finds: its name, size, content hash and where it comes from."""

    name: str
    rows: int
    bytes: int
    sha256: str
    source: str
    path: Path

    def to_dict(self) -> dict:
        """JSON-ready fields (the path as a string)."""
        return {"name": self.name, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256,
                "source": self.source, "path": str(self.path)}


def count_csv_rows(path: Path) -> int:
    """Data rows of a CSV (quoted fields may span lines; the header is not counted)."""
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        return max(sum(1 for _ in csv.reader(handle)) - 1, 0)


def list_datasets(settings: Settings) -> list[DatasetInfo]:
    """The datasets a name passed as ``--data`` resolves to: every embedded one, found as
    :func:`resolve_dataset` finds it (a file of that name here, then ``SAGESTACK_DATA``, then the
    package's copy)."""
    found = []
    for name in embedded_names():
        resolved = _resolve_given(Path(name), settings, use_embedded=True)
        found.append(DatasetInfo(name, count_csv_rows(resolved.path), resolved.path.stat().st_size,
                                 sha256_file(resolved.path), resolved.source, resolved.path))
    return found
