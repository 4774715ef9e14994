"""Finding a dataset: explicit path → ``SAGESTACK_DATA`` → ``../shared/data`` → the copy embedded
in the package → download.

The embedded copies (the two course CSVs) make a bare clone work with no shared folder. The
download (for other files) goes to ``$SAGESTACK_HOME/cache/data`` and is accepted only if its
sha256 matches; a mismatch leaves nothing in the cache.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from sagestack.config import Settings
from sagestack.data.atomic import atomic_file, sha256_file
from sagestack.data.embedded import embedded_dataset
from sagestack.errors import DataError

DEFAULT_DATASET = "reviews_balanced.csv"


@dataclass(frozen=True)
class ResolvedData:
    """Where a dataset was found and how."""

    path: Path
    source: str  # "explicit", "env", "shared", "embedded", "cache" or "download"


def shared_data_dirs() -> list[Path]:
    """The ``shared/data`` folders beside the working directory and beside the checkout."""
    checkout = Path(__file__).resolve().parents[3]  # src/sagestack/data/resolver.py -> repo root
    candidates = [Path.cwd().parent / "shared" / "data", checkout.parent / "shared" / "data"]
    unique: list[Path] = []
    for candidate in candidates:
        if candidate not in unique:
            unique.append(candidate)
    return unique


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
        path: an explicit file; if given it must exist.
        settings: supplies ``data_dir`` (``SAGESTACK_DATA``), ``data_url``/``data_sha256``
            and the cache directory.
        name: the file name to look for in data directories (may contain ``/``).
        search_dirs: the shared data folders to try (default: :func:`shared_data_dirs`).
        use_embedded: fall back to the copy embedded in the package (for the course's CSVs).

    Returns:
        The resolved file and which rule found it.

    Raises:
        DataError: the explicit path does not exist, or the dataset is found nowhere and
            cannot be downloaded.
    """
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"data file not found: {path}; pass an existing CSV or set SAGESTACK_DATA")
        return ResolvedData(path, "explicit")
    if settings.data_dir is not None:
        env_path = settings.data_dir / name if settings.data_dir.is_dir() else settings.data_dir
        if not env_path.is_file():
            raise DataError(f"SAGESTACK_DATA points to {settings.data_dir}, which has no {name}; fix the variable")
        return ResolvedData(env_path, "env")
    for directory in shared_data_dirs() if search_dirs is None else search_dirs:
        if (directory / name).is_file():
            return ResolvedData(directory / name, "shared")
    if use_embedded and (embedded := embedded_dataset(name, settings.cache_dir)) is not None:
        return ResolvedData(embedded, "embedded")
    cached = settings.cache_dir / "data" / name
    if cached.is_file() and settings.data_sha256 and sha256_file(cached) == settings.data_sha256.lower():
        return ResolvedData(cached, "cache")
    if settings.data_url:
        if not settings.data_sha256:
            raise DataError("SAGESTACK_DATA_URL is set without SAGESTACK_DATA_SHA256; set the expected checksum")
        return ResolvedData(download(settings.data_url, settings.data_sha256, cached), "download")
    raise DataError(
        f"dataset {name} not found (no path given, SAGESTACK_DATA unset, not in ../shared/data, not embedded); "
        "pass --data, set SAGESTACK_DATA, or set SAGESTACK_DATA_URL and SAGESTACK_DATA_SHA256"
    )
