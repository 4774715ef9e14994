"""Flows, human loops and answers in one SQLite database under ``SAGESTACK_HOME/review``.

The Augmented AI model, kept: a **flow definition** names the task (its labels, the confidence
threshold below which a prediction goes to people, how many reviewers answer each item); a
**human loop** is one item to review (the review text, the model's prediction as the initial
value, its confidence, the model version that asked); **answers** are the reviewers' labels.

A loop completes as soon as one label has a strict majority of the reviewers the flow asks for
(with one reviewer per item, the first answer). When every reviewer has answered and no label has
a majority, the loop is **tied** between the labels with the most answers, and the flow's
**tie-break** (set when it is created) ends it without an operator:

- ``escalate`` (the default): one more reviewer is asked. The loop stays ``InProgress`` (and
  ``tied``) for exactly one more answer, from a reviewer who has not answered it; that answer
  must be one of the tied labels (any other is refused with :class:`NotATiedLabel`, and the loop
  keeps waiting) and it decides: the loop completes with it.
- ``model``: the model decides at once. The loop completes when its last answer ties it, with the
  model's prediction (the loop's initial value) when that is one of the tied labels, else the
  first tied label in the flow's label order.

(With four or more reviewers one label may lead alone, short of a majority: the loop is then tied
on that one label, which ``model`` picks and which ``escalate``'s deciding reviewer confirms.)

Every completed loop records how it was decided (``decided_by``: ``majority``,
``tie-break:escalate`` or ``tie-break:model``), in the store and in its ``output.json``. ``stop``
still closes any open loop. (A store made before tie-breaks existed is migrated on first use: its
flows escalate, its completed loops were decided by majority.)

The store is SQLite under the home (``HOME/review/review.db``) or, by configuration
(``SAGESTACK_REVIEW_DB=postgresql://…``, what ``sagestack up`` and a cluster use), PostgreSQL. Every
write is one transaction that takes its lock before it reads: SQLite's ``BEGIN IMMEDIATE`` (the
database's write lock), PostgreSQL's ``SELECT … FOR UPDATE`` of the loop's row. Reviewers answering
the same item at once from threads, processes or machines are serialised: a loop never takes more
answers than its flow's reviewers, nor two from one reviewer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Sequence

from sagestack.errors import ConfigError, DataError, SagestackError

logger = logging.getLogger("sagestack.review")

STATUSES = ("InProgress", "Completed", "Stopped", "Failed")
DEFAULT_LABELS = ("-1", "0", "1")
DEFAULT_THRESHOLD = 0.9
TIE_BREAKS = ("escalate", "model")
DEFAULT_TIE_BREAK = "escalate"
# A2I's names: lowercase letters, digits and hyphens, starting with a letter or digit, at most 63.
NAME = re.compile(r"^[a-z0-9](-*[a-z0-9]){0,62}$")
REVIEWER = re.compile(r"^[\w .@+-]{1,64}$")
MAX_REVIEW_CHARS = 20_000

# One schema for both databases (DOUBLE PRECISION: a Unix time needs more than PostgreSQL's REAL).
_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS flows (
    name TEXT PRIMARY KEY, threshold DOUBLE PRECISION NOT NULL, reviewers_per_item INTEGER NOT NULL,
    labels TEXT NOT NULL, task_title TEXT NOT NULL, created DOUBLE PRECISION NOT NULL, tie_break TEXT)""",
    """CREATE TABLE IF NOT EXISTS loops (
    name TEXT PRIMARY KEY, flow TEXT NOT NULL REFERENCES flows(name), status TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL, ended DOUBLE PRECISION, review TEXT NOT NULL, initial_value TEXT,
    confidence DOUBLE PRECISION, probabilities TEXT, source TEXT NOT NULL, model_name TEXT, model_version TEXT,
    model_kind TEXT, inference_id TEXT, item INTEGER, facet TEXT, label TEXT, failure_reason TEXT, decided_by TEXT)""",
    "CREATE INDEX IF NOT EXISTS loops_queue ON loops(flow, status, confidence)",
    """CREATE TABLE IF NOT EXISTS answers (
    loop TEXT NOT NULL REFERENCES loops(name), reviewer TEXT NOT NULL, label TEXT NOT NULL,
    accepted DOUBLE PRECISION, submitted DOUBLE PRECISION NOT NULL, PRIMARY KEY (loop, reviewer))""",
    "CREATE INDEX IF NOT EXISTS answers_reviewer ON answers(reviewer)",
]


# Columns added since the first schema, (table, column, type): a store made before them gets them on
# first use, NULL meaning the default (a flow's tie-break: escalate; a completed loop: decided by majority).
_ADDED_COLUMNS = (("flows", "tie_break", "TEXT"), ("loops", "decided_by", "TEXT"))
_LOOP_COLUMNS = ("name", "flow", "status", "created", "ended", "review", "initial_value", "confidence", "probabilities",
                 "source", "model_name", "model_version", "model_kind", "inference_id", "item", "facet", "label",
                 "failure_reason")

# A loop's row with what its answers are counted against (the flow's reviewers per item, labels and tie-break).
_LOOPS = ("SELECT loops.*, flows.reviewers_per_item, flows.labels AS flow_labels, flows.tie_break "
          "FROM loops JOIN flows ON flows.name = loops.flow")


class UnknownLoop(SagestackError):
    """No human loop (or flow) of that name."""

    @classmethod
    def named(cls, name: str) -> "UnknownLoop":
        return cls(f"no human loop named {str(name)[:80]!r}; `sagestack review list` shows them")


class LoopClosed(SagestackError):
    """The loop is completed or stopped: it takes no more answers."""


class AlreadyAnswered(SagestackError):
    """This reviewer has answered this loop already, or it has all the answers it needs."""


class NotATiedLabel(AlreadyAnswered):
    """The loop is tied and waits for its deciding answer (tie-break ``escalate``), which must be one
    of the tied labels: a conflict with the loop's state, as :class:`AlreadyAnswered` is."""


@dataclass(frozen=True)
class Flow:
    """A flow definition: what reviewers are asked and when."""

    name: str
    threshold: float
    reviewers_per_item: int
    labels: tuple[str, ...]
    task_title: str
    created: float
    tie_break: str = DEFAULT_TIE_BREAK  # how a tie ends: "escalate" or "model" (see the module's doc)

    def describe(self) -> dict:
        """``describe_flow_definition``'s shape (A2I field names; ``TieBreak`` is sagestack's own)."""
        return {"FlowDefinitionName": self.name, "FlowDefinitionArn": f"sagestack:flow-definition/{self.name}",
                "FlowDefinitionStatus": "Active", "CreationTime": _iso(self.created),
                "HumanLoopActivationConfig": {"ConfidenceThreshold": self.threshold},
                "HumanLoopConfig": {"TaskTitle": self.task_title, "TaskCount": self.reviewers_per_item,
                                    "Labels": list(self.labels), "TieBreak": self.tie_break}}

    def needs_review(self, confidence: float) -> bool:
        """Whether a prediction this confident goes to people (strictly below the threshold)."""
        return confidence < self.threshold


@dataclass(frozen=True)
class LoopInput:
    """What a new loop holds: the review and what the model said of it."""

    review: str
    initial_value: str | None = None
    confidence: float | None = None
    probabilities: dict | None = None
    source: str = "manual"
    model: dict = field(default_factory=dict)  # name, version, kind
    inference_id: str | None = None
    item: int | None = None  # the review's place in its request (the capture record's ``item``)
    facet: str | None = None  # the product category, when the caller knows it
    name: str | None = None


@dataclass
class Loop:
    """One human loop with its answers."""

    name: str
    flow: str
    status: str
    created: float
    ended: float | None
    review: str
    initial_value: str | None
    confidence: float | None
    probabilities: dict | None
    source: str
    model: dict
    inference_id: str | None
    item: int | None
    facet: str | None
    label: str | None  # the consolidated answer of a completed loop
    failure_reason: str | None
    answers: list[dict]
    needed: int
    labels: tuple[str, ...] = ()  # the flow's labels, in its order
    tie_break: str = DEFAULT_TIE_BREAK
    decided_by: str | None = None  # how a completed loop was decided: majority, tie-break:escalate or tie-break:model

    @property
    def tied(self) -> bool:
        """Every reviewer answered and no label has a majority (with tie-break ``escalate``, the loop
        then waits for one deciding answer)."""
        return self.status == "InProgress" and len(self.answers) >= self.needed

    @property
    def tied_labels(self) -> tuple[str, ...]:
        """The labels a tied loop is tied between (those with the most answers, in the flow's order)."""
        return leading([a["label"] for a in self.answers], self.labels) if self.tied else ()

    @property
    def choices(self) -> tuple[str, ...]:
        """The labels the next answer may give: the tied ones when the loop waits for its deciding answer."""
        return self.tied_labels or self.labels


def new_loop_name() -> str:
    """A fresh human loop name (A2I-valid): 96 random bits (os.urandom: a fifth of uuid4's cost, on
    the endpoint's request path)."""
    return "loop-" + os.urandom(12).hex()


def _iso(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="milliseconds")


def check_name(name: str, what: str) -> str:
    """``name`` if it is a valid flow or loop name, else a :class:`ConfigError` that says the rule."""
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigError(f"{what} name {name!r} is not valid: use lowercase letters, digits and hyphens "
                          "(at most 63, starting with a letter or digit)")
    return name


def check_reviewer(reviewer: str) -> str:
    """A reviewer's name, trimmed, if valid (letters, digits, spaces, . @ + - _; at most 64)."""
    reviewer = (reviewer or "").strip()
    if not REVIEWER.match(reviewer):
        raise ConfigError(f"reviewer {reviewer[:80]!r} is not a valid name: 1-64 letters, digits, spaces or . @ + - _")
    return reviewer


def majority(labels: Sequence[str], needed: int) -> str | None:
    """The label more than half of ``needed`` reviewers gave, if any (it cannot be outvoted any more)."""
    if not labels:
        return None
    label, count = Counter(labels).most_common(1)[0]
    return label if count * 2 > needed else None


def leading(answers: Sequence[str], labels: Sequence[str]) -> tuple[str, ...]:
    """The labels with the most answers, in the order of ``labels`` (a tie when there are several)."""
    counts = Counter(answers)
    top = max(counts.values(), default=0)
    return tuple(label for label in labels if top and counts[label] == top)


def break_tie(answers: Sequence[str], labels: Sequence[str], predicted: str | None) -> str:
    """Tie-break ``model``: the model's label ``predicted`` when it is among the tied labels, else the
    first tied label in the flow's label order."""
    tied = leading(answers, labels)
    return predicted if predicted in tied else tied[0]


class _Connection:
    """One connection with ``?`` placeholders whichever the database (PostgreSQL's driver wants ``%s``)."""

    def __init__(self, raw, postgres: bool):
        self.raw, self.postgres = raw, postgres

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def execute(self, sql: str, params: Sequence = ()):
        return self.raw.execute(self._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence]) -> None:
        self.raw.cursor().executemany(self._sql(sql), rows)


class ReviewStore:
    """The review database and the answers' ``output.json`` files (under ``folder``).

    Args:
        folder: the review folder (``HOME/review``): the SQLite database, unless ``url`` names
            another, and the loops' ``output.json`` files.
        url: a PostgreSQL database (``postgresql://user:password@host:port/db``, or SQLAlchemy's
            ``postgresql+psycopg://…``) instead of SQLite.

    Each thread keeps a connection of its own, so one store is safe to share between threads. The
    tables are made on first use (a console or an endpoint starts even while the database is down;
    the calls made meanwhile fail with a :class:`ConfigError` that says so).

    Raises:
        ConfigError: a ``url`` that is not PostgreSQL's; from any call, a database that cannot be reached.
    """

    def __init__(self, folder: Path, url: str | None = None):
        self.folder = Path(folder)
        self.db_path = self.folder / "review.db"
        self.output_dir = self.folder / "output"
        self.folder.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.url = None
        if url:
            if not url.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
                raise ConfigError(f"SAGESTACK_REVIEW_DB must be a PostgreSQL URL (postgresql://…), got {url.split(':')[0]}:…")
            self.url = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self._schema_lock = threading.Lock()
        self._schema_ready = False  # made on first use: a console or endpoint starts even while the database is down

    def _ensure_schema(self, db: _Connection) -> None:
        with self._schema_lock:
            if self._schema_ready:
                return
            with self._transaction(db):
                made = False
                if self.url:
                    # Two processes creating the tables at once would collide on PostgreSQL's catalog; and
                    # CREATE INDEX IF NOT EXISTS locks its table even when the index exists (it would block,
                    # or deadlock with, reviewers' answers): made once, the schema is left alone.
                    db.execute("SELECT pg_advisory_xact_lock(7431)")
                    made = db.execute("SELECT to_regclass('answers_reviewer') AS found").fetchone()["found"] is not None
                for statement in () if made else _SCHEMA:
                    db.execute(statement)
                for table, column, kind in _ADDED_COLUMNS:  # a store made by an earlier sagestack
                    if column not in self._columns(db, table):
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            self._schema_ready = True

    def _columns(self, db: _Connection, table: str) -> set[str]:
        if self.url:
            rows = db.execute("SELECT column_name AS name FROM information_schema.columns "
                              "WHERE table_schema = current_schema() AND table_name = ?", (table,)).fetchall()
        else:
            rows = db.execute(f"PRAGMA table_info({table})").fetchall()
        return {row["name"] for row in rows}

    @property
    def _lock_loop(self) -> str:
        """What makes a SELECT of a loop take that loop's lock (SQLite's transaction holds the whole database)."""
        return " FOR UPDATE OF loops" if self.url else ""

    @contextlib.contextmanager
    def _connect(self) -> Iterator[_Connection]:
        """This thread's connection, opened on first use and kept: opening one per call costs more than
        the queries (and closing SQLite's last one checkpoints its WAL). A failed call drops it."""
        db = getattr(self._local, "db", None)
        if db is None or (self.url and (db.raw.closed or db.raw.broken)):  # e.g. the server restarted
            db = self._local.db = self._open()
        if not self._schema_ready:
            self._ensure_schema(db)
        try:
            yield db
        except BaseException:
            if not self._idle(db):
                self._local.db = None  # broken, or left mid-transaction: the next call opens a fresh one
                with contextlib.suppress(Exception):
                    db.raw.close()
            raise

    def _idle(self, db: _Connection) -> bool:
        """Whether a connection is usable and outside any transaction."""
        if not self.url:
            return not db.raw.in_transaction
        from psycopg.pq import TransactionStatus

        return not db.raw.closed and db.raw.info.transaction_status == TransactionStatus.IDLE

    def _open(self) -> _Connection:
        if self.url:
            import psycopg
            from psycopg.rows import dict_row

            try:
                raw = psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=10)
            except psycopg.OperationalError as exc:
                raise ConfigError(f"cannot reach the review database (SAGESTACK_REVIEW_DB): "
                                  f"{str(exc).strip().splitlines()[0][:200]}") from None
        else:
            raw = sqlite3.connect(self.db_path, timeout=30, isolation_level=None, check_same_thread=True)
            raw.row_factory = sqlite3.Row
            raw.execute("PRAGMA foreign_keys=ON")
            raw.execute("PRAGMA journal_mode=WAL")  # readers (the queue page) never wait for a writer
            # WAL + NORMAL: a commit is not flushed to disk on its own (a crashed process loses nothing
            # committed; only a power cut may lose the last commits), so the endpoint's writer never waits on fsync.
            raw.execute("PRAGMA synchronous=NORMAL")
        return _Connection(raw, bool(self.url))

    @contextlib.contextmanager
    def _write(self) -> Iterator[_Connection]:
        """One write transaction: commit on success, roll back on anything else. On SQLite it holds
        the write lock from the start; on PostgreSQL rows are locked as they are read (FOR UPDATE)."""
        with self._connect() as db, self._transaction(db):
            yield db

    @contextlib.contextmanager
    def _transaction(self, db: _Connection) -> Iterator[None]:
        db.execute("BEGIN" if self.url else "BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):  # the error that got here is the one to see
                if not self._idle(db):
                    db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _duplicate(self) -> tuple[type[BaseException], ...]:
        """The errors a primary-key clash raises."""
        if self.url:
            import psycopg

            return (psycopg.errors.UniqueViolation,)
        return (sqlite3.IntegrityError,)

    # ---- flows ---------------------------------------------------------------------------------
    def create_flow(self, name: str, *, threshold: float = DEFAULT_THRESHOLD, reviewers_per_item: int = 1,
                    labels: Sequence[str] = DEFAULT_LABELS, task_title: str | None = None,
                    tie_break: str = DEFAULT_TIE_BREAK) -> Flow:
        """Define a flow (``create_flow_definition``).

        Args:
            tie_break: how a loop whose reviewers tie ends: ``escalate`` (one more reviewer picks
                one of the tied labels) or ``model`` (the model's label wins when tied, else the
                first tied label); see the module's doc.

        Raises:
            ConfigError: a bad name, threshold (0–1), reviewer count (1–15), label list or
                tie-break, or a flow of that name exists already.
        """
        check_name(name, "flow")
        if tie_break not in TIE_BREAKS:
            raise ConfigError(f"--tie-break must be {' or '.join(TIE_BREAKS)}, got {str(tie_break)[:40]!r}")
        if not 0 < threshold <= 1:
            raise ConfigError(f"--threshold must be in (0, 1], got {threshold:g}")
        if not 1 <= reviewers_per_item <= 15:
            raise ConfigError(f"--reviewers-per-item must be 1 to 15, got {reviewers_per_item}")
        labels = tuple(str(label).strip() for label in labels)
        if len(labels) < 2 or len(set(labels)) != len(labels) or any(not label or len(label) > 64 for label in labels):
            raise ConfigError(f"--labels needs two or more distinct labels, got {','.join(labels)!r}")
        flow = Flow(name, float(threshold), int(reviewers_per_item), labels,
                    task_title or "Classify the sentiment of this review", time.time(), tie_break)
        try:
            with self._write() as db:
                db.execute("INSERT INTO flows (name, threshold, reviewers_per_item, labels, task_title, created, "
                           "tie_break) VALUES (?, ?, ?, ?, ?, ?, ?)", (
                               flow.name, flow.threshold, flow.reviewers_per_item, json.dumps(flow.labels),
                               flow.task_title, flow.created, flow.tie_break))
        except self._duplicate():
            raise ConfigError(f"a flow named {name} exists already; `sagestack review flow describe {name}`") from None
        return flow

    def flow(self, name: str) -> Flow:
        """The flow of that name.

        Raises:
            UnknownLoop: there is none.
        """
        with self._connect() as db:
            row = db.execute("SELECT * FROM flows WHERE name = ?", (name,)).fetchone()
        if row is None:
            known = ", ".join(f.name for f in self.flows()) or "none yet"
            raise UnknownLoop(f"no flow named {name!r} (flows: {known}); create one with `sagestack review flow create`")
        return _flow(row)

    def flows(self) -> list[Flow]:
        """Every flow, oldest first."""
        with self._connect() as db:
            return [_flow(row) for row in db.execute("SELECT * FROM flows ORDER BY created")]

    # ---- loops ---------------------------------------------------------------------------------
    def start_loops(self, flow_name: str, items: Sequence[LoopInput]) -> list[str]:
        """Start one loop per item (``start_human_loop``), in one transaction; returns their names.

        Raises:
            UnknownLoop: no such flow.
            DataError: an empty or over-long review, an initial value not among the flow's
                labels, or a loop name that exists already.
        """
        flow = self.flow(flow_name)
        rows, now = [], time.time()
        for position, item in enumerate(items):
            # NUL removed: PostgreSQL's text refuses it (SQLite would keep it).
            review = " ".join(str(item.review or "").replace("\x00", "").split())
            if not review or len(review) > MAX_REVIEW_CHARS:
                raise DataError(f"a review to look at must have 1 to {MAX_REVIEW_CHARS} characters")
            initial = None if item.initial_value is None else str(item.initial_value)
            if initial is not None and initial not in flow.labels:
                raise DataError(f"initial value {initial!r} is not one of the flow's labels ({', '.join(flow.labels)})")
            name = check_name(item.name, "loop") if item.name else new_loop_name()
            model = item.model or {}
            # Creation times strictly increase within a batch: the queue's order is the order of arrival.
            rows.append((name, flow.name, "InProgress", now + position * 1e-6, None, review, initial, item.confidence,
                         json.dumps(item.probabilities) if item.probabilities is not None else None, item.source,
                         model.get("name"), None if model.get("version") is None else str(model.get("version")),
                         model.get("kind"), item.inference_id, item.item, item.facet, None, None))
        try:
            with self._write() as db:
                db.executemany(f"INSERT INTO loops ({', '.join(_LOOP_COLUMNS)}) "
                               f"VALUES ({', '.join('?' * len(_LOOP_COLUMNS))})", rows)
        except self._duplicate():
            raise DataError("a human loop of that name exists already; choose another --name") from None
        return [row[0] for row in rows]

    def loop(self, name: str) -> Loop:
        """One loop with its answers.

        Raises:
            UnknownLoop: no loop of that name.
        """
        with self._connect() as db:
            row = db.execute(_LOOPS + " WHERE loops.name = ?", (name,)).fetchone()
            if row is None:
                raise UnknownLoop.named(name)
            answers = db.execute("SELECT * FROM answers WHERE loop = ? ORDER BY submitted", (name,)).fetchall()
        return _loop(row, answers)

    def loops(self, *, flow: str | None = None, status: str | None = None, limit: int = 1000) -> list[Loop]:
        """Loops, newest first, optionally of one flow and status (answers included)."""
        if status is not None and status not in STATUSES:
            raise ConfigError(f"--status must be one of {', '.join(STATUSES)}, got {status!r}")
        where, params = _filters(flow, status)
        with self._connect() as db:
            rows = db.execute(_LOOPS +
                              f"{where} ORDER BY loops.created DESC, loops.name DESC LIMIT ?", (*params, limit)).fetchall()
            return self._with_answers(db, rows)

    def queue(self, flow: str, reviewer: str, *, skip: Sequence[str] = (), limit: int = 50) -> list[Loop]:
        """What ``reviewer`` may answer in ``flow``, least confident first: open loops they have not
        answered that still need answers (skipped names last)."""
        with self._connect() as db:
            rows = db.execute(
                _LOOPS + " "
                "WHERE loops.flow = ? AND loops.status = 'InProgress' "
                "AND NOT EXISTS (SELECT 1 FROM answers WHERE answers.loop = loops.name AND answers.reviewer = ?) "
                # a tied loop of an escalating flow waits for one more (deciding) answer
                "AND (SELECT COUNT(*) FROM answers WHERE answers.loop = loops.name) < flows.reviewers_per_item "
                "+ (CASE WHEN COALESCE(flows.tie_break, 'escalate') = 'escalate' THEN 1 ELSE 0 END) "
                "ORDER BY loops.confidence IS NULL, loops.confidence, loops.created, loops.name LIMIT ?",
                (flow, reviewer, limit + len(skip))).fetchall()
            loops = self._with_answers(db, rows)
        skipped = set(skip)
        return ([loop for loop in loops if loop.name not in skipped] + [loop for loop in loops if loop.name in skipped])[:limit]

    def progress(self, flow: str, reviewer: str | None = None) -> dict:
        """Counts of a flow's loops: ``{"InProgress", "Completed", "Stopped", "Failed", "tied", "answers"}``,
        and ``"yours"``, the answers ``reviewer`` gave, when one is named."""
        with self._connect() as db:
            counts = {row["status"]: row["n"] for row in db.execute(
                "SELECT status, COUNT(*) AS n FROM loops WHERE flow = ? GROUP BY status", (flow,)).fetchall()}
            tied = db.execute(
                "SELECT COUNT(*) AS n FROM loops JOIN flows ON flows.name = loops.flow WHERE loops.flow = ? "
                "AND loops.status = 'InProgress' AND "
                "(SELECT COUNT(*) FROM answers WHERE answers.loop = loops.name) >= flows.reviewers_per_item",
                (flow,)).fetchone()["n"]
            answers = db.execute("SELECT COUNT(*) AS n FROM answers JOIN loops ON loops.name = answers.loop "
                                 "WHERE loops.flow = ?", (flow,)).fetchone()["n"]
            yours = {} if reviewer is None else {"yours": int(db.execute(
                "SELECT COUNT(*) AS n FROM answers JOIN loops ON loops.name = answers.loop WHERE loops.flow = ? "
                "AND answers.reviewer = ?", (flow, reviewer)).fetchone()["n"])}
        return {**{status: int(counts.get(status, 0)) for status in STATUSES}, "tied": int(tied), "answers": int(answers),
                **yours}

    def answer(self, name: str, reviewer: str, label: str, *, accepted: float | None = None) -> Loop:
        """Record ``reviewer``'s ``label`` for loop ``name``; complete the loop on a majority, or
        by the flow's tie-break when the answers tie (see the module's doc).

        Returns:
            The loop after the answer (``status`` ``Completed`` with ``label`` and ``decided_by``
            when this answer decided it; its ``output.json`` is written then).

        Raises:
            UnknownLoop: no such loop.
            DataError: a label that is not one of the flow's.
            LoopClosed: the loop is completed or stopped.
            AlreadyAnswered: this reviewer answered it already, or it has all the answers it takes.
            NotATiedLabel: the loop waits for its deciding answer and ``label`` is not one of the tied labels.
        """
        reviewer = check_reviewer(reviewer)
        label = str(label).strip()
        with self._write() as db:
            row = db.execute("SELECT loops.status, loops.initial_value, flows.labels, flows.reviewers_per_item, "
                             "flows.tie_break FROM loops JOIN flows ON flows.name = loops.flow WHERE loops.name = ?"
                             + self._lock_loop, (name,)).fetchone()
            if row is None:
                raise UnknownLoop.named(name)
            labels = json.loads(row["labels"])
            if label not in labels:
                raise DataError(f"label {label[:40]!r} is not one of this flow's labels ({', '.join(labels)})")
            if row["status"] != "InProgress":
                raise LoopClosed(f"human loop {name} is {row['status']}: it takes no more answers")
            existing = db.execute("SELECT reviewer, label FROM answers WHERE loop = ?", (name,)).fetchall()
            if any(r["reviewer"] == reviewer for r in existing):
                raise AlreadyAnswered(f"{reviewer} has answered human loop {name} already; one answer per reviewer")
            given = [r["label"] for r in existing]
            needed = int(row["reviewers_per_item"])
            tie_break = row["tie_break"] or DEFAULT_TIE_BREAK
            decided = decided_by = None
            if len(given) >= needed:  # tied: only an escalating flow takes its one deciding answer
                tied = leading(given, labels)
                if tie_break != "escalate" or len(given) > needed:
                    raise AlreadyAnswered(f"human loop {name} has all {needed} answers it asks for (a tie); "
                                          "stop it with `sagestack review stop`")
                if label not in tied:
                    raise NotATiedLabel(f"human loop {name} is tied between {', '.join(tied)}: the deciding answer "
                                        f"must be one of them, got {label!r}")
                decided, decided_by = label, "tie-break:escalate"
            else:
                decided, decided_by = majority([*given, label], needed), "majority"
                if decided is None and len(given) + 1 == needed and tie_break == "model":
                    decided, decided_by = break_tie([*given, label], labels, row["initial_value"]), "tie-break:model"
            now = time.time()
            db.execute("INSERT INTO answers VALUES (?, ?, ?, ?, ?)", (name, reviewer, label, accepted, now))
            if decided is not None:
                db.execute("UPDATE loops SET status = 'Completed', ended = ?, label = ?, decided_by = ? WHERE name = ?",
                           (now, decided, decided_by, name))
        loop = self.loop(name)
        if loop.status == "Completed":
            try:
                self.write_output(loop)
            except OSError as exc:  # the answer is committed; describe() writes the file when it is missing
                logger.error("human loop %s: could not write its output.json: %s", name, exc)
        return loop

    def stop(self, name: str) -> Loop:
        """Stop an open loop (``stop_human_loop``): it takes no more answers and trains nothing.

        Raises:
            UnknownLoop: no such loop.
            LoopClosed: it is completed or stopped already.
        """
        with self._write() as db:
            row = db.execute("SELECT status FROM loops WHERE name = ?" + self._lock_loop, (name,)).fetchone()
            if row is None:
                raise UnknownLoop.named(name)
            if row["status"] != "InProgress":
                raise LoopClosed(f"human loop {name} is {row['status']} already")
            db.execute("UPDATE loops SET status = 'Stopped', ended = ? WHERE name = ?", (time.time(), name))
        return self.loop(name)

    def tied(self, flow: str, *, limit: int = 100) -> list[Loop]:
        """A flow's tied loops (every reviewer answered, no majority), oldest first."""
        with self._connect() as db:
            rows = db.execute(
                _LOOPS + " "
                "WHERE loops.flow = ? AND loops.status = 'InProgress' AND "
                "(SELECT COUNT(*) FROM answers WHERE answers.loop = loops.name) >= flows.reviewers_per_item "
                "ORDER BY loops.created, loops.name LIMIT ?", (flow, limit)).fetchall()
            return self._with_answers(db, rows)

    def completed(self, flow: str | None = None) -> list[Loop]:
        """Every completed loop (the reviewed labels), oldest first."""
        where, params = _filters(flow, "Completed")
        with self._connect() as db:
            rows = db.execute(_LOOPS +
                              f"{where} ORDER BY loops.ended, loops.name", params).fetchall()
            return self._with_answers(db, rows)

    @staticmethod
    def _with_answers(db: _Connection, rows: list) -> list[Loop]:
        if not rows:
            return []
        names = [row["name"] for row in rows]
        by_loop: dict[str, list] = {name: [] for name in names}
        for start in range(0, len(names), 500):  # SQLite's limit on bound parameters
            chunk = names[start:start + 500]
            for answer in db.execute(f"SELECT * FROM answers WHERE loop IN ({', '.join('?' * len(chunk))}) "
                                     "ORDER BY submitted", chunk):
                by_loop[answer["loop"]].append(answer)
        return [_loop(row, by_loop[row["name"]]) for row in rows]

    # ---- A2I's output -------------------------------------------------------------------------
    def output_path(self, loop: Loop) -> Path:
        """Where a loop's ``output.json`` goes: A2I's ``<flow>/YYYY/MM/DD/hh/mm/ss/<loop>/output.json``."""
        created = datetime.fromtimestamp(loop.created, timezone.utc)
        return self.output_dir / loop.flow / created.strftime("%Y/%m/%d/%H/%M/%S") / loop.name / "output.json"

    def write_output(self, loop: Loop) -> Path:
        """Write a completed loop's ``output.json`` (A2I's layout), whole or not at all."""
        from sagestack.data.atomic import atomic_file

        path = self.output_path(loop)
        document = {
            "flowDefinitionArn": f"sagestack:flow-definition/{loop.flow}",
            "humanLoopName": loop.name,
            "inputContent": {"initialValue": loop.initial_value, "taskObject": loop.review},
            "humanAnswers": [{
                "acceptanceTime": _iso(a["accepted"] if a["accepted"] is not None else a["submitted"]),
                "submissionTime": _iso(a["submitted"]),
                "timeSpentInSeconds": round(a["submitted"] - a["accepted"], 3) if a["accepted"] is not None else None,
                "workerId": a["reviewer"],
                "answerContent": {"sentiment": {"label": a["label"]}},
            } for a in loop.answers],
            "consolidatedAnswer": {"sentiment": {"label": loop.label}},
            "decided_by": loop.decided_by,  # majority, tie-break:escalate or tie-break:model
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as tmp:
            tmp.write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")
        return path

    def describe(self, name: str) -> dict:
        """``describe_human_loop``'s shape; a completed loop names its ``output.json`` (written anew
        if it went missing, e.g. after a crash between the answer and the file)."""
        loop = self.loop(name)
        described = {
            "HumanLoopName": loop.name, "HumanLoopStatus": loop.status, "CreationTime": _iso(loop.created),
            "FlowDefinitionArn": f"sagestack:flow-definition/{loop.flow}", "FailureReason": loop.failure_reason,
            "HumanLoopInput": {"initialValue": loop.initial_value, "taskObject": loop.review,
                               "confidence": loop.confidence},
            "Answers": len(loop.answers), "AnswersNeeded": loop.needed, "Tied": loop.tied,
            "Model": loop.model, "InferenceId": loop.inference_id,
        }
        if loop.status == "Completed":
            path = self.output_path(loop)
            if not path.is_file():
                self.write_output(loop)
            described["HumanLoopOutput"] = {"OutputS3Uri": path.resolve().as_uri()}
            described["Label"] = loop.label
            described["DecidedBy"] = loop.decided_by
        elif loop.tied:
            described["TiedLabels"] = list(loop.tied_labels)
            described["TieBreak"] = loop.tie_break
        return described


def _filters(flow: str | None, status: str | None) -> tuple[str, tuple]:
    clauses, params = [], []
    if flow is not None:
        clauses.append("loops.flow = ?")
        params.append(flow)
    if status is not None:
        clauses.append("loops.status = ?")
        params.append(status)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


def _flow(row) -> Flow:
    return Flow(row["name"], row["threshold"], row["reviewers_per_item"], tuple(json.loads(row["labels"])),
                row["task_title"], row["created"], row["tie_break"] or DEFAULT_TIE_BREAK)


def _loop(row, answers: Sequence) -> Loop:
    return Loop(
        name=row["name"], flow=row["flow"], status=row["status"], created=row["created"], ended=row["ended"],
        review=row["review"], initial_value=row["initial_value"], confidence=row["confidence"],
        probabilities=json.loads(row["probabilities"]) if row["probabilities"] else None, source=row["source"],
        model={"name": row["model_name"], "version": row["model_version"], "kind": row["model_kind"]},
        inference_id=row["inference_id"], item=row["item"], facet=row["facet"], label=row["label"],
        failure_reason=row["failure_reason"],
        answers=[{"reviewer": a["reviewer"], "label": a["label"], "accepted": a["accepted"],
                  "submitted": a["submitted"]} for a in answers],
        needed=int(row["reviewers_per_item"]), labels=tuple(json.loads(row["flow_labels"])),
        tie_break=row["tie_break"] or DEFAULT_TIE_BREAK,
        # A loop completed before decided_by was recorded was decided by a majority (ties never completed).
        decided_by=row["decided_by"] or ("majority" if row["status"] == "Completed" else None))


def review_store(settings) -> ReviewStore:
    """This home's review store: ``HOME/review``, its database SQLite there or ``settings.review.db``."""
    return ReviewStore(settings.home.resolve() / "review", settings.review.db)
