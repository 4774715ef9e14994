"""Output folders never cost the user a file (issue 24's data-loss cases).

The rule, for every command that writes a folder: a new folder is written whole; an existing one
is replaced only when it is a previous output of the same command or on ``--overwrite``; the
working folder, the home folder and any folder that holds the command's inputs are refused
outright. The CLI cases run ``sagestack``'s real entry point in this process (the ``sagestack_main``
fixture), which keeps them fast; every one checks that the user's files survive.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sagestack.data.atomic import OUTPUT_MARKER, atomic_dir, check_out_dir
from sagestack.errors import ConfigError


def _users_folder(folder: Path) -> dict[str, str]:
    """Fill ``folder`` with files of the user's; return their contents by relative path."""
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    files = {"notes.txt": "my notes", "sub/precious.txt": "do not lose"}
    for name, text in files.items():
        (folder / name).write_text(text)
    return files


def _survived(folder: Path, files: dict[str, str]) -> bool:
    return all((folder / name).is_file() and (folder / name).read_text() == text for name, text in files.items())


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_bias_refuses_a_folder_of_the_users_and_replaces_it_only_on_overwrite(sagestack_main, sample_csv):
    out = sagestack_main.work / "out2"
    files = _users_folder(out)
    code, _, err = sagestack_main("bias", "--data", sample_csv, "--facet", "product_category", "--out", "out2")
    assert code == 2
    assert _one_error_line(err) == ("error: --out out2 exists and holds files sagestack did not write (notes.txt, sub); "
                                    "choose another folder or pass --overwrite")
    assert _survived(out, files)

    code, _, err = sagestack_main("bias", "--data", sample_csv, "--facet", "product_category", "--out", "out2",
                                  "--overwrite")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [OUTPUT_MARKER, "analysis.json", "report.html"]


def test_a_rerun_of_the_same_command_replaces_its_own_output(sagestack_main, sample_csv):
    for _ in range(2):
        code, _, err = sagestack_main("bias", "--data", sample_csv, "--facet", "product_category", "--out", "report")
        assert code == 0, err
    marker = json.loads((sagestack_main.work / "report" / OUTPUT_MARKER).read_text())
    assert marker["written_by"] == "sagestack" and marker["command"] == "bias"
    assert sorted(marker["files"]) == ["analysis.json", "report.html"]  # each with its size and time
    assert not [p for p in sagestack_main.work.iterdir() if p.name.startswith(".report.")]  # no temp or old folders


@pytest.mark.parametrize("where", [".", "WORK", "..", "~"])
def test_the_working_folder_its_parents_and_the_home_folder_are_refused_even_with_overwrite(
        sagestack_main, sample_csv, where, monkeypatch):
    fake_home = sagestack_main.work.parent / "user-home"
    monkeypatch.setenv("HOME", str(fake_home))
    home_files = _users_folder(fake_home)
    files = _users_folder(sagestack_main.work)
    out = {"WORK": str(sagestack_main.work), "~": str(fake_home)}.get(where, where)
    for extra in ((), ("--overwrite",)):
        code, _, err = sagestack_main("bias", "--data", sample_csv, "--facet", "product_category", "--out", out, *extra)
        assert code == 2
        line = _one_error_line(err)
        assert line.startswith(f"error: --out {out} ") and "choose a new folder" in line, line
    assert _survived(sagestack_main.work, files) and _survived(fake_home, home_files)


def test_a_folder_that_holds_the_input_data_is_refused(sagestack_main, sample_csv):
    data = sagestack_main.work / "data"
    data.mkdir()
    shutil.copy(sample_csv, data / "reviews.csv")
    code, _, err = sagestack_main("bias", "--data", data / "reviews.csv", "--facet", "product_category",
                                  "--out", "data", "--overwrite")
    assert code == 2
    assert "contains" in _one_error_line(err) and (data / "reviews.csv").read_bytes() == sample_csv.read_bytes()


def test_train_fasttext_does_not_replace_a_prepared_data_folder(sagestack_main, sample_split):
    victim = sagestack_main.work / "victim"
    shutil.copytree(sample_split, victim)
    before = {p.name: p.read_bytes() for p in victim.iterdir()}
    code, _, err = sagestack_main("train", "fasttext", "--train", sample_split / "train.txt", "--out", "victim",
                                  "--no-register")
    assert code == 2
    assert _one_error_line(err) == ("error: --out victim holds the output of `sagestack data prepare`, not of "
                                    "`sagestack train fasttext`; choose another folder or pass --overwrite")
    assert {p.name: p.read_bytes() for p in victim.iterdir()} == before


def test_the_monitoring_baseline_does_not_replace_a_trained_model(sagestack_main, sample_split):
    """The README once used ``--out baseline/`` for both: following both examples deleted the model."""
    code, _, err = sagestack_main("train", "baseline", "--train", sample_split / "train.csv", "--out", "baseline",
                                  "--no-register")
    assert code == 0, err
    model = {p.name: p.read_bytes() for p in (sagestack_main.work / "baseline").iterdir()}
    code, _, err = sagestack_main("monitor", "baseline", "--data", sample_split / "validation.csv",
                                  "--model", "reviews-sentiment@champion", "--out", "baseline")
    assert code == 2
    assert "holds the output of `sagestack train baseline`" in _one_error_line(err)
    assert {p.name: p.read_bytes() for p in (sagestack_main.work / "baseline").iterdir()} == model


def test_a_home_that_is_a_file_is_one_line_and_exit_2(sagestack_main, tmp_path):
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("mine")
    code, _, err = sagestack_main("--home", not_a_folder, "models", "list")
    assert code == 2
    assert "is not a folder" in _one_error_line(err) and not_a_folder.read_text() == "mine"


def test_an_output_file_of_the_users_is_replaced_only_on_overwrite(sagestack_main, tmp_path):
    """Files carry no marker: an existing one is the user's (review export here, the same for every --out FILE)."""
    mine = sagestack_main.work / "labels.csv"
    mine.write_text("mine")
    code, _, err = sagestack_main("review", "export", "--out", "labels.csv")
    assert code == 2
    assert _one_error_line(err) == ("error: --out labels.csv exists; choose another file name or pass --overwrite "
                                    "to replace it")
    assert mine.read_text() == "mine"
    code, _, err = sagestack_main("review", "export", "--out", "labels.csv", "--overwrite")
    assert code == 0, err
    assert mine.read_text() != "mine"


# The library helper on its own: what the commands above rely on.

def test_check_out_dir_accepts_a_new_or_empty_folder_and_its_own_output(tmp_path):
    check_out_dir(tmp_path / "new", command="bias")
    (tmp_path / "empty").mkdir()
    check_out_dir(tmp_path / "empty", command="bias")
    with atomic_dir(tmp_path / "own", command="bias") as tmp:
        (tmp / "a.json").write_text("{}")
    check_out_dir(tmp_path / "own", command="bias")
    with pytest.raises(ConfigError, match="holds the output of `sagestack bias`, not of `sagestack explain`"):
        check_out_dir(tmp_path / "own", command="explain")
    check_out_dir(tmp_path / "own", command="explain", overwrite=True)


def test_check_out_dir_refuses_links_and_files_and_a_forged_marker_counts_as_the_users(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(ConfigError, match="is a link"):
        check_out_dir(tmp_path / "link", command="bias", overwrite=True)
    (tmp_path / "file").write_text("mine")
    with pytest.raises(ConfigError, match="exists and is not a folder"):
        check_out_dir(tmp_path / "file", command="bias")
    forged = tmp_path / "forged"
    forged.mkdir()
    (forged / OUTPUT_MARKER).write_text("not json")
    with pytest.raises(ConfigError, match="holds files sagestack did not write"):
        check_out_dir(forged, command="bias")


def test_files_added_while_the_job_ran_are_not_lost(tmp_path):
    """atomic_dir checks again just before it replaces its own previous output, file by file."""
    target = tmp_path / "out"
    with atomic_dir(target, command="bias") as tmp:
        (tmp / "a.json").write_text("{}")
    with pytest.raises(ConfigError, match="holds files sagestack did not write"):
        with atomic_dir(target, command="bias") as tmp:
            (target / "sub").mkdir()
            (target / "sub" / "added-meanwhile.txt").write_text("mine")
            (tmp / "a.json").write_text("{}")
    assert (target / "sub" / "added-meanwhile.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # the temp folder is gone


@pytest.mark.parametrize("command, option", [
    (("pipeline", "compile"), "--out"),
    (("tune", "fasttext", "--train", "s3://reviews/train.txt", "--validation", "s3://reviews/validation.txt",
      "--epochs", "5:30"), "--emit-katib"),
])
def test_a_written_file_of_the_users_is_replaced_only_on_overwrite(sagestack_main, command, option):
    mine = sagestack_main.work / "mine.yaml"
    mine.write_text("mine")
    code, _, err = sagestack_main(*command, option, "mine.yaml")
    assert code == 2
    assert _one_error_line(err) == (f"error: {option} mine.yaml exists; choose another file name or pass --overwrite "
                                    "to replace it")
    assert mine.read_text() == "mine"
    code, _, err = sagestack_main(*command, option, "mine.yaml", "--overwrite")
    assert code == 0, err
    written = mine.read_text()
    assert "kind: Experiment" in written or "pipelineInfo" in written  # the Katib Experiment / the KFP IR


def test_every_local_input_is_protected_not_only_the_data(sagestack_main, sample_split):
    """A model folder given as --model lies inside --out: even --overwrite may not replace it."""
    code, _, err = sagestack_main("train", "baseline", "--train", sample_split / "train.csv", "--out", "w/m",
                                  "--no-register")
    assert code == 0, err
    model = {p.name: p.read_bytes() for p in (sagestack_main.work / "w" / "m").iterdir()}
    code, _, err = sagestack_main("bias", "--data", sample_split / "test.csv", "--facet", "product_category",
                                  "--model", "w/m", "--out", "w", "--overwrite")
    assert code == 2
    assert _one_error_line(err).startswith("error: --out w contains the input w/m; the output replaces the whole folder")
    assert {p.name: p.read_bytes() for p in (sagestack_main.work / "w" / "m").iterdir()} == model


def test_a_previous_output_whose_file_the_user_edited_is_theirs(sagestack_main, sample_csv):
    code, _, err = sagestack_main("bias", "--data", sample_csv, "--facet", "product_category", "--out", "report")
    assert code == 0, err
    edited = sagestack_main.work / "report" / "analysis.json"
    edited.write_text(edited.read_text() + "\n")  # my notes
    code, _, err = sagestack_main("bias", "--data", sample_csv, "--facet", "product_category", "--out", "report")
    assert code == 2
    assert _one_error_line(err) == ("error: --out report exists and holds files sagestack did not write (analysis.json); "
                                    "choose another folder or pass --overwrite")
    assert edited.read_text().endswith("\n")


@pytest.mark.parametrize("args", [
    ("bias", "--facet", "product_category", "--out", "a-file/out"),
    ("review", "export", "--out", "a-file/labels.csv"),
    ("--home", "a-file/home", "models", "list"),
])
def test_a_path_under_a_file_is_one_line_not_a_traceback(sagestack_main, sample_csv, args):
    (sagestack_main.work / "a-file").write_text("mine")
    if args[0] == "bias":
        args = ("bias", "--data", sample_csv, *args[1:])
    code, _, err = sagestack_main(*args)
    assert code == 2 and "a-file is not a folder" in _one_error_line(err)
    assert (sagestack_main.work / "a-file").read_text() == "mine"


def test_overwrite_does_not_reach_into_the_sagestack_home(sagestack_main, sample_csv, tmp_path):
    code, _, err = sagestack_main("bias", "--data", sample_csv, "--facet", "product_category",
                                  "--out", tmp_path / "home" / "mlartifacts", "--overwrite")
    assert code == 2 and "lies inside the sagestack home" in _one_error_line(err)


@pytest.mark.parametrize("command", [
    ("train", "bert", "--tiny", "--data", "reviews_clarify_lab.csv", "--no-register"),
    ("tune", "fasttext", "--train", "t.txt", "--validation", "t.txt", "--epochs", "5:30"),
])
def test_a_run_folder_that_is_a_file_is_one_line(sagestack_main, command):
    (sagestack_main.work / "t.txt").write_text("__label__1 love it\n__label__-1 hate it\n" * 5)
    (sagestack_main.work / "a-file").write_text("mine")
    code, _, err = sagestack_main(*command, "--out", "a-file")
    assert code == 2 and "a-file is a file; pass a new folder" in _one_error_line(err)
    assert (sagestack_main.work / "a-file").read_text() == "mine"
