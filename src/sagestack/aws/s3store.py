"""S3 buckets and objects kept under the sagestack home: an SQLite index (``index.db``) of buckets, objects
and multipart uploads, and one file per object body (``blobs/``), written to a temporary name and renamed,
so a reader sees an object whole or not at all and the store survives restarts of the server.

Keys are arbitrary strings (``a`` and ``a/b`` may both exist), so object bodies are not laid out as a folder
tree; :meth:`S3Store.open` gives one object's record and body, opened.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

from sagestack.aws.protocol import AwsError

SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (name TEXT PRIMARY KEY, region TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL, key TEXT NOT NULL, blob TEXT NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL,
    content_type TEXT NOT NULL, metadata TEXT NOT NULL, modified REAL NOT NULL, PRIMARY KEY (bucket, key));
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL, content_type TEXT NOT NULL,
    metadata TEXT NOT NULL, created REAL NOT NULL);
"""
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
MAX_PARTS = 10_000



def parse_s3_uri(uri: str) -> tuple[str, str] | None:
    """``s3://bucket/key/prefix`` -> (bucket, key prefix); None for anything else (each caller says so its own way)."""
    if not isinstance(uri, str) or not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
        return None
    bucket, _, key = uri[5:].partition("/")
    return bucket, key

@dataclass(frozen=True)
class S3Object:
    """One stored object's record (its body is the file at ``path``)."""

    bucket: str
    key: str
    path: Path
    size: int
    etag: str
    content_type: str
    modified: float
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class Listing:
    """One page of a bucket listing: objects, folded common prefixes, and where the next page starts."""

    objects: list[S3Object]
    prefixes: list[str]
    truncated: bool
    last: str | None  # the last key or prefix on the page: the next page starts after it


class S3Store:
    """The buckets and objects of one sagestack home (``home/aws/s3``); safe to share between threads."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        (self.root / "uploads").mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        # One connection per call: the server's threads never share one, and WAL lets readers run beside a writer.
        db = sqlite3.connect(self.root / "index.db", timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            with db:
                yield db
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the write lock from its first statement (``BEGIN IMMEDIATE``): what it
        reads (the blob an object replaces, whether the bucket exists) stays true until it commits."""
        db = sqlite3.connect(self.root / "index.db", timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    # -- buckets -----------------------------------------------------------------------------------------

    def create_bucket(self, name: str, region: str) -> bool:
        """Create bucket ``name``; False when it exists already (the caller decides whether that is an error).

        Raises:
            AwsError: the name is not a valid bucket name (``InvalidBucketName``).
        """
        if not BUCKET_NAME.match(name) or ".." in name:
            raise AwsError("InvalidBucketName", f"the specified bucket is not valid: {name!r}", BucketName=name)
        with self._db() as db:
            return db.execute("INSERT OR IGNORE INTO buckets VALUES (?, ?, ?)", (name, region, time.time())).rowcount == 1

    def bucket(self, name: str) -> tuple[str, float]:
        """The bucket's region and creation time.

        Raises:
            AwsError: no such bucket (``NoSuchBucket``, 404).
        """
        with self._db() as db:
            row = db.execute("SELECT region, created FROM buckets WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise AwsError("NoSuchBucket", "the specified bucket does not exist", 404, BucketName=name)
        return row

    def buckets(self) -> list[tuple[str, float]]:
        """Every bucket's name and creation time, by name."""
        with self._db() as db:
            return db.execute("SELECT name, created FROM buckets ORDER BY name").fetchall()

    def delete_bucket(self, name: str) -> None:
        """Delete an empty bucket.

        Raises:
            AwsError: no such bucket, or it holds objects (``BucketNotEmpty``, 409).
        """
        with self._write() as db:
            if db.execute("SELECT 1 FROM buckets WHERE name = ?", (name,)).fetchone() is None:
                raise AwsError("NoSuchBucket", "the specified bucket does not exist", 404, BucketName=name)
            if db.execute("SELECT 1 FROM objects WHERE bucket = ? LIMIT 1", (name,)).fetchone():
                raise AwsError("BucketNotEmpty", "the bucket you tried to delete is not empty", 409, BucketName=name)
            db.execute("DELETE FROM buckets WHERE name = ?", (name,))

    # -- objects -----------------------------------------------------------------------------------------

    def _new_blob(self, data: bytes) -> tuple[str, Path]:
        name = uuid.uuid4().hex
        path = self.root / "blobs" / name
        temporary = path.with_suffix(".part")
        temporary.write_bytes(data)
        temporary.replace(path)
        return name, path

    def _record(self, bucket: str, key: str, blob: str, size: int, etag: str, content_type: str | None,
                metadata: dict[str, str]) -> S3Object:
        modified = time.time()
        with self._write() as db:
            if db.execute("SELECT 1 FROM buckets WHERE name = ?", (bucket,)).fetchone() is None:
                (self.root / "blobs" / blob).unlink(missing_ok=True)
                raise AwsError("NoSuchBucket", "the specified bucket does not exist", 404, BucketName=bucket)
            old = db.execute("SELECT blob FROM objects WHERE bucket = ? AND key = ?", (bucket, key)).fetchone()
            db.execute("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (bucket, key, blob, size, etag, content_type or DEFAULT_CONTENT_TYPE, json.dumps(metadata),
                        modified))
        if old and old[0] != blob:
            (self.root / "blobs" / old[0]).unlink(missing_ok=True)
        return S3Object(bucket, key, self.root / "blobs" / blob, size, etag, content_type or DEFAULT_CONTENT_TYPE,
                        modified, metadata)

    def put(self, bucket: str, key: str, data: bytes, content_type: str | None = None,
            metadata: dict[str, str] | None = None) -> S3Object:
        """Store ``data`` as ``bucket/key`` (replacing what was there); its ETag is the body's MD5.

        Raises:
            AwsError: no such bucket.
        """
        self.bucket(bucket)
        blob, _ = self._new_blob(data)
        return self._record(bucket, key, blob, len(data), hashlib.md5(data).hexdigest(), content_type, metadata or {})

    def get(self, bucket: str, key: str) -> S3Object:
        """The record of ``bucket/key``.

        Raises:
            AwsError: no such bucket, or no such key (``NoSuchKey``, 404).
        """
        self.bucket(bucket)
        with self._db() as db:
            row = db.execute("SELECT blob, size, etag, content_type, modified, metadata FROM objects "
                             "WHERE bucket = ? AND key = ?", (bucket, key)).fetchone()
        if row is None:
            raise AwsError("NoSuchKey", "the specified key does not exist", 404, Key=key)
        blob, size, etag, content_type, modified, metadata = row
        return S3Object(bucket, key, self.root / "blobs" / blob, size, etag, content_type, modified,
                        json.loads(metadata))

    def open(self, bucket: str, key: str) -> tuple[S3Object, BinaryIO]:
        """The record of ``bucket/key`` and its body, opened (a later replacement of the object unlinks the
        file, so the open body stays whole). Close the body.

        Raises:
            AwsError: no such bucket or key (also when the object was deleted between its look-up and the open).
        """
        for _ in range(2):
            record = self.get(bucket, key)
            try:
                return record, open(record.path, "rb")
            except FileNotFoundError:  # replaced or deleted right after the look-up: look it up again
                continue
        raise AwsError("NoSuchKey", "the specified key does not exist", 404, Key=key)

    def delete(self, bucket: str, key: str) -> None:
        """Delete ``bucket/key``; deleting a key that is not there succeeds, as on S3.

        Raises:
            AwsError: no such bucket.
        """
        self.bucket(bucket)
        with self._write() as db:
            row = db.execute("SELECT blob FROM objects WHERE bucket = ? AND key = ?", (bucket, key)).fetchone()
            db.execute("DELETE FROM objects WHERE bucket = ? AND key = ?", (bucket, key))
        if row:
            (self.root / "blobs" / row[0]).unlink(missing_ok=True)

    def copy(self, source_bucket: str, source_key: str, bucket: str, key: str, content_type: str | None = None,
             metadata: dict[str, str] | None = None) -> S3Object:
        """Copy ``source_bucket/source_key`` to ``bucket/key``, keeping its type and metadata unless new ones
        are given.

        Raises:
            AwsError: no such source bucket or key, or no target bucket.
        """
        self.bucket(bucket)
        source, body = self.open(source_bucket, source_key)
        blob = uuid.uuid4().hex
        temporary = self.root / "blobs" / f"{blob}.part"
        with body, open(temporary, "wb") as out:
            shutil.copyfileobj(body, out)
        temporary.replace(self.root / "blobs" / blob)
        return self._record(bucket, key, blob, source.size, source.etag, content_type or source.content_type,
                            source.metadata if metadata is None else metadata)

    def put_file(self, bucket: str, key: str, path: Path, content_type: str | None = None) -> S3Object:
        """Store the file ``path`` as ``bucket/key``, streamed (never whole in memory); its ETag is its MD5.

        Raises:
            AwsError: no such bucket.
        """
        self.bucket(bucket)
        blob = uuid.uuid4().hex
        temporary = self.root / "blobs" / f"{blob}.part"
        digest, size = hashlib.md5(), 0
        with open(path, "rb") as source, open(temporary, "wb") as out:
            while chunk := source.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        temporary.replace(self.root / "blobs" / blob)
        return self._record(bucket, key, blob, size, digest.hexdigest(), content_type, {})

    def list(self, bucket: str, prefix: str = "", delimiter: str = "", after: str = "",
             max_keys: int = 1000) -> Listing:
        """One page of ``bucket``'s keys under ``prefix``, in UTF-8 byte order, after ``after``.

        With a ``delimiter``, keys that hold it past the prefix fold into one common prefix each, which
        counts once toward ``max_keys``.

        Raises:
            AwsError: no such bucket.
        """
        self.bucket(bucket)
        objects: list[S3Object] = []
        prefixes: list[str] = []
        last = None
        with self._db() as db:
            rows = db.execute(
                "SELECT key, blob, size, etag, content_type, modified FROM objects WHERE bucket = ? AND key > ? "
                "AND substr(key, 1, ?) = ? ORDER BY key", (bucket, after, len(prefix), prefix))
            for key, blob, size, etag, content_type, modified in rows:
                folded = None
                if delimiter:
                    cut = key.find(delimiter, len(prefix))
                    if cut >= 0:
                        folded = key[:cut + len(delimiter)]
                if folded is not None and (folded == last or folded <= after):
                    continue
                if len(objects) + len(prefixes) >= max_keys:
                    return Listing(objects, prefixes, True, last)
                if folded is not None:
                    prefixes.append(folded)
                    last = folded
                else:
                    objects.append(S3Object(bucket, key, self.root / "blobs" / blob, size, etag, content_type,
                                            modified))
                    last = key
        return Listing(objects, prefixes, False, last)

    # -- multipart uploads ---------------------------------------------------------------------------------

    def start_upload(self, bucket: str, key: str, content_type: str | None, metadata: dict[str, str]) -> str:
        """Start a multipart upload to ``bucket/key``; its upload id."""
        self.bucket(bucket)
        upload_id = uuid.uuid4().hex
        (self.root / "uploads" / upload_id).mkdir()
        with self._db() as db:
            db.execute("INSERT INTO uploads VALUES (?, ?, ?, ?, ?, ?)", (upload_id, bucket, key,
                       content_type or DEFAULT_CONTENT_TYPE, json.dumps(metadata), time.time()))
        return upload_id

    def _upload(self, bucket: str, key: str, upload_id: str) -> tuple[str, dict]:
        with self._db() as db:
            row = db.execute("SELECT content_type, metadata FROM uploads WHERE upload_id = ? AND bucket = ? "
                             "AND key = ?", (upload_id, bucket, key)).fetchone()
        if row is None:
            raise AwsError("NoSuchUpload", "the specified multipart upload does not exist", 404, UploadId=upload_id)
        return row[0], json.loads(row[1])

    def put_part(self, bucket: str, key: str, upload_id: str, number: int, data: bytes) -> str:
        """Store part ``number`` (1–10000) of an upload; its ETag (the part's MD5).

        Raises:
            AwsError: no such upload, or a part number out of range (``InvalidArgument``).
        """
        self._upload(bucket, key, upload_id)
        if not 1 <= number <= MAX_PARTS:
            raise AwsError("InvalidArgument", f"part number must be an integer between 1 and {MAX_PARTS}")
        path = self.root / "uploads" / upload_id / str(number)
        temporary = path.with_suffix(".part")
        temporary.write_bytes(data)
        temporary.replace(path)
        return hashlib.md5(data).hexdigest()

    def complete_upload(self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]) -> S3Object:
        """Join the listed parts (number, ETag), in order, into the object; the ETag is S3's ``MD5-of-MD5s-N``.

        Raises:
            AwsError: no such upload; a part missing or with another ETag (``InvalidPart``); parts out of
                order (``InvalidPartOrder``).
        """
        content_type, metadata = self._upload(bucket, key, upload_id)
        numbers = [number for number, _ in parts]
        if not parts or numbers != sorted(set(numbers)):
            raise AwsError("InvalidPartOrder", "the list of parts was not in ascending order")
        folder = self.root / "uploads" / upload_id
        digests = []
        for number, etag in parts:
            path = folder / str(number)
            digest = hashlib.md5(path.read_bytes()).hexdigest() if path.is_file() else None
            if digest is None or digest != etag.strip('"'):
                raise AwsError("InvalidPart", f"part {number} was not uploaded or its ETag does not match")
            digests.append(bytes.fromhex(digest))
        blob = uuid.uuid4().hex
        temporary = self.root / "blobs" / f"{blob}.part"
        with open(temporary, "wb") as out:
            for number, _ in parts:
                with open(folder / str(number), "rb") as part:
                    shutil.copyfileobj(part, out)
        size = temporary.stat().st_size
        temporary.replace(self.root / "blobs" / blob)
        etag = f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(parts)}"
        record = self._record(bucket, key, blob, size, etag, content_type, metadata)
        self.abort_upload(bucket, key, upload_id)
        return record

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        """Drop an upload and its parts.

        Raises:
            AwsError: no such upload.
        """
        self._upload(bucket, key, upload_id)
        with self._db() as db:
            db.execute("DELETE FROM uploads WHERE upload_id = ?", (upload_id,))
        shutil.rmtree(self.root / "uploads" / upload_id, ignore_errors=True)
