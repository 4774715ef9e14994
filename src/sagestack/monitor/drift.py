"""Drift tests: is a window of traffic distributed like the baseline?

Each test is a pure function of the baseline's and the window's values, with its formula in the
docstring, registered in :data:`TESTS`. :func:`choose_test` picks one by column type and sample
size the way Evidently's data-drift preset does by default:

- numbers: two-sample Kolmogorov–Smirnov (drift when p < 0.05) when the baseline has at most
  1,000 values, else the Wasserstein distance normed by the baseline's standard deviation (drift
  when > 0.1);
- categories: chi-square (p < 0.05) for at most 1,000 values, else the Jensen–Shannon distance
  (> 0.1).

Where sagestack differs (also in the README):
- a window's tests share one false-alarm budget of 0.01 (Bonferroni: each uses 0.01 / the number
  of tests in the window): a monitor that checks five columns every hour at 0.05 each would alarm
  on a fifth of its healthy windows, more than one a day;
- the chi-square test is the two-sample test of homogeneity (baseline counts against window
  counts), not a fit to the baseline's frequencies as if they were exact;
- a distance is drift only when it also exceeds what sampling alone produces: the bar a healthy
  window crosses with probability at most its share of the budget, from at least
  :data:`NULL_RESAMPLES` pairs of samples of the baseline's population, one of the baseline's
  size and one of the window's (:func:`null_distance`). Evidently's fixed 0.1 alarms on healthy small windows
  (a 200-review window of a 20-category column is ~0.1 from its own population by chance alone);
- a test with fewer than :data:`MIN_SAMPLES` window values reports ``insufficient data``
  instead of a verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from sagestack import stats
from sagestack.plugins import Registry

MIN_SAMPLES = 30
SMALL_REFERENCE = 1000  # Evidently's switch between p-value tests and distances
# The false-alarm budget of one window, shared by its p-value tests (Evidently: 0.05 per test).
ALPHA = 0.01
DISTANCE_THRESHOLD = 0.1
NULL_RESAMPLES = 1000
# Windows larger than this are calibrated as if they had this many values: chance distances only
# shrink with size, so the bar stays conservative, and a million-record window costs no more.
NULL_MAX_SIZE = 5000


@dataclass(frozen=True)
class DriftTest:
    """A registered test: what it computes, and whether a high value (distance) or a low value (p-value) means drift."""

    name: str
    kind: str  # "p_value" or "distance"
    fn: Callable[..., float]
    description: str


TESTS: Registry[DriftTest] = Registry("drift test")


def register(name: str, kind: str, description: str):
    """Decorator: add a test function to :data:`TESTS`."""
    return TESTS.register(name, lambda fn: DriftTest(name, kind, fn, description))


def _aligned(reference: Mapping[str, float], current: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    keys = sorted(set(reference) | set(current))
    return (np.array([float(reference.get(k, 0.0)) for k in keys]),
            np.array([float(current.get(k, 0.0)) for k in keys]))


@register("ks", "p_value", "Kolmogorov-Smirnov two-sample test")
def ks_p_value(reference: np.ndarray, current: np.ndarray) -> float:
    """p-value of the two-sample KS statistic D = sup_x |F_ref(x) − F_cur(x)| (scipy, exact or asymptotic)."""
    from scipy.stats import ks_2samp

    return float(ks_2samp(reference, current).pvalue)


@register("wasserstein", "distance", "Wasserstein distance (normed)")
def wasserstein_normed(reference: np.ndarray, current: np.ndarray) -> float:
    """W1(ref, cur) / std(ref): the earth mover's distance in units of the baseline's spread
    (0 for a constant baseline that the window matches, inf when it does not)."""
    from scipy.stats import wasserstein_distance

    distance = float(wasserstein_distance(reference, current))
    spread = float(np.std(reference))
    if spread == 0:
        return 0.0 if distance == 0 else float("inf")
    return distance / spread


@register("chisquare", "p_value", "chi-square test of homogeneity")
def chi_square_p_value(reference: Mapping[str, float], current: Mapping[str, float]) -> float:
    """p-value of the two-sample chi-square test on the 2 × k table of counts (baseline, window):
    Σ (O − E)² / E over both rows, E from the pooled frequencies, k − 1 degrees of freedom. Two
    samples, not a fit to the baseline's frequencies as if they were exact: a baseline of a few
    hundred rows is itself a sample, and treating it as the truth alarms on healthy windows."""
    from scipy.stats import chi2_contingency

    ref, cur = _aligned(reference, current)
    if len(ref) < 2 or cur.sum() == 0 or ref.sum() == 0:
        return 1.0
    return float(chi2_contingency(np.vstack([ref, cur]), correction=False).pvalue)


@register("jensenshannon", "distance", "Jensen-Shannon distance")
def jensen_shannon(reference: Mapping[str, float], current: Mapping[str, float]) -> float:
    """sqrt(½ KL(p‖m) + ½ KL(q‖m)), m = ½(p + q), natural log (scipy's ``jensenshannon``), of the
    two frequency distributions: 0 when equal, at most sqrt(ln 2) ≈ 0.83."""
    return float(stats.jensen_shannon(*_aligned(reference, current)))


def choose_test(column_type: str, reference_size: int) -> str:
    """Evidently's default test for a column type and baseline size (see the module docstring)."""
    small = reference_size <= SMALL_REFERENCE
    if column_type in ("integer", "float", "number"):
        return "ks" if small else "wasserstein"
    return "chisquare" if small else "jensenshannon"


def null_distance(test: str, reference, size: int, alpha: float, seed: int = 0) -> float:
    """The bar a healthy window exceeds with probability at most ``alpha``: the order statistic
    k = ceil((N + 1)(1 − alpha)) of ``test``'s distance over N pairs of samples of the baseline's
    population, one of the baseline's own size and one of ``size`` (capped at NULL_MAX_SIZE), the
    baseline's own sampling noise included. N is at least 2 / alpha, so k ≤ N.

    Args:
        reference: the baseline's values (numbers) or its frequencies (category -> count).
    """
    rng = np.random.default_rng(seed)
    size = min(size, NULL_MAX_SIZE)
    resamples = max(NULL_RESAMPLES, math.ceil(2 / alpha))
    fn = TESTS[test].fn
    if isinstance(reference, Mapping):
        keys = list(reference)
        p = np.array([float(reference[k]) for k in keys])
        p = p / p.sum()
        n_reference = int(sum(reference.values()))
        references = rng.multinomial(n_reference, p, size=resamples)
        currents = rng.multinomial(size, p, size=resamples)
        values = [fn(dict(zip(keys, a)), dict(zip(keys, b))) for a, b in zip(references, currents)]
    else:
        reference = np.asarray(reference, dtype=float)
        values = [fn(rng.choice(reference, size=len(reference), replace=True), rng.choice(reference, size=size, replace=True))
                  for _ in range(resamples)]
    k = min(resamples, math.ceil((resamples + 1) * (1 - alpha)))
    return float(np.sort(values)[k - 1])


@dataclass(frozen=True)
class Verdict:
    """One test on one window: its value, the bar it had to clear, and the outcome."""

    test: str
    value: float | None
    threshold: float | None
    drift: bool
    status: str  # "ok", "drift" or "insufficient data"
    samples: int

    def to_dict(self) -> dict:
        """A JSON-serialisable form."""
        return {"test": self.test, "value": self.value, "threshold": self.threshold, "drift": self.drift,
                "status": self.status, "samples": self.samples}


def compare(test: str, reference, current, *, tests_in_window: int = 1, min_samples: int = MIN_SAMPLES,
            seed: int = 0) -> Verdict:
    """Run ``test`` on a window and judge it (see the module docstring for the bars).

    Args:
        reference: baseline values (numbers) or frequencies (category -> count).
        current: the window's values, or its frequencies, alike.
        tests_in_window: how many tests share the window's false-alarm budget ALPHA.
        min_samples: below this many window values, no verdict.
    """
    samples = int(sum(current.values())) if isinstance(current, Mapping) else len(current)
    if samples < min_samples:
        return Verdict(test, None, None, False, "insufficient data", samples)
    value = TESTS[test].fn(reference, current)
    alpha = ALPHA / max(1, tests_in_window)
    if TESTS[test].kind == "p_value":
        threshold = alpha
        drift = value < threshold
    else:
        threshold = max(DISTANCE_THRESHOLD, null_distance(test, reference, samples, alpha, seed))
        drift = value > threshold
    return Verdict(test, float(value), float(threshold), bool(drift), "drift" if drift else "ok", samples)
