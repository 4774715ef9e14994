"""BERT on the CPU: the most reviews/s the served MiniLM can score in-process here, and the bound that puts
on any endpoint serving it.

An endpoint cannot answer more single-review requests per second than its model scores reviews with the
cores to itself. This bench measures that ceiling with no HTTP at all, on the reviews
``bench/serving_http.py`` sends (the first 200 of the validation split):

1. the reviews' token lengths (MiniLM's tokenizer, the model's ``max_seq_length``) and the short
   warm-up review's, for scale;
2. one process, for every torch thread count up to the cores and batch sizes 1 to 32:
   ``BertPredictor.predict_proba`` reviews/s on the wall clock and per CPU-second (the machine
   is shared: CPU seconds do not count the time other processes held the cores);
3. one process per core, one torch thread each, all scoring at once (the endpoint's default layout);
4. the same model with int8 dynamic quantization of its linear layers (for scale only: it changes the
   predictions, and torch deprecates that API);
5. the bound: the best wall-clock rate, and a generous one (cores x the best reviews per
   CPU-second, i.e. perfect scaling and nobody else on the machine); at 32 clients Little's law
   then puts the mean latency at ``32 / rate`` or more; a lone review's latency with every
   core's threads, the floor of the 1-client latency; and the arithmetic floor: the model's
   FLOPs per review (2 x non-embedding parameters x tokens + attention's 4 x layers x tokens^2 x width)
   times the target rate, against the cores' fp32 FMA peak (AVX2: 32 FLOP per cycle per core, AVX-512: 64).

Run: .venv/bin/python bench/bert_serving_floor.py [--model-dir DIR] [--seconds 3] [--target 108]
(without ``--model-dir`` it trains a few steps of the MiniLM first, as ``bench/serving_http.py`` does:
the serving cost does not depend on how long it trained).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from course_split import blazingtext_split
from sagestack.config import load_settings
from sagestack.data.fasttext_format import read_fasttext
from sagestack.serving.endpoint import WARM_UP_REVIEW
from sagestack.serving.threads import available_cores, server_workers, worker_environment

BATCHES = (1, 4, 8, 16, 32)
N_REVIEWS = 200


def score(predictor, texts: list[str], batch: int, seconds: float) -> tuple[float, float]:
    """Score ``texts`` in rotation, ``batch`` at a time, for ``seconds``: (reviews per wall second, per CPU second)."""
    predictor.predict_proba(texts[:batch])  # first call: lazy start-up
    done, i = 0, 0
    wall, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds:
        predictor.predict_proba([texts[(i + k) % len(texts)] for k in range(batch)])
        i += batch
        done += batch
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return done / wall, done / max(cpu, 1e-9)


def latencies_ms(predictor, texts: list[str]) -> np.ndarray:
    """Milliseconds of each review scored alone."""
    out = []
    for text in texts:
        started = time.perf_counter()
        predictor.predict_proba([text])
        out.append((time.perf_counter() - started) * 1000)
    return np.array(out)


def _one_process(model_dir: str, texts: list[str], batch: int, seconds: float, barrier, results) -> None:
    for name, value in worker_environment(available_cores()).items():  # one per core, as workers that share them
        os.environ.setdefault(name, value)  # before torch loads
    import torch

    from sagestack.models.bert import BertPredictor

    torch.set_num_threads(1)
    predictor = BertPredictor.load(model_dir)
    predictor.predict_proba(texts[:batch])
    barrier.wait()
    results.put(score(predictor, texts, batch, seconds)[0])


def parallel(model_dir: Path, texts: list[str], processes: int, batch: int, seconds: float) -> float:
    """Reviews/s of ``processes`` processes with one torch thread each, scoring at once (summed)."""
    context = multiprocessing.get_context("spawn")  # torch's thread pool does not survive a fork
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=_one_process, args=(str(model_dir), texts, batch, seconds, barrier, results))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    total = sum(results.get(timeout=600) for _ in workers)
    for worker in workers:
        worker.join()
    return total


def flops_per_review(model, lengths: np.ndarray) -> float:
    """Mean forward FLOPs per review of these token lengths (no padding)."""
    config = model.config
    dense = 2 * sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)
    attention = 4 * config.num_hidden_layers * config.hidden_size
    return float(np.mean(dense * lengths + attention * lengths.astype(float) ** 2))


def fp32_peak_per_core() -> tuple[float, str]:
    """This CPU's fp32 FMA peak per core (FLOP/s) from /proc/cpuinfo's clock and SIMD width, and how it was got."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    mhz = max((float(line.split(":")[1]) for line in info.splitlines() if line.startswith("cpu MHz")), default=0.0)
    per_cycle = 64 if " avx512f" in info else 32 if " fma" in info else 16
    return mhz * 1e6 * per_cycle, f"{per_cycle} FLOP/cycle at {mhz / 1000:.2f} GHz"


def trained_model(tmp: Path) -> Path:
    """A few steps of the MiniLM, trained and registered as ``bench/serving_http.py`` does; its model folder."""
    from serving_http import train_kind

    train_kind("bert", tmp / "home", tmp)
    return tmp / "train-bert" / "model"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="a BERT model folder (bert/ and the card); default: train one")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement (default 3)")
    parser.add_argument("--target", type=float, default=108.0,
                        help="the req/s at 32 clients to judge (default 108: twice the issue's 54 req/s)")
    args = parser.parse_args()
    os.environ.pop("OMP_NUM_THREADS", None)  # the thread counts are this bench's to set
    for name, value in worker_environment(server_workers("bert", None)).items():  # as the endpoint's one BERT worker
        os.environ.setdefault(name, value)  # before torch loads
    import torch

    from sagestack.models.bert import BertPredictor

    cores = available_cores()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model_dir = args.model_dir or trained_model(tmp)
        _, validation = blazingtext_split(load_settings(cwd=tmp, environ={}, home=tmp / "home-texts"), tmp)
        texts = read_fasttext(validation)[1][:N_REVIEWS]
        predictor = BertPredictor.load(model_dir)
        lengths = np.array([len(ids) for ids in predictor.tokenizer(texts, truncation=True,
                                                                     max_length=predictor.max_seq_length)["input_ids"]])
        short = len(predictor.tokenizer(WARM_UP_REVIEW)["input_ids"])
        print(f"{cores} cores, load average {os.getloadavg()[0]:.2f}; {len(texts)} validation reviews: tokens mean "
              f"{lengths.mean():.0f}, p50 {np.median(lengths):.0f}, p90 {np.percentile(lengths, 90):.0f}, max "
              f"{lengths.max()} (max_seq_length {predictor.max_seq_length}); the warm-up review: {short} tokens")

        print(f"\n{'one process':<22} {'batch':>5} {'reviews/s':>10} {'per CPU-s':>10}")
        rates = {}
        for threads in range(1, cores + 1):
            torch.set_num_threads(threads)
            for batch in BATCHES:
                rates[threads, batch] = score(predictor, texts, batch, args.seconds)
                print(f"{threads} torch thread(s){'':<5} {batch:>5} {rates[threads, batch][0]:>10.1f} "
                      f"{rates[threads, batch][1]:>10.1f}", flush=True)
        torch.set_num_threads(1)
        short_rate = score(predictor, [WARM_UP_REVIEW], 8, args.seconds)
        print(f"the warm-up review ({short} tokens), 1 thread, batch 8: {short_rate[0]:.1f} reviews/s "
              f"(per CPU-s {short_rate[1]:.1f}): short reviews are what made ~150/s look like the model's rate")

        print(f"\n{'one process per core':<22} {'batch':>5} {'reviews/s':>10}")
        together = {}
        for batch in (1, 8, 32):
            together[batch] = parallel(model_dir, texts, cores, batch, args.seconds)
            print(f"{cores} x 1 torch thread{'':<5} {batch:>5} {together[batch]:>10.1f}", flush=True)

        with warnings.catch_warnings():  # torch's deprecation notices of the quantization API
            warnings.simplefilter("ignore")
            quantized = BertPredictor(torch.ao.quantization.quantize_dynamic(predictor.model, {torch.nn.Linear},
                                                                             dtype=torch.qint8),
                                      predictor.tokenizer, predictor.max_seq_length)
        agree = (quantized.predict_proba(texts).argmax(1) == predictor.predict_proba(texts).argmax(1)).mean()
        int8 = {batch: score(quantized, texts, batch, args.seconds) for batch in (1, 8)}
        print("int8 dynamic quantization, 1 thread (not served): " + ", ".join(
            f"batch {batch}: {wall:.1f} reviews/s, per CPU-s {cpu:.1f}" for batch, (wall, cpu) in int8.items())
            + f"; labels agree with float32 on {agree:.0%} of the reviews")

        torch.set_num_threads(cores)
        alone = latencies_ms(predictor, texts[:100])
        best_wall = max(max(r[0] for r in rates.values()), max(together.values()))
        best_cpu = max(cpu for _, cpu in rates.values())
        generous = cores * best_cpu
        print(f"\na lone review, {cores} torch threads: p50 {np.median(alone):.1f} ms, p99 "
              f"{np.percentile(alone, 99):.1f} ms (the floor of /predict's latency at 1 client, HTTP not included)")
        print(f"best measured: {best_wall:.1f} reviews/s; generous bound ({cores} cores x {best_cpu:.1f} reviews per "
              f"CPU-second, perfect scaling, nobody else on the machine): {generous:.1f} reviews/s")
        print(f"Little's law at 32 clients: at most {generous:.0f} req/s, so a mean latency of at least "
              f"{32 / generous * 1000:.0f} ms (at the measured best: {32 / best_wall * 1000:.0f} ms)")
        flops = flops_per_review(predictor.model, lengths)
        peak, how = fp32_peak_per_core()
        print(f"arithmetic: {flops / 1e9:.2f} GFLOP per review; the best rate is {best_cpu * flops / 1e9:.1f} GFLOP/s "
              f"per core, against an fp32 FMA peak of {peak / 1e9:.1f} ({how}); {args.target:.0f} reviews/s need "
              f"{args.target * flops / 1e9:.0f} GFLOP/s, the {cores} cores' peak is {cores * peak / 1e9:.0f}")
        verdict = "reachable in principle" if generous >= args.target else "NOT reachable here: the model alone is slower"
        print(f"target {args.target:.0f} req/s of single-review /predict at 32 clients: {verdict} "
              f"(needs {args.target / cores:.1f} reviews/s per core, the model does {best_cpu:.1f}"
              + (f"; even at the FMA peak: {peak / flops:.1f})" if peak else ")"))


if __name__ == "__main__":
    main()
