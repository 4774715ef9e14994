"""The review library on a real SQLite store: majority and ties, one answer per reviewer under 8 threads and
across processes, A2I's output.json, Label Studio round trips, bad input, and reviewed labels merged into training."""

from __future__ import annotations

import json
import threading
from collections import Counter
from types import SimpleNamespace

import pandas as pd
import pytest

from conftest import run_sagestack
from sagestack.errors import ConfigError, DataError
from sagestack.review import AlreadyAnswered, LoopClosed, LoopInput, NotATiedLabel, ReviewStore, UnknownLoop
from sagestack.review.formats import export_loops, import_label_studio
from sagestack.review.starter import LoopStarter
from sagestack.review.store import majority
from sagestack.review.training import apply_reviewed, reviewed_labels, write_snapshot


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """A real PostgreSQL on loopback (the topology's, started alone); yields the review database's URL."""
    import shutil

    from sagestack.config import load_settings
    from sagestack.deploy.topology import Topology

    home = tmp_path_factory.mktemp("review-postgres")
    topology = Topology(load_settings(cwd=home, environ={}, home=home), lambda host, port: [])
    topology.start_database()
    try:
        yield topology.database_uri("review")
    finally:
        topology.stop("postgres")
        shutil.rmtree(topology.postgres_dir(), ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """An empty review store on SQLite, then on PostgreSQL: every test below runs on both."""
    if request.param == "sqlite":
        return ReviewStore(tmp_path / "review")
    import psycopg

    url = request.getfixturevalue("postgres")
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as db:
        db.execute("DROP TABLE IF EXISTS answers, loops, flows")
    return ReviewStore(tmp_path / "review", url)


def start(store, flow, *texts, confidence=0.5):
    return store.start_loops(flow, [LoopInput(review=t, initial_value="0", confidence=confidence) for t in texts])


def test_majority_needs_more_than_half_of_the_reviewers():
    assert majority(["1"], 1) == "1"
    assert majority(["1"], 3) is None and majority(["1", "1"], 3) == "1"
    assert majority(["1", "0", "-1"], 3) is None  # a three-way tie
    assert majority(["1", "0"], 2) is None and majority([], 1) is None


def test_three_reviewers_majority_completes_and_a_tie_escalates_to_one_more_reviewer(store):
    store.create_flow("sentiment", reviewers_per_item=3)
    agree, split, tie, idle = start(store, "sentiment", "Lovely", "It is fine", "Hmm", "Not yet")
    for reviewer, labels in (("ann", ("1", "0", "1")), ("bob", ("1", "-1", "0")), ("cid", (None, "-1", "-1"))):
        for loop, label in zip((agree, split, tie), labels):
            if label is not None:
                store.answer(loop, reviewer, label)
    assert store.loop(agree).status == "Completed" and store.loop(agree).label == "1"  # 2 of 3 agreed: done early
    assert store.loop(split).status == "Completed" and store.loop(split).label == "-1"
    tied = store.loop(tie)
    assert tied.status == "InProgress" and tied.tied and tied.label is None and tied.tied_labels == ("-1", "0", "1")
    assert store.progress("sentiment") == {"InProgress": 2, "Completed": 2, "Stopped": 0, "Failed": 0, "tied": 1,
                                           "answers": 8}
    # The flow's default tie-break (escalate): the tie waits for one more reviewer, whose answer decides.
    assert [loop.name for loop in store.queue("sentiment", "dan")] == [tie, idle]
    assert [loop.name for loop in store.queue("sentiment", "ann")] == [idle]
    decided = store.answer(tie, "dan", "0")
    assert (decided.status, decided.label, decided.decided_by) == ("Completed", "0", "tie-break:escalate")
    with pytest.raises(LoopClosed, match="Completed: it takes no more answers"):
        store.answer(tie, "eve", "1")
    assert store.loop(agree).decided_by == "majority"
    assert store.stop(idle).status == "Stopped"
    with pytest.raises(LoopClosed, match="is Stopped already"):
        store.stop(idle)

    output = json.loads(store.output_path(store.loop(agree)).read_text())
    assert output["humanLoopName"] == agree and output["inputContent"] == {"initialValue": "0", "taskObject": "Lovely"}
    assert [a["answerContent"] for a in output["humanAnswers"]] == [{"sentiment": {"label": "1"}}] * 2
    assert {a["workerId"] for a in output["humanAnswers"]} == {"ann", "bob"}
    described = store.describe(agree)
    assert described["HumanLoopStatus"] == "Completed" and described["HumanLoopOutput"]["OutputS3Uri"].endswith(
        f"/{agree}/output.json")
    store.output_path(store.loop(agree)).unlink()  # a crash between the answer and the file
    store.describe(agree)
    assert store.output_path(store.loop(agree)).is_file()


def test_the_deciding_answer_of_an_escalated_tie_must_be_one_of_the_tied_labels(store, tmp_path):
    store.create_flow("sentiment", reviewers_per_item=2)
    tie = start(store, "sentiment", "Nice but small")[0]
    store.answer(tie, "ann", "1")
    store.answer(tie, "bob", "0")
    described = store.describe(tie)
    assert described["Tied"] and described["TiedLabels"] == ["0", "1"] and described["TieBreak"] == "escalate"
    assert store.loop(tie).choices == ("0", "1")  # what the console offers the deciding reviewer
    with pytest.raises(NotATiedLabel, match=f"^human loop {tie} is tied between 0, 1: the deciding answer must be one "
                                            "of them, got '-1'$"):
        store.answer(tie, "cid", "-1")
    with pytest.raises(AlreadyAnswered, match="has answered human loop .* already"):
        store.answer(tie, "ann", "0")
    assert len(store.loop(tie).answers) == 2 and store.loop(tie).tied  # still waiting for its deciding answer
    assert store.answer(tie, "cid", "1").label == "1"
    output = json.loads(store.output_path(store.loop(tie)).read_text())
    assert output["decided_by"] == "tie-break:escalate" and output["consolidatedAnswer"]["sentiment"]["label"] == "1"
    assert [a["workerId"] for a in output["humanAnswers"]] == ["ann", "bob", "cid"]
    assert store.progress("sentiment")["tied"] == 0 and store.describe(tie)["DecidedBy"] == "tie-break:escalate"


def test_tie_break_model_lets_the_models_label_win_when_it_is_tied_else_the_first_tied_label(store, tmp_path):
    with pytest.raises(ConfigError, match="^--tie-break must be escalate or model, got 'coin'$"):
        store.create_flow("f", tie_break="coin")
    flow = store.create_flow("sentiment", reviewers_per_item=2, tie_break="model")
    assert flow.describe()["HumanLoopConfig"]["TieBreak"] == "model" and store.flow("sentiment").tie_break == "model"
    predicted_1, predicted_neg, unknown, agreed = store.start_loops("sentiment", [
        LoopInput(review="a", initial_value="1"), LoopInput(review="b", initial_value="-1"), LoopInput(review="c"),
        LoopInput(review="d", initial_value="-1")])
    for loop, labels in ((predicted_1, ("1", "0")), (predicted_neg, ("1", "0")), (unknown, ("1", "0")),
                         (agreed, ("1", "1"))):
        for reviewer, label in zip(("ann", "bob"), labels):
            done = store.answer(loop, reviewer, label)
    decisions = {name: (store.loop(name).label, store.loop(name).decided_by)
                 for name in (predicted_1, predicted_neg, unknown, agreed)}
    assert decisions == {predicted_1: ("1", "tie-break:model"), predicted_neg: ("0", "tie-break:model"),
                         unknown: ("0", "tie-break:model"), agreed: ("1", "majority")}
    assert done.status == "Completed" and store.tied("sentiment") == [] and store.queue("sentiment", "cid") == []
    assert json.loads(store.output_path(store.loop(predicted_neg)).read_text())["decided_by"] == "tie-break:model"
    # The exports carry the final label and how it was decided.
    export_loops(store, tmp_path / "loops.csv", fmt="csv")
    table = pd.read_csv(tmp_path / "loops.csv", dtype=str).set_index("loop")
    assert table.loc[predicted_neg, ["label", "decided_by"]].tolist() == ["0", "tie-break:model"]
    export_loops(store, tmp_path / "tasks.json", fmt="label-studio")
    data = {task["data"]["loop"]: task["data"] for task in json.loads((tmp_path / "tasks.json").read_text())}
    assert (data[predicted_neg]["label"], data[predicted_neg]["decided_by"]) == ("0", "tie-break:model")
    assert reviewed_labels(store).set_index("loop").loc[predicted_neg, "sentiment"] == "0"


def test_a_store_made_before_tie_breaks_is_migrated_and_its_ties_escalate(store):
    """A database written by an earlier sagestack (no tie_break, no decided_by): opened, its flows escalate,
    its completed loops were decided by majority, and a tie left open takes its deciding answer."""
    from sagestack.review.store import _SCHEMA

    old_schema = [statement.replace(", tie_break TEXT", "").replace(", decided_by TEXT", "") for statement in _SCHEMA]
    rows = [
        "INSERT INTO flows VALUES ('sentiment', 0.9, 2, '[\"-1\", \"0\", \"1\"]', 'Classify', 1.0)",
        "INSERT INTO loops (name, flow, status, created, review, source, label) VALUES "
        "('loop-done', 'sentiment', 'Completed', 2.0, 'Good', 'manual', '1'), "
        "('loop-tie', 'sentiment', 'InProgress', 3.0, 'Hmm', 'manual', NULL)",
        "INSERT INTO answers VALUES ('loop-done', 'ann', '1', NULL, 4.0), ('loop-done', 'bob', '1', NULL, 5.0), "
        "('loop-tie', 'ann', '1', NULL, 6.0), ('loop-tie', 'bob', '0', NULL, 7.0)",
    ]
    if store.url:
        import psycopg

        with psycopg.connect(store.url, autocommit=True) as db:
            for statement in old_schema + rows:
                db.execute(statement)
    else:
        import contextlib
        import sqlite3

        with contextlib.closing(sqlite3.connect(store.db_path)) as db, db:
            for statement in old_schema + rows:
                db.execute(statement)
    assert store.flow("sentiment").tie_break == "escalate"
    assert store.loop("loop-done").decided_by == "majority" and store.loop("loop-tie").tied
    assert [loop.name for loop in store.queue("sentiment", "cid")] == ["loop-tie"]
    decided = store.answer("loop-tie", "cid", "0")
    assert (decided.label, decided.decided_by) == ("0", "tie-break:escalate")
    # New flows in the migrated store keep their tie-break.
    assert store.create_flow("other", tie_break="model").tie_break == store.flow("other").tie_break == "model"


def test_the_queue_is_least_confident_first_and_skips_go_last(store):
    store.create_flow("sentiment")
    sure, unsure, middle = (store.start_loops("sentiment", [LoopInput(review=t, confidence=c)])[0]
                            for t, c in (("a", 0.8), ("b", 0.4), ("c", 0.6)))
    assert [loop.name for loop in store.queue("sentiment", "ann")] == [unsure, middle, sure]
    assert [loop.name for loop in store.queue("sentiment", "ann", skip=[unsure])] == [middle, sure, unsure]
    store.answer(unsure, "ann", "1")
    assert [loop.name for loop in store.queue("sentiment", "bob")] == [middle, sure]  # one reviewer completes it


def test_eight_threads_never_answer_more_than_the_reviewers(store):
    store.create_flow("sentiment", reviewers_per_item=3)
    loops = start(store, "sentiment", *(f"review {i}" for i in range(20)))
    outcomes: Counter = Counter()
    lock = threading.Lock()

    def reviewer(number: int) -> None:
        for loop in loops:
            for attempt in range(2):  # each thread also tries to answer twice
                try:
                    store.answer(loop, f"reviewer-{number}", str(number % 3 - 1))
                    outcome = "answered"
                except (AlreadyAnswered, LoopClosed) as exc:
                    outcome = type(exc).__name__
                with lock:
                    outcomes[outcome] += 1

    threads = [threading.Thread(target=reviewer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name in loops:
        loop = store.loop(name)
        reviewers = [a["reviewer"] for a in loop.answers]
        # Three reviewers, and one more only to decide a tie (the flow's default tie-break, escalate).
        assert len(reviewers) <= 4 and len(set(reviewers)) == len(reviewers)
        assert loop.status == "Completed" or loop.tied
        if len(reviewers) == 4:
            assert loop.decided_by == "tie-break:escalate" and loop.label == loop.answers[-1]["label"]
            assert Counter(a["label"] for a in loop.answers[:3]) == Counter(["-1", "0", "1"])
        elif loop.status == "Completed":
            assert loop.decided_by == "majority" and Counter(a["label"] for a in loop.answers)[loop.label] >= 2
    assert outcomes["answered"] == sum(len(store.loop(n).answers) for n in loops)
    assert sum(outcomes.values()) == 8 * 20 * 2


def test_answers_from_another_process_are_seen_and_refused_the_same(tmp_path, store):
    """The CLI is another process on the same database: what it wrote is here, and the rules hold across."""
    # The store's folder is HOME/review for a CLI whose home is tmp_path; on PostgreSQL the CLI is
    # pointed at the same database, so the [postgresql] case answers across processes there.
    assert store.folder == tmp_path / "review"
    env = {"SAGESTACK_REVIEW_DB": store.url} if store.url else {}
    store.create_flow("sentiment", reviewers_per_item=2)
    loop = start(store, "sentiment", "Two minds")[0]
    done = run_sagestack(tmp_path, "review", "answer", loop, "--label", "1", "--reviewer", "ann", "--json",
                         env=env, cwd=tmp_path)
    assert done.returncode == 0 and json.loads(done.stdout)["HumanLoopStatus"] == "InProgress", done.stderr
    with pytest.raises(AlreadyAnswered):
        store.answer(loop, "ann", "0")
    assert store.answer(loop, "bob", "1").status == "Completed"
    again = run_sagestack(tmp_path, "review", "answer", loop, "--label", "1", "--reviewer", "cid",
                          env=env, cwd=tmp_path)
    assert again.returncode == 2 and again.stderr.strip() == f"error: human loop {loop} is Completed: it takes no more answers"


def test_bad_input_is_one_clear_line(store, tmp_path):
    with pytest.raises(ConfigError, match="flow name 'Bad Name' is not valid"):
        store.create_flow("Bad Name")
    with pytest.raises(ConfigError, match=r"--threshold must be in \(0, 1\]"):
        store.create_flow("f", threshold=1.5)
    with pytest.raises(ConfigError, match="two or more distinct labels"):
        store.create_flow("f", labels=["1", "1"])
    store.create_flow("f")
    with pytest.raises(ConfigError, match="exists already"):
        store.create_flow("f")
    with pytest.raises(UnknownLoop, match="no flow named 'g'"):
        start(store, "g", "x")
    with pytest.raises(DataError, match="initial value '7' is not one of the flow's labels"):
        store.start_loops("f", [LoopInput(review="x", initial_value="7")])
    with pytest.raises(DataError, match="1 to 20000 characters"):
        store.start_loops("f", [LoopInput(review="   ")])
    loop = start(store, "f", "x")[0]
    with pytest.raises(DataError, match=r"label '2' is not one of this flow's labels \(-1, 0, 1\)"):
        store.answer(loop, "ann", "2")
    with pytest.raises(ConfigError, match="is not a valid name"):
        store.answer(loop, "<script>", "1")
    with pytest.raises(UnknownLoop, match="no human loop named 'nope'"):
        store.answer("nope", "ann", "1")
    store.answer(loop, "ann", "1")
    with pytest.raises(LoopClosed, match="Completed: it takes no more answers"):
        store.answer(loop, "bob", "1")
    with pytest.raises(ConfigError, match="--status must be one of"):
        store.loops(status="Done")
    assert [loop.status for loop in store.loops(flow="f")] == ["Completed"]


def test_label_studio_round_trip_and_malformed_files(store, tmp_path):
    store.create_flow("sentiment", reviewers_per_item=2)
    first, second = start(store, "sentiment", "Runs small", "Great colour")
    store.answer(first, "ann", "-1")
    assert export_loops(store, tmp_path / "tasks.json", fmt="label-studio", flow="sentiment") == 2
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert [t["data"]["loop"] for t in tasks] == [first, second]
    assert tasks[0]["predictions"][0]["result"][0]["value"]["choices"] == ["0"]
    # Annotated in Label Studio: a second answer for each exported task, and a new task of its own.
    tasks[0]["annotations"].append({"completed_by": 7, "result": [
        {"type": "choices", "from_name": "sentiment", "to_name": "text", "value": {"choices": ["-1"]}}]})
    tasks[1]["annotations"] = [{"completed_by": {"email": "eve@example.com"}, "result": [
        {"type": "choices", "value": {"choices": ["1"]}}]}, {"was_cancelled": True, "result": []}]
    tasks.append({"data": {"text": "Brand new review"}, "annotations": [
        {"completed_by": 7, "result": [{"type": "choices", "value": {"choices": ["0"]}}]}]})
    (tmp_path / "annotated.json").write_text(json.dumps(tasks))
    result = import_label_studio(store, tmp_path / "annotated.json", flow="sentiment")
    assert result.started == 1 and result.answers == 3
    assert result.skipped == [f"ann has answered human loop {first} already; one answer per reviewer"]
    assert store.loop(first).status == "Completed" and store.loop(first).label == "-1"
    assert [a["reviewer"] for a in store.loop(second).answers] == ["eve@example.com"]

    export_loops(store, tmp_path / "loops.csv", fmt="csv")
    table = pd.read_csv(tmp_path / "loops.csv", dtype=str)
    assert len(table) == 3 and table.set_index("loop").loc[first, "answers"] == "ann=-1;label-studio 7=-1"

    for content, message in (("{not json", "is not a Label Studio JSON export"),
                             ('{"data": {}}', "should be a list of tasks, not a dict"),
                             ('[{"data": {"text": ""}}]', "task 1 has no data.text"),
                             ('[{"data": {"text": "x"}, "annotations": [{"result": []}]}]', "has no single choice"),
                             ('[{"data": {"text": "x"}, "annotations": 5}]', "annotations must be a list"),
                             ('[{"data": {"text": "x"}, "annotations": [{"result": 5}]}]', "has no single choice"),
                             ('[{"data": {"text": "ok"}}, {"data": {"text": "' + "x" * 20_001 + '"}}]',
                              "task 2: data.text is longer than 20000 characters"),
                             ('[{"data": {"text": "x"}, "annotations": [{"result": [{"type": "choices", '
                              '"value": {"choices": ["5"]}}]}]}]', "label '5' is not one of the flow's labels")):
        (tmp_path / "bad.json").write_text(content)
        before = len(store.loops())
        with pytest.raises(DataError, match=message):
            import_label_studio(store, tmp_path / "bad.json", flow="sentiment")
        assert len(store.loops()) == before  # checked whole before anything is written
    store.create_flow("other")
    elsewhere = start(store, "other", "Another flow's item")[0]
    (tmp_path / "other.json").write_text(json.dumps([{"data": {"text": "x", "loop": elsewhere}, "annotations": [
        {"completed_by": 1, "result": [{"type": "choices", "value": {"choices": ["1"]}}]}]}]))
    moved = import_label_studio(store, tmp_path / "other.json", flow="sentiment")
    assert moved.answers == 0 and moved.skipped == [f"task of loop {elsewhere}: that loop belongs to flow other, "
                                                    "not sentiment"]
    assert store.loop(elsewhere).answers == []  # another flow's loop is never touched
    with pytest.raises(DataError, match="--format must be one of csv, label-studio"):
        export_loops(store, tmp_path / "x", fmt="xml")
    assert not (tmp_path / "x").exists()


def test_the_starter_names_loops_at_once_and_writes_them_in_the_background(store):
    flow = store.create_flow("sentiment", threshold=0.9)
    flushed = []
    starter = LoopStarter(store, flow, flush_seconds=3600, on_flush=lambda s, f: flushed.append((s, f)))
    predictions = [SimpleNamespace(label=1, probabilities={"-1": 0.05, "0": 0.05, "1": 0.9}),
                   SimpleNamespace(label=0, probabilities={"-1": 0.3, "0": 0.4, "1": 0.3}),
                   SimpleNamespace(label="odd", probabilities={"odd": 0.5, "1": 0.5})]
    names = starter.consider(["Sure", "Unsure", "Odd label"], predictions, ["id1", "id2", "id3"],
                             {"name": "reviews-sentiment", "version": "4", "kind": "fasttext"})
    assert names[0] is None and names[1] and names[2]  # 0.9 is not below the 0.9 threshold
    assert store.loops() == []  # nothing written on the request's path
    assert starter.flush() == 2 and flushed == [(2, 0)]
    unsure = store.loop(names[1])
    assert (unsure.initial_value, unsure.confidence, unsure.inference_id, unsure.model["version"]) == ("0", 0.4, "id2", "4")
    assert store.loop(names[2]).initial_value is None  # not one of the flow's labels: nothing pre-selected
    odd = LoopInput(review="", name="loop-odd")  # one item the store refuses loses only itself
    starter._queue.extend([odd, LoopInput(review="Fine", initial_value="1", confidence=0.5, name="loop-fine")])
    assert starter.flush() == 1 and starter.failed == 1 and store.loop("loop-fine").review == "Fine"
    small = LoopStarter(store, flow, max_items=1, flush_seconds=3600)
    assert small.consider(["a", "b"], [predictions[1]] * 2, ["x", "y"], {})[1] is None and small.dropped == 1
    small.close()
    starter.close()


def test_reviewed_labels_override_add_and_snapshot(store, tmp_path):
    store.create_flow("sentiment")
    relabel, confirm, fresh, older = start(store, "sentiment", "Runs  small", "Love it", "Brand new", "Runs small")
    store.answer(older, "ann", "0")
    store.answer(relabel, "bob", "-1")  # the latest review of the same text wins
    store.answer(confirm, "ann", "1")
    store.answer(fresh, "cid", "0")
    reviews = pd.DataFrame({"sentiment": [1, 1, 1, 0], "review_body": ["Runs small", "Love it", "Runs small", "Meh"],
                            "product_category": ["Dresses", "Tops", "Dresses", "Tops"]})
    merged, snapshot, summary = apply_reviewed(reviews, reviewed_labels(store))
    assert summary == {"loops": 3, "relabelled": 1, "confirmed": 1, "added": 1}
    assert merged["sentiment"].tolist() == [-1, 1, -1, 0, 0]
    assert merged.iloc[-1].to_dict() == {"sentiment": 0, "review_body": "Brand new", "product_category": "Unknown"}
    assert set(snapshot["loop"]) == {relabel, confirm, fresh}
    written = write_snapshot(snapshot, tmp_path / "snapshots")
    assert written["reviewers"] == ["ann", "bob", "cid"] and written["path"].endswith(f"{written['sha256']}.csv")
    assert write_snapshot(snapshot, tmp_path / "snapshots")["path"] == written["path"]  # the same labels, one file
    unchanged, _, nothing = apply_reviewed(reviews, reviewed_labels(ReviewStore(tmp_path / "empty")))
    assert nothing["loops"] == 0 and unchanged is reviews


def test_the_feature_store_versions_only_the_labels_people_corrected():
    from datetime import datetime, timedelta, timezone

    from sagestack.features.engineering import content_hash, engineer_features

    reviews = pd.DataFrame({"sentiment": [1, 0, -1] * 4, "review_body": [f"review {i}" for i in range(12)],
                            "product_category": ["Dresses", "Tops", "Jackets"] * 4})
    first = datetime(2026, 11, 1, tzinfo=timezone.utc)
    table = engineer_features(reviews, now=first)
    edited = reviews.assign(sentiment=[-1, 0, -1] * 4)  # the file now says -1 for reviews 0, 3, 6 and 9
    assert engineer_features(edited, existing=table).equals(table)  # a plain ingest never rewrites a stored label
    corrected = {content_hash("review 0", "Dresses")}
    versioned = engineer_features(edited, existing=table, relabel=corrected, now=first + timedelta(days=1))
    rows = versioned[versioned["review_body"] == "review 0"]
    assert rows["sentiment"].tolist() == [1, -1] and rows["label_id"].tolist() == [2, 0]
    assert rows["review_id"].nunique() == 1 and rows["split_type"].nunique() == 1  # the same review, a later label
    assert len(versioned) == len(table) + 1


def test_include_reviewed_reads_the_callers_review_database_before_any_step(tmp_path):
    from sagestack.pipelines.runner import run_local
    from sagestack.config import load_settings

    # The steps get the caller's settings, so the caller's review database is the one read: here one
    # nothing listens on, refused with the store's own line before a step runs.
    settings = load_settings(cwd=tmp_path, environ={"SAGESTACK_REVIEW_DB": "postgresql://u:p@127.0.0.1:1/review"},
                             home=tmp_path / "home")
    with pytest.raises(ConfigError, match="cannot reach the review database"):
        run_local({"include_reviewed": True}, settings=settings)
    assert not (tmp_path / "home" / "pipelines" / "runs").exists() or not any((tmp_path / "home" / "pipelines" / "runs").iterdir())


def test_a_store_on_an_unreachable_database_starts_and_says_so_when_used(tmp_path):
    store = ReviewStore(tmp_path / "review", "postgresql://u:p@127.0.0.1:1/review")  # nothing listens on port 1
    with pytest.raises(ConfigError, match="cannot reach the review database"):
        store.flows()
    with pytest.raises(ConfigError, match="must be a PostgreSQL URL"):
        ReviewStore(tmp_path / "review", "mysql://u:p@host/review")
