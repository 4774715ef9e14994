"""`--data NAME`: the embedded datasets by name from any folder, `sagestack data list`, and no lookup
outside the clone."""

import json

import pandas as pd
import pytest

from sagestack.config import load_settings
from sagestack.data.atomic import sha256_file
from sagestack.data.embedded import EMBEDDED_SHA256
from sagestack.data.resolver import list_datasets, resolve_dataset
from sagestack.errors import DataError


def test_a_dataset_name_resolves_to_the_embedded_copy_and_an_existing_file_wins(settings, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    found = resolve_dataset("reviews_balanced.csv", settings=settings)
    assert found.source == "embedded" and sha256_file(found.path) == EMBEDDED_SHA256["reviews_balanced.csv"]
    mine = tmp_path / "reviews_balanced.csv"
    mine.write_text("sentiment,review_body\n1,mine\n")
    here = resolve_dataset("reviews_balanced.csv", settings=settings)
    assert here.source == "explicit" and here.path.resolve() == mine


def test_a_name_is_looked_up_in_sagestack_data_before_the_package(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "reviews_clarify_lab.csv").write_text("x\n1\n")
    settings = load_settings(cwd=tmp_path, environ={"SAGESTACK_DATA": str(folder)}, home=tmp_path / "home")
    assert resolve_dataset("reviews_clarify_lab.csv", settings=settings).source == "env"
    assert resolve_dataset("reviews_balanced.csv", settings=settings).source == "embedded"


def test_an_unknown_name_says_so_without_the_environment_hint(settings, tmp_path):
    with pytest.raises(DataError) as error:
        resolve_dataset(tmp_path / "reviews.csv", settings=settings)
    assert str(error.value) == (f"data file not found: {tmp_path / 'reviews.csv'}; pass an existing file or a dataset "
                                "name from `sagestack data list` (reviews_balanced.csv, reviews_clarify_lab.csv)")
    assert "SAGESTACK_DATA" not in str(error.value)


def test_nothing_beside_the_working_directory_stands_in_for_a_dataset(tmp_path, monkeypatch):
    """The course folder layout (`../shared/data`) beside the working directory is not searched."""
    shared = tmp_path / "shared" / "data"
    shared.mkdir(parents=True)
    (shared / "reviews_balanced.csv").write_text("not,the,dataset\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    settings = load_settings(cwd=work, environ={}, home=tmp_path / "home")
    assert resolve_dataset(settings=settings).source == "embedded"
    assert resolve_dataset("reviews_balanced.csv", settings=settings).source == "embedded"


def test_list_datasets_counts_rows_and_hashes(settings):
    listed = {d.name: d for d in list_datasets(settings)}
    assert sorted(listed) == ["reviews_balanced.csv", "reviews_clarify_lab.csv"]
    assert listed["reviews_balanced.csv"].rows == len(pd.read_csv(listed["reviews_balanced.csv"].path)) == 7110
    assert listed["reviews_clarify_lab.csv"].rows == 486
    assert all(d.sha256 == EMBEDDED_SHA256[d.name] and d.source == "embedded" for d in listed.values())


def test_data_list_and_data_by_name_on_the_command_line(cli, tmp_path):
    table = cli("data", "list", check=True).stdout.splitlines()
    assert table[0].split() == ["name", "rows", "bytes", "sha256", "source"]
    assert table[1].split()[:2] == ["reviews_balanced.csv", "7,110"] and table[1].split()[-1] == "embedded"
    assert table[2].split()[:2] == ["reviews_clarify_lab.csv", "486"]
    assert table[1].index("embedded") == table[2].index("embedded") == table[0].index("source")
    listed = cli("data", "list", "--json", check=True).json["datasets"]
    assert [(d["name"], d["rows"], d["source"]) for d in listed] == [
        ("reviews_balanced.csv", 7110, "embedded"), ("reviews_clarify_lab.csv", 486, "embedded")]
    prepared = cli("data", "prepare", "--data", "reviews_clarify_lab.csv", "--out", str(tmp_path / "prepared"), "--json",
                   check=True).json
    assert sum(sum(c.values()) for c in prepared["counts"].values()) == 486
    missing = cli("data", "prepare", "--data", "reviews.csv", "--out", str(tmp_path / "p2"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines()[-1] == (
        "error: data file not found: reviews.csv; pass an existing file or a dataset name from `sagestack data list` "
        "(reviews_balanced.csv, reviews_clarify_lab.csv)")
