"""Browser forms → the ``sagestack`` command a job runs.

Each function reads one submitted form, checks what the form alone can tell, and returns the
job's title and ``sagestack`` arguments. Checks that need the data go through the library
(:func:`sagestack.bias.analysis.validate_config`), so a job that cannot work is refused before it
starts, with the library's own words.
"""

from __future__ import annotations

from pathlib import Path

from sagestack.data.catalog import DataCatalog
from sagestack.errors import ConfigError


def text(form, name: str, default: str = "") -> str:
    """A form field as stripped text (``default`` when absent)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else default


def number(form, name: str, default: float | None, *, low: float, high: float, what: str, integer: bool = False):
    """A numeric form field within [low, high], or ``default`` when empty.

    Raises:
        ConfigError: not a number, or out of range.
    """
    raw = text(form, name)
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise ConfigError(f"{what} must be a{'n integer' if integer else ' number'}, got '{raw}'") from None
    if not low <= value <= high:
        bounds = (int(low), int(high)) if integer else (f"{low:g}", f"{high:g}")  # never "1e+07" steps
        raise ConfigError(f"{what} must be between {bounds[0]} and {bounds[1]}, got {raw}")
    return value


def bias_job(form, catalog: DataCatalog, out: Path) -> tuple[str, list[str]]:
    """A bias job from the Bias page's form: dataset, label, positive values, facet (+ values), group."""
    from sagestack.bias import BiasConfig, LabelSpec
    from sagestack.bias.analysis import validate_config
    from sagestack.bias.job import parse_facet
    from sagestack.data.reviews import read_csv_checked

    name = text(form, "data")
    path = catalog.path(name)
    label, facet_column, group = text(form, "label"), text(form, "facet"), text(form, "group")
    positive = [v for v in form.getlist("positive") if v.strip()]
    facet_values = [v for v in form.getlist("facet_values") if v.strip()]
    if not label or not facet_column:
        raise ConfigError("pick a label column and a facet column")
    if not positive:
        raise ConfigError(f"pick at least one positive value of the label column '{label}'")
    if any("," in v for v in facet_values):
        raise ConfigError("a facet value with a comma cannot be passed to the bias job; rename it in the data")
    facet = f"{facet_column}={','.join(facet_values)}" if facet_values else facet_column
    config = BiasConfig(label=label, positive=LabelSpec(values=tuple(positive)), facets=[parse_facet(facet)],
                        group=group or None)
    validate_config(read_csv_checked(path, as_text=False), config)
    argv = ["bias", "--data", str(path), "--label", label, "--facet", facet, "--out", str(out)]
    for value in positive:
        argv += ["--positive", value]
    if group:
        argv += ["--group", group]
    return f"bias of {name}: {label} ∈ {{{', '.join(positive)}}} by {facet}", argv


def automl_job(form, catalog: DataCatalog, out: Path) -> tuple[str, list[str]]:
    """An AutoML job from the AutoML page's form: dataset, target, text column, time budget, candidates."""
    from sagestack.automl.candidates import CANDIDATES
    from sagestack.data.reviews import read_csv_checked

    name = text(form, "data")
    path = catalog.path(name)
    target, text_column = text(form, "target"), text(form, "text_column")
    time_limit = number(form, "time_limit", 120.0, low=5, high=86400, what="the time budget (seconds)")
    max_candidates = number(form, "max_candidates", 3, low=1, high=len(CANDIDATES), what="max candidates", integer=True)
    columns = list(read_csv_checked(path).columns)
    for role, column in (("target", target), ("text column", text_column)):
        if column not in columns:
            raise ConfigError(f"{role} '{column}' is not a column of {name}; columns are: {', '.join(columns)}")
    if target == text_column:
        raise ConfigError("the target and the text column must be different columns")
    argv = ["automl", "--data", str(path), "--target", target, "--text-column", text_column,
            "--time-limit", f"{time_limit:g}", "--max-candidates", str(max_candidates), "--out", str(out)]
    return f"AutoML on {name}: {target} from {text_column}, {time_limit:g} s, ≤{max_candidates} candidates", argv


def pipeline_job(form, catalog: DataCatalog) -> tuple[str, list[str]]:
    """A pipeline run from the Pipelines page's form: dataset, trainers and a few parameters."""
    from sagestack.models.kinds import trainer_names

    known = trainer_names()
    trainers = [t for t in form.getlist("trainers") if t]
    unknown = [t for t in trainers if t not in known]
    if unknown or not trainers:
        raise ConfigError(f"pick at least one trainer of: {', '.join(known)}")
    argv = ["pipeline", "run", "--trainers", ",".join(trainers)]
    if name := text(form, "data"):
        argv += ["--data", str(catalog.path(name))]
    metric = text(form, "select_metric", "accuracy") or "accuracy"
    if metric not in ("accuracy", "macro_f1"):
        raise ConfigError("the selection metric must be accuracy or macro_f1")
    argv += ["--select-metric", metric]
    for field, option, what, low, high, integer in (
        ("min_accuracy", "--min-accuracy", "the minimum accuracy", 0, 1, False),
        ("epochs", "--epochs", "fastText epochs", 1, 1000, True),
        ("automl_time_limit", "--automl-time-limit", "the AutoML time budget", 5, 86400, False),
        ("bert_max_steps", "--bert-max-steps", "BERT max steps", 0, 10**7, True),
    ):
        value = number(form, field, None, low=low, high=high, what=what, integer=integer)
        if value is not None:
            argv += [option, str(value) if integer else f"{value:g}"]
    if text(form, "bert_model") == "tiny":
        argv += ["--bert-model", "tiny"]
    if form.get("auto_approve"):
        argv.append("--auto-approve")
    return f"pipeline run: {', '.join(trainers)}", argv


def monitor_job(form, catalog: DataCatalog, monitoring_root: Path, out: Path) -> tuple[str, list[str]]:
    """A monitoring run from the Monitoring page: a baseline under HOME/monitoring, a window, optional ground truth."""
    name = text(form, "baseline")
    try:
        baseline = (monitoring_root / name).resolve()
        found = bool(name) and baseline.is_relative_to(monitoring_root.resolve()) and (baseline / "statistics.json").is_file()
    except (ValueError, OSError, RuntimeError):  # a NUL byte, a name too long, a symlink loop
        found = False
    if not found:
        raise ConfigError(f"'{name[:200]}' is not a baseline under {monitoring_root}; make one with `sagestack monitor baseline "
                          f"--out {monitoring_root}/baseline`")
    last = text(form, "last", "1h") or "1h"
    if last not in ("1h", "6h", "24h", "7d"):
        raise ConfigError("the window must be one of 1h, 6h, 24h, 7d")
    argv = ["monitor", "run", "--baseline", str(baseline), "--last", last, "--out", str(out)]
    if truth := text(form, "ground_truth"):
        argv += ["--ground-truth", str(catalog.path(truth))]
    return f"monitoring: the last {last} against {name}", argv
