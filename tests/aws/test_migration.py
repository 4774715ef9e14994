"""The migration table (:mod:`sagestack.aws.migration`), in process and in well under a second: the README's table
is the generated one, whether a call is served follows the server's own tables, and every operation it names is
one botocore knows."""

from __future__ import annotations

import json
from pathlib import Path

import botocore.session

from sagestack.aws import migration
from sagestack.aws.migration import COURSE_CALLS, CourseCall, missing
from sagestack.aws.operations import table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readmes_migration_table_is_the_generated_one():
    assert migration.in_readme(README.read_text(encoding="utf-8")) == migration.markdown(), (
        "README.md's migration table is stale: run `python -m sagestack.aws.migration --write README.md`")


def test_write_puts_the_table_between_the_markers_and_only_there(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{migration.BEGIN}\n| old |\n{migration.END}\n\nafter\n", encoding="utf-8")
    assert migration.main(["--write", str(readme)]) == 0 and "rewritten" in capsys.readouterr().out
    text = readme.read_text(encoding="utf-8")
    assert text == f"# x\n\n{migration.BEGIN}\n{migration.markdown()}{migration.END}\n\nafter\n"
    assert migration.main(["--write", str(readme)]) == 0 and "up to date" in capsys.readouterr().out
    readme.write_text("# no markers\n", encoding="utf-8")
    assert migration.main(["--write", str(readme)]) == 2
    assert capsys.readouterr().err.startswith("error: the README must hold the line")


def test_every_operation_named_is_one_botocore_knows():
    session = botocore.session.get_session()
    named = {operation for call in COURSE_CALLS for operation in call.operations}
    named |= {f"{row['service']}:{row['operation']}" for row in table()}  # the server's table spells them so too
    models: dict[str, set[str]] = {}
    unknown = []
    for operation in sorted(named):
        client, name = operation.split(":", 1)
        if client not in models:
            models[client] = set(session.get_service_model(client).operation_names)
        if name not in models[client]:
            unknown.append(operation)
    assert unknown == []


def test_whether_a_call_is_served_follows_the_servers_tables():
    served = migration.served_operations()
    for row, call in zip(migration.rows(), COURSE_CALLS):
        if row["served"]:
            assert set(call.operations) <= served and row["sagestack"].startswith("served: ")
        else:
            assert row["lacking"] and row["sagestack"].startswith(migration.NOT_YET)
    call = CourseCall(1, 1, "x", ("sagemaker:CreateTrainingJob", "sagemaker:NoSuchOperation"),
                      image="training/no-such-image", clarify="no_such_method", metrics="/no/such", gap="a gap")
    assert missing(call) == ["NoSuchOperation", "image no-such-image", "Clarify no_such_method", "metrics /no/such",
                             "a gap"]
    assert missing(CourseCall(1, 1, "x", ("sagemaker:CreateTrainingJob",), image="training/blazingtext")) == []
    # An image known for one kind of job is not known for another.
    assert missing(CourseCall(1, 1, "x", ("sagemaker:CreateProcessingJob",), image="processing/blazingtext")) == [
        "image blazingtext"]
    assert missing(CourseCall(1, 1, "x", ("sagemaker-runtime:InvokeEndpoint",), image="serving/blazingtext")) == []


def test_course_one_is_served_and_every_call_not_served_says_what_to_use(sagestack_main):
    rows = migration.rows()
    course_one = {row["call"]: row["served"] for row in rows if row["course"] == 1}
    assert all(served for call, served in course_one.items() if "run_post_training_bias" not in call
               and "run_explainability" not in call)
    assert all("today: " in row["sagestack"] for row in rows if not row["served"] and row["course"] > 1)
    code, out, _ = sagestack_main("serve-aws", "--migration", "--json")
    assert code == 0 and json.loads(out)["calls"] == rows
    code, out, _ = sagestack_main("serve-aws", "--migration")
    assert code == 0 and out.splitlines()[0].split() == ["COURSE", "SERVED", "CALL", "ON", "SAGESTACK"]
    assert migration.main(["--markdown"]) == 0
