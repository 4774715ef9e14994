"""Statistics shared by the capabilities (bias metrics, drift tests, profiler rules): one definition each."""

from __future__ import annotations

import numpy as np


def jensen_shannon(p, q, *, distance: bool = True, normalize: bool = True):
    """Jensen–Shannon of two distributions along the last axis, in nats (natural log).

    Divergence: ``JS = ½ Σ p ln(p/m) + ½ Σ q ln(q/m)`` with ``m = ½ (p + q)``; a term with
    ``p = 0`` (or ``q = 0``) counts 0, so the divergence is defined for any two distributions and
    lies in ``[0, ln 2]``. Distance: ``sqrt(JS)``, in ``[0, sqrt(ln 2)]`` (scipy's
    ``scipy.spatial.distance.jensenshannon`` with its default base).

    Args:
        p, q: two arrays of the same shape; leading dimensions are batch dimensions.
        distance: ``True`` for the distance ``sqrt(JS)`` (drift tests, the profiler's
            LoadBalancing), ``False`` for the divergence ``JS`` (Clarify's JS bias metric).
        normalize: ``True`` scales each histogram to sum 1 first (counts are welcome); ``False``
            takes ``p`` and ``q`` as distributions already (Clarify's label distributions; one of NaN,
            an empty group's, makes the result NaN unless both are).

    Returns:
        A numpy float for 1-D inputs, else an array of the batch shape.
    """
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    if normalize:
        p = p / p.sum(axis=-1, keepdims=True)
        q = q / q.sum(axis=-1, keepdims=True)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kp = np.where(p > 0, p * np.log(np.true_divide(p, m)), 0.0).sum(axis=-1)
        kq = np.where(q > 0, q * np.log(np.true_divide(q, m)), 0.0).sum(axis=-1)
    value = 0.5 * (kp + kq)
    if distance:
        value = np.sqrt(np.maximum(value, 0.0))
    return value
