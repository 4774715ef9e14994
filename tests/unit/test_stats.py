"""The shared statistics (sagestack.stats): one Jensen-Shannon for bias metrics, drift tests and profiler rules."""

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from sagestack.stats import jensen_shannon


def test_distance_matches_scipy_on_counts():
    rng = np.random.default_rng(0)
    for _ in range(200):
        k = int(rng.integers(2, 40))
        p, q = rng.integers(0, 30, k).astype(float), rng.integers(0, 30, k).astype(float)
        p[0] += 1
        q[-1] += 1
        assert jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q), abs=1e-12)


def test_divergence_is_the_squared_distance_and_bounded_by_ln2():
    assert jensen_shannon([1, 0], [0, 1], distance=False) == pytest.approx(math.log(2))
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(math.sqrt(math.log(2)))
    assert jensen_shannon([0.3, 0.7], [0.3, 0.7], distance=False, normalize=False) == 0.0
    p, q = np.array([0.2, 0.5, 0.3]), np.array([0.6, 0.1, 0.3])
    assert jensen_shannon(p, q, distance=False, normalize=False) == pytest.approx(jensenshannon(p, q) ** 2, abs=1e-15)


def test_batches_along_leading_axes():
    p = np.array([[0.5, 0.5], [1.0, 0.0], [0.25, 0.75]])
    q = np.array([[0.5, 0.5], [0.0, 1.0], [0.75, 0.25]])
    values = jensen_shannon(p, q, distance=False, normalize=False)
    assert values.shape == (3,)
    assert values == pytest.approx([jensenshannon(a, b) ** 2 for a, b in zip(p, q)], abs=1e-15)


def test_an_empty_distribution_without_normalizing_gives_nan():
    assert math.isnan(jensen_shannon([np.nan, np.nan], [0.4, 0.6], distance=False, normalize=False))
