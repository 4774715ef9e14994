"""BlazingText-equivalent training with fastText: supervised classification and word2vec."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sagestack.data.atomic import atomic_dir
from sagestack.data.fasttext_format import LABEL_PREFIX
from sagestack.errors import DataError
from sagestack.models.base import ModelCard
from sagestack.models.evaluation import Evaluation
from sagestack.text.params import BlazingTextParams

Progress = Callable[[str], None]

# fastText argument -> BlazingText name, to report what autotune chose.
_FASTTEXT_TO_BLAZINGTEXT = {
    "epoch": "epochs",
    "lr": "learning_rate",
    "minCount": "min_count",
    "dim": "vector_dim",
    "wordNgrams": "word_ngrams",
    "bucket": "buckets",
}


@dataclass
class TrainResult:
    """What a training run produced.

    ``model_path`` is the saved model (``model.bin``, or ``model.ftz`` when quantized);
    ``vectors_path`` the word vectors (``vectors.vec``, word2vec modes only). ``history``
    lists ``(epochs, validation_accuracy)`` pairs tried by early stopping.
    """

    out_dir: Path
    model_path: Path
    params: BlazingTextParams
    train_seconds: float
    tokens: int
    model_bytes: int
    epochs_run: int
    validation: Evaluation | None = None
    vectors_path: Path | None = None
    history: list[tuple[int, float]] = field(default_factory=list)
    autotuned: bool = False

    @property
    def words_per_sec_per_thread(self) -> float:
        """Training throughput: tokens x epochs run / seconds / threads."""
        threads = self.params.threads or os.cpu_count() or 1
        return self.tokens * self.epochs_run / max(self.train_seconds, 1e-9) / threads

    @property
    def model_size_mb(self) -> float:
        """Size of the saved model file in MB (10^6 bytes)."""
        return self.model_bytes / 1e6

    @classmethod
    def load(cls, out_dir: Path | str) -> "TrainResult":
        """Read back a result saved by :func:`train_fasttext` (``result.json`` in ``out_dir``)."""
        out_dir = Path(out_dir)
        saved = json.loads((out_dir / "result.json").read_text(encoding="utf-8"))
        validation = saved.get("validation")
        return cls(
            out_dir=out_dir,
            model_path=out_dir / Path(saved["model_path"]).name,
            params=BlazingTextParams(**saved["params"]),
            train_seconds=saved["train_seconds"],
            tokens=saved["tokens"],
            model_bytes=saved["model_bytes"],
            epochs_run=saved["epochs_run"],
            validation=Evaluation.from_dict(validation) if validation else None,
            vectors_path=out_dir / "vectors.vec" if saved.get("vectors_path") else None,
            history=[(h["epochs"], h["validation_accuracy"]) for h in saved.get("early_stopping_history", [])],
            autotuned=saved["autotuned"],
        )

    def card(self, labels: list[str]) -> ModelCard:
        """The model card of this output: kind ``fasttext`` (word vectors are not servable)."""
        return ModelCard(
            kind="fasttext",
            labels=labels,
            params=self.params.model_dump(),
            metrics={
                "train_seconds": round(self.train_seconds, 3),
                "words_per_sec_per_thread": round(self.words_per_sec_per_thread, 1),
                "model_size_mb": round(self.model_size_mb, 3),
            },
            validation=self.validation.to_dict() if self.validation else None,
            servable=self.params.mode == "supervised",
        )

    def to_dict(self) -> dict:
        """A JSON-serialisable summary (also written as ``result.json`` next to the model)."""
        out = {
            "out_dir": str(self.out_dir),
            "model_path": str(self.model_path),
            "kind": "fasttext",
            "mode": self.params.mode,
            "params": self.params.model_dump(),
            "train_seconds": round(self.train_seconds, 3),
            "tokens": self.tokens,
            "model_bytes": self.model_bytes,
            "epochs_run": self.epochs_run,
            "words_per_sec_per_thread": round(self.words_per_sec_per_thread, 1),
            "model_size_mb": round(self.model_size_mb, 3),
            "autotuned": self.autotuned,
        }
        if self.validation is not None:
            out["validation_accuracy"] = self.validation.accuracy
            out["validation"] = self.validation.to_dict()
        if self.vectors_path is not None:
            out["vectors_path"] = str(self.vectors_path)
        if self.history:
            out["early_stopping_history"] = [{"epochs": e, "validation_accuracy": a} for e, a in self.history]
        return out


def _check_input(path: Path, role: str, supervised: bool) -> int:
    """Validate a training/validation file; return its token count (labels included)."""
    if not path.is_file():
        raise DataError(f"{role} file not found: {path}; pass a fastText file (see `sagestack data prepare`)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{role} file {path} is not valid UTF-8 (byte offset {exc.start}); re-save it as UTF-8") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise DataError(f"{role} file {path} is empty; it needs one example per line")
    if supervised:
        unlabelled = [i + 1 for i, line in enumerate(text.splitlines()) if line.strip() and not line.startswith(LABEL_PREFIX)]
        if unlabelled:
            raise DataError(
                f"{role} file {path}: line {unlabelled[0]} has no {LABEL_PREFIX} label "
                f"({len(unlabelled)} such line(s)); write lines as '{LABEL_PREFIX}<label> <text>'"
            )
    return sum(len(line.split()) for line in lines)


def _strip_labels(src: Path, dst: Path) -> None:
    """Copy a fastText file without its ``__label__`` tokens (word2vec trains on text only)."""
    with open(src, encoding="utf-8") as fin, open(dst, "w", encoding="utf-8") as fout:
        for line in fin:
            fout.write(" ".join(t for t in line.split() if not t.startswith(LABEL_PREFIX)) + "\n")


def _fit_supervised(train: Path, params: BlazingTextParams):
    import fasttext

    try:
        return fasttext.train_supervised(input=str(train), verbose=0, **params.fasttext_kwargs())
    except ValueError as exc:  # fastText: "Empty vocabulary. Try a smaller -minCount value."
        raise DataError(f"fastText could not train on {train}: {exc}") from None


def train_fasttext(
    train_file: Path | str,
    out_dir: Path | str,
    params: BlazingTextParams,
    *,
    validation_file: Path | str | None = None,
    autotune_seconds: int | None = None,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> TrainResult:
    """Train a BlazingText-equivalent fastText model and save it to ``out_dir`` atomically.

    Supervised mode trains a classifier and, given ``validation_file``, evaluates it there.
    With ``params.early_stopping`` (needs a validation file), models of ``min_epochs``,
    ``min_epochs + 1``, ... epochs are trained and the best on validation is kept; the search
    stops after ``patience`` epoch counts without improvement (fastText cannot resume a run, so
    each count is its own run with its own learning-rate schedule); with ``epochs`` below
    ``min_epochs`` one model of ``epochs`` epochs is trained. With ``autotune_seconds``,
    fastText's autotune searches the hyperparameters on the validation file within that budget.
    ``skipgram``/``cbow`` modes learn word vectors from the text (labels are ignored) and also
    write ``vectors.vec`` in word2vec text format.

    Args:
        train_file: fastText-format training data.
        out_dir: where to write ``model.bin``/``model.ftz``, ``result.json`` (replaced if present).
        params: hyperparameters (BlazingText names).
        validation_file: labelled data for evaluation, early stopping and autotune.
        autotune_seconds: time budget for hyperparameter search (supervised only).
        progress: called with a short message before each long step.
        overwrite: replace ``out_dir`` even if sagestack did not write it (``--overwrite``).

    Returns:
        The result, with validation metrics when a validation file was given.

    Raises:
        DataError: missing, empty, non-UTF-8 or unlabelled input, or an option that needs a
            validation file without one.
    """
    say = progress or (lambda message: None)
    train_file, out_dir = Path(train_file), Path(out_dir)
    supervised = params.mode == "supervised"
    tokens = _check_input(train_file, "training", supervised)
    validation_file = Path(validation_file) if validation_file is not None else None
    if validation_file is not None:
        _check_input(validation_file, "validation", True)
    needs_validation = [name for name, on in (("early_stopping", params.early_stopping), ("autotune", autotune_seconds)) if on]
    if supervised and needs_validation and validation_file is None:
        raise DataError(f"{needs_validation[0]} needs a validation file; pass --validation FILE")
    if not supervised and autotune_seconds:
        raise DataError("autotune works in supervised mode only; drop --autotune-seconds or use --mode supervised")

    from sagestack.models.fasttext import FastTextPredictor, evaluate_fasttext_file

    with atomic_dir(out_dir, command="train fasttext", overwrite=overwrite) as tmp:
        history: list[tuple[int, float]] = []
        vectors_path = None
        start = time.perf_counter()
        if not supervised:
            import fasttext

            say(f"training {params.mode} word vectors ({params.epochs} epochs)")
            text_only = tmp / "text.txt"
            _strip_labels(train_file, text_only)
            model = fasttext.train_unsupervised(input=str(text_only), verbose=0, **params.fasttext_kwargs())
            text_only.unlink()
        elif autotune_seconds:
            import fasttext

            say(f"autotuning hyperparameters on {validation_file} for {autotune_seconds}s")
            kwargs = {"thread": params.fasttext_kwargs()["thread"], "seed": params.seed}
            model = fasttext.train_supervised(
                input=str(train_file),
                autotuneValidationFile=str(validation_file),
                autotuneDuration=int(autotune_seconds),
                verbose=0,
                **kwargs,
            )
            args = model.f.getArgs()
            chosen = {bt: getattr(args, ft) for ft, bt in _FASTTEXT_TO_BLAZINGTEXT.items()}
            params = params.model_copy(update=chosen)
        elif params.early_stopping:
            best = None
            since_best = 0
            # With epochs below min_epochs there is nothing to stop early: one run of `epochs` epochs.
            for epochs in range(min(params.min_epochs, params.epochs), params.epochs + 1):
                say(f"early stopping: training {epochs} epoch(s)")
                candidate = _fit_supervised(train_file, params.model_copy(update={"epochs": epochs}))
                accuracy = evaluate_fasttext_file(FastTextPredictor(candidate), validation_file).accuracy
                history.append((epochs, accuracy))
                if best is None or accuracy > best[1]:
                    best, since_best = (candidate, accuracy, epochs), 0
                else:
                    since_best += 1
                    if since_best >= params.patience:
                        break
            model = best[0]
            params = params.model_copy(update={"epochs": best[2]})
        else:
            say(f"training fastText classifier ({params.epochs} epochs)")
            model = _fit_supervised(train_file, params)
        train_seconds = time.perf_counter() - start

        if supervised and params.quantize:
            say("quantizing the model")
            try:
                model.quantize(input=str(train_file), qnorm=True, retrain=True, cutoff=100_000,
                               thread=params.fasttext_kwargs()["thread"])
            except ValueError as exc:  # fastText's own words name its matrix, not what to do
                if "too small for quantization" not in str(exc):
                    raise
                raise DataError(f"{train_file} makes a model too small to quantize ({len(model.words)} words; fastText "
                                "needs 256 word and n-gram rows): train on more text, with --word-ngrams 2 or more, "
                                "or without --quantize") from None
        model_name = "model.ftz" if supervised and params.quantize else "model.bin"
        model.save_model(str(tmp / model_name))
        if not supervised:
            vectors_path = out_dir / "vectors.vec"
            _write_vectors(model, tmp / "vectors.vec")

        validation = None
        if supervised and validation_file is not None:
            say(f"evaluating on {validation_file}")
            validation = evaluate_fasttext_file(FastTextPredictor(model), validation_file)

        result = TrainResult(
            out_dir=out_dir,
            model_path=out_dir / model_name,
            params=params,
            train_seconds=train_seconds,
            tokens=tokens,
            model_bytes=(tmp / model_name).stat().st_size,
            epochs_run=sum(e for e, _ in history) if history else params.epochs,
            validation=validation,
            vectors_path=vectors_path,
            history=history,
            autotuned=bool(autotune_seconds),
        )
        (tmp / "result.json").write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
        result.card(FastTextPredictor(model).labels if supervised else []).save(tmp)
    return result


def _write_vectors(model, path: Path) -> None:
    """Write word vectors in word2vec text format (``count dim`` header, then ``word v1 v2 ...``)."""
    words = model.get_words()
    with open(path, "w", encoding="utf-8") as out:
        out.write(f"{len(words)} {model.get_dimension()}\n")
        for word in words:
            vector = model.get_word_vector(word)
            out.write(word + " " + " ".join(f"{v:.5f}" for v in vector) + "\n")


def train_prepared(prepared_dir: Path, model_dir: Path, params, context) -> dict:
    """The fastText kind's trainer: fit on ``prepared_dir/train.txt``, score ``validation.txt``.

    Returns:
        ``{"kind", "validation_accuracy", "train_seconds", "model_size_mb"}``.
    """
    from sagestack.text.params import make_params

    split = Path(prepared_dir)
    result = train_fasttext(split / "train.txt", model_dir, make_params(**params.model_dump(), seed=context.seed),
                            validation_file=split / "validation.txt", progress=context.progress)
    return {"kind": "fasttext", "validation_accuracy": result.validation.accuracy,
            "train_seconds": round(result.train_seconds, 3), "model_size_mb": result.model_size_mb}
