"""BERT fine-tuning: the Debugger hooks' step-time overhead, samples/s, bf16 and MFU, and test accuracy.

Runs here (CPU) and, unchanged, on a GPU machine's stock PyTorch image (torch + transformers +
pandas only, with ``src/`` on the path). In one run, on the same data and initial weights:

1. Overhead: the same loop without hooks, with the default Debugger configuration (losses +
   gradient/weight norms every 100 steps, the default rules in-process), and with everything
   recorded every step; rounds interleaved, the best round of each kept; ratio to no hooks.
2. On a GPU: samples/s in float32 and with bf16 autocast, and model FLOPs utilization
   (6·N·T + 12·L·T²·d FLOPs per sequence of T tokens, N non-embedding parameters, L layers,
   width d; against the card's dense bf16 peak).
3. With ``--full``: the default fine-tune (3 epochs) on the 7,110 reviews, seeded 90/5/5 split
   as the course, its test accuracy and the time it took.

Run: .venv/bin/python bench/bert.py [--steps 40] [--batch 16] [--full] [--model-dir DIR] [--data CSV]
"""

from __future__ import annotations

import argparse
import copy
import json
import lzma
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # the GPU image has no sagestack installed

from sagestack.bert.data import LABELS, csv_splits, encode  # noqa: E402
from sagestack.bert.model import build_model  # noqa: E402
from sagestack.bert.params import BertParams  # noqa: E402
from sagestack.bert.training import evaluate, pick_device, train  # noqa: E402
from sagestack.debugger.config import DebuggerConfig  # noqa: E402
from sagestack.debugger.hook import DebuggerHook  # noqa: E402

# Dense bf16 tensor-core peaks (FLOP/s) by device name, from NVIDIA's data sheets.
PEAK_BF16 = {"H100 PCIe": 756e12, "H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}


def data_file(given: str | None) -> Path:
    """The reviews CSV: given, ../shared/data, or the copy embedded in the package (decompressed)."""
    if given:
        return Path(given)
    shared = ROOT.parent / "shared" / "data" / "reviews_balanced.csv"
    if shared.is_file():
        return shared
    target = Path(tempfile.gettempdir()) / "reviews_balanced.csv"
    with lzma.open(ROOT / "src/sagestack/data/embedded/reviews_balanced.csv.xz") as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return target


def default_rules():
    from sagestack.debugger.rules import DEFAULT_RULES, parse_rule

    return [parse_rule(name) for name in DEFAULT_RULES]


def hooks_for(setting: str, directory: Path):
    if setting == "none":
        return []
    if setting == "default":
        return [DebuggerHook(directory, DebuggerConfig(), default_rules(), num_labels=3)]
    return [DebuggerHook(directory, DebuggerConfig.everything(save_interval=1), default_rules(), num_labels=3)]


def flops_per_sequence(model, tokens: int) -> float:
    """Training FLOPs of one sequence: 6·N·T + 12·L·T²·d (PaLM's appendix B formula)."""
    config = model.config
    embedding = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    non_embedding = sum(p.numel() for p in model.parameters()) - embedding
    return 6 * non_embedding * tokens + 12 * config.num_hidden_layers * tokens**2 * config.hidden_size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--everything-steps", type=int, default=30,
                        help="steps of the record-everything runs (rules re-read a recording that grows every step)")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--sweep", action="store_true", help="with --full: also other learning rates and epochs")
    parser.add_argument("--tiny", action="store_true", help="the tiny random BERT (a smoke run of this script)")
    parser.add_argument("--no-overhead", action="store_true", help="skip the hook-overhead runs")
    parser.add_argument("--configs", default="",
                        help="with --full: extra runs 'lr:epochs:seq_len:batch:seed[:pooling];...'")
    parser.add_argument("--pooling", default="cls", help="with --full: the default fine-tune's pooling (cls or mean)")
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--data", default=None)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    import torch

    device = pick_device(None)
    name = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    figures = {"device": name, "torch": torch.__version__}
    print(f"device: {name}; torch {torch.__version__}", flush=True)
    parts = csv_splits(data_file(args.data), seed=42)
    base, tokenizer, source = build_model(args.model_dir, tiny=args.tiny, seed=42)
    train_rows = encode(parts["train"], tokenizer, 128)
    print(f"model: {source}; {sum(p.numel() for p in base.parameters()) / 1e6:.1f} M parameters", flush=True)

    # 1. Hook overhead, interleaved rounds on identical starting weights.
    params = BertParams(train_batch_size=args.batch, max_steps=args.steps, run_validation=False, epochs=1000)
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        run = 0
        for _ in range(0 if args.no_overhead else args.rounds):
            for setting in ("none", "default", "everything"):
                run += 1
                model = copy.deepcopy(base)
                steps = min(args.steps, args.everything_steps) if setting == "everything" else args.steps
                result = train(model, train_rows, None, params.updated(max_steps=steps),
                               callbacks=hooks_for(setting, Path(tmp) / str(run)), device=device)
                best[setting] = max(best.get(setting, 0.0), result.samples_per_second)
                print(f"  {setting:>10}: {result.samples_per_second:8.2f} samples/s ({steps} steps of {args.batch})",
                      flush=True)
    for setting in ("default", "everything") if best else ():
        overhead = best["none"] / best[setting] - 1
        figures[f"overhead_{setting}"] = overhead
        print(f"step-time overhead, {setting} Debugger configuration: {overhead * 100:+.2f} % "
              f"({best[setting]:.2f} vs {best['none']:.2f} samples/s without hooks)", flush=True)
    figures["samples_per_second"] = best.get("none")

    # 2. GPU: float32 vs bf16 autocast, and MFU.
    if device == "cuda":
        for bf16 in (False, True):
            model = copy.deepcopy(base)
            result = train(model, train_rows, None, params, device=device, bf16=bf16)
            rate = result.samples_per_second
            figures["samples_per_second_bf16" if bf16 else "samples_per_second_fp32"] = rate
            line = f"{'bf16 autocast' if bf16 else 'float32'}: {rate:.1f} samples/s"
            if bf16:
                peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
                achieved = rate * flops_per_sequence(model, 128)
                line += f", {achieved / 1e12:.1f} TFLOP/s"
                if peak:
                    figures["mfu"] = achieved / peak
                    line += f", MFU {achieved / peak * 100:.1f} % of {peak / 1e12:.0f} TFLOP/s dense bf16"
            print(line, flush=True)

    # 3. The default fine-tune on the 7,110 reviews (and, with --sweep, a few other settings).
    if args.full:
        settings = [BertParams(pooling=args.pooling)]
        if args.sweep:
            settings += [BertParams(learning_rate=lr, epochs=epochs) for lr, epochs in
                         ((3e-5, 3), (1e-4, 3), (5e-5, 5), (1e-4, 5))]
        for text in filter(None, args.configs.split(";")):
            lr, epochs, length, batch, seed, *pooling = text.split(":")
            settings.append(BertParams(learning_rate=float(lr), epochs=int(epochs), max_seq_length=int(length),
                                       train_batch_size=int(batch), seed=int(seed), pooling=pooling[0] if pooling else "cls"))
        from torch.utils.data import DataLoader

        for index, full in enumerate(settings):
            length = full.max_seq_length
            rows = train_rows if length == 128 else encode(parts["train"], tokenizer, length)
            validation, test = encode(parts["validation"], tokenizer, length), encode(parts["test"], tokenizer, length)
            same_as_base = full.seed == 42 and full.pooling == "cls"
            model = copy.deepcopy(base) if same_as_base else build_model(args.model_dir, tiny=args.tiny, seed=full.seed,
                                                                         pooling=full.pooling)[0]
            started = time.perf_counter()
            result = train(model, rows, validation, full, device=device)
            seconds = time.perf_counter() - started
            metrics = evaluate(model, DataLoader(test.dataset(), batch_size=64), device, result.bf16)
            if index == 0:
                figures.update(test_accuracy=metrics["validation_accuracy"], full_seconds=seconds,
                               full_samples_per_second=result.samples_per_second)
            figures.setdefault("sweep", []).append({"learning_rate": full.learning_rate, "epochs": full.epochs,
                                                    "max_seq_length": length, "batch": full.train_batch_size,
                                                    "seed": full.seed, "pooling": full.pooling,
                                                    "test_accuracy": metrics["validation_accuracy"],
                                                    "best_validation_accuracy": result.best_validation_accuracy,
                                                    "seconds": seconds})
            print(f"{'default ' if index == 0 else ''}fine-tune ({full.epochs} epochs, lr {full.learning_rate}, "
                  f"batch {full.train_batch_size}, seq {length}, seed {full.seed}, pooling {full.pooling}, {len(rows)} train / {len(validation)} validation / "
                  f"{len(test)} test reviews, labels {LABELS}): test accuracy {metrics['validation_accuracy']:.4f}, "
                  f"best validation accuracy {result.best_validation_accuracy:.4f}, {seconds:.1f} s in all "
                  f"({result.samples_per_second:.1f} samples/s training)", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
