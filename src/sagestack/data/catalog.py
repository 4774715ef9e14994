"""A folder of CSV datasets that a browser may name, list and add to.

Names, never paths: a caller (the web console) passes a file *name*; :meth:`DataCatalog.path`
maps it to a file inside the folder (or to one of the course's datasets, which the resolver
finds in ``SAGESTACK_DATA`` or in the package), and refuses anything that would leave the folder.
Uploads are size-limited, must parse as a CSV with a header and a row, and land atomically.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sagestack.config import Settings
from sagestack.errors import DataError

# The datasets every catalog lists: the course's two CSVs (shipped inside the package).
COURSE_DATASETS = ("reviews_balanced.csv", "reviews_clarify_lab.csv")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,119}\.csv$")
_CHUNK = 1 << 20
STALE_UPLOAD_SECONDS = 86400


class UploadTooLarge(DataError):
    """An upload went over the catalog's size limit."""


@dataclass(frozen=True)
class Dataset:
    """One dataset of the catalog: its name, where it comes from, its file."""

    name: str
    source: str  # "upload", "shared", "embedded", "env", ...
    path: Path

    @property
    def size(self) -> int:
        """Its size in bytes."""
        return self.path.stat().st_size


class DataCatalog:
    """The CSVs in ``folder`` (uploads) plus the course's datasets.

    Args:
        folder: the data directory; created if missing.
        settings: how the course's datasets are resolved (``SAGESTACK_DATA``, shared, embedded).
        max_upload_bytes: the largest upload accepted.
    """

    def __init__(self, folder: Path, settings: Settings, *, max_upload_bytes: int = 100 << 20):
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.max_upload_bytes = max_upload_bytes
        # An upload cut short by a crash leaves its temporary file; a day later nobody is writing it.
        for stale in self.folder.glob(".*.upload"):
            try:
                if time.time() - stale.stat().st_mtime > STALE_UPLOAD_SECONDS:
                    stale.unlink()
            except OSError:
                continue

    def list(self) -> list[Dataset]:
        """Every dataset a user may pick: the folder's CSVs first, then the course's (an upload of
        the same name stands in for a course dataset)."""
        found = [Dataset(p.name, "upload", p) for p in sorted(self.folder.glob("*.csv")) if self._inside(p)]
        names = {d.name for d in found}
        for name in COURSE_DATASETS:
            if name not in names:
                try:
                    found.append(self._course(name))
                except DataError:
                    continue  # not found anywhere (SAGESTACK_DATA points elsewhere): the rest still lists
        return found

    def _inside(self, path: Path) -> bool:
        """A regular file of the folder itself (a link out of it, or a broken one, is not offered)."""
        try:
            return path.is_file() and path.resolve().parent == self.folder
        except (OSError, RuntimeError):
            return False

    def _course(self, name: str) -> Dataset:
        from sagestack.data.resolver import resolve_dataset

        resolved = resolve_dataset(settings=self.settings, name=name)
        return Dataset(name, resolved.source, resolved.path)

    def path(self, name: str) -> Path:
        """The file of dataset ``name``.

        Raises:
            DataError: the name is not a plain CSV file name, would leave the folder, or names
                no dataset of the catalog.
        """
        if not isinstance(name, str) or not _SAFE_NAME.match(name) or name in (".", ".."):
            raise DataError(f"'{name}' is not a dataset name; pick one of the listed CSV files")
        try:
            candidate = (self.folder / name).resolve()
        except (OSError, RuntimeError):  # a symlink loop
            raise DataError(f"'{name}' cannot be read (a link that points at itself?); pick another file") from None
        if candidate.parent != self.folder:
            raise DataError(f"'{name}' is outside the data directory; pick one of the listed CSV files")
        if candidate.is_file():
            return candidate
        if name in COURSE_DATASETS:
            return self._course(name).path
        raise DataError(f"no dataset named '{name}' in {self.folder}; upload it or pick one of the listed files")

    def add_upload(self, filename: str, stream: BinaryIO) -> Dataset:
        """Store an uploaded CSV under its (checked) file name, replacing an earlier upload of that name.

        The bytes go to a temporary file first; only a complete, readable CSV of at most
        ``max_upload_bytes`` is renamed into the folder, so a failed upload leaves nothing.

        Raises:
            UploadTooLarge: the upload is larger than ``max_upload_bytes``.
            DataError: the name is not a ``.csv`` file name, or the content is not a CSV with a
                header and at least one row.
        """
        from sagestack.data.reviews import read_csv_checked

        name = Path(filename or "").name
        if not _SAFE_NAME.match(name):
            raise DataError(f"'{filename}' is not a CSV file name; upload a file whose name ends in .csv "
                            "(letters, digits, spaces, '.', '_' or '-')")
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".upload", dir=self.folder)
        tmp = Path(tmp_name)
        try:
            size = 0
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    size += len(chunk)
                    if size > self.max_upload_bytes:
                        raise UploadTooLarge(f"'{name}' is larger than the upload limit of "
                                             f"{self.max_upload_bytes / 1e6:g} MB; upload a smaller sample")
                    out.write(chunk)
            frame = read_csv_checked(tmp)
            if frame.empty or len(frame.columns) < 1:
                raise DataError(f"'{name}' has a header but no rows; a dataset needs at least one row")
            if any(str(c).startswith("Unnamed: ") or not str(c).strip() for c in frame.columns):
                raise DataError(f"'{name}' has a column without a name; its first line must name every column")
            target = self.folder / name
            os.chmod(tmp, 0o644)
            tmp.replace(target)
        except DataError as exc:
            # read_csv_checked names the temporary file; say the user's file name instead.
            raise type(exc)(str(exc).replace(str(tmp), f"'{name}'")) from None
        finally:
            tmp.unlink(missing_ok=True)
        return Dataset(name, "upload", target)
