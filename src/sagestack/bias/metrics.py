"""Clarify's bias metrics as registered pure functions of contingency counts.

Every function takes the counts of facet value ``d`` and of the rest ``a``: arrays shaped
``(..., groups, 2 observed, 2 predicted)`` where index 1 means positive. Leading dimensions
are batch dimensions, so one call evaluates every facet value or every bootstrap resample.
Definitions follow the SageMaker Clarify documentation; a result that needs a division by
zero is NaN/inf here and is reported as ``null`` with the metric's ``undefined`` reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from sagestack import stats
from sagestack.plugins import Registry

PRE, POST = "pre_training", "post_training"


@dataclass(frozen=True)
class Metric:
    """A registered metric: its function, Clarify's description, ideal value, range and explanation."""

    name: str
    stage: str
    description: str
    fn: Callable[..., np.ndarray]
    ideal: float
    value_range: tuple[float, float]
    explanation: str
    undefined: str
    needs_group: bool = False


REGISTRY: Registry[Metric] = Registry("bias metric")


def register(name, stage, description, ideal, value_range, explanation, undefined, needs_group=False):
    """Decorator: add a metric function to :data:`REGISTRY`."""
    return REGISTRY.register(
        name, lambda fn: Metric(name, stage, description, fn, ideal, value_range, explanation, undefined, needs_group))


def _div(x, y):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.true_divide(x, y)


# --- counts helpers: c[..., group, observed, predicted] -----------------------------------
def n(c):
    """Rows."""
    return c.sum(axis=(-3, -2, -1))


def observed_pos(c):
    """Rows with a positive observed label, n(1)."""
    return c[..., 1, :].sum(axis=(-2, -1))


def observed_neg(c):
    """Rows with a negative observed label, n(0)."""
    return c[..., 0, :].sum(axis=(-2, -1))


def predicted_pos(c):
    """Rows with a positive predicted label, n̂(1)."""
    return c[..., :, 1].sum(axis=(-2, -1))


def predicted_neg(c):
    """Rows with a negative predicted label, n̂(0)."""
    return c[..., :, 0].sum(axis=(-2, -1))


def tp(c):
    return c[..., 1, 1].sum(axis=-1)


def fp(c):
    return c[..., 0, 1].sum(axis=-1)


def fn(c):
    return c[..., 1, 0].sum(axis=-1)


def tn(c):
    return c[..., 0, 0].sum(axis=-1)


def _label_pmf(c, predicted=False):
    """Distribution over (negative, positive) labels: shape (..., 2)."""
    pos = predicted_pos(c) if predicted else observed_pos(c)
    total = n(c)
    return np.stack([_div(total - pos, total), _div(pos, total)], axis=-1)


# --- pre-training ---------------------------------------------------------------------------
@register("CI", PRE, "Class Imbalance (CI)", 0.0, (-1.0, 1.0),
          "How much smaller facet d is than the rest: (n_a - n_d) / (n_a + n_d). 0 means equal sizes; "
          "close to 1 means d is rare in the data, close to -1 that it dominates.",
          "there are no rows at all")
def class_imbalance(d, a):
    """CI = (n_a - n_d) / (n_a + n_d)."""
    return _div(n(a) - n(d), n(a) + n(d))


@register("DPL", PRE, "Difference in Positive Proportions in Labels (DPL)", 0.0, (-1.0, 1.0),
          "Difference in the share of positive labels: q_a - q_d with q = n(1)/n. Positive values mean facet d "
          "gets positive labels less often than the rest.",
          "facet d or the rest has no rows")
def difference_in_positive_proportions(d, a):
    """DPL = n_a(1)/n_a - n_d(1)/n_d."""
    return _div(observed_pos(a), n(a)) - _div(observed_pos(d), n(d))


@register("KL", PRE, "Kullback-Liebler Divergence (KL)", 0.0, (0.0, np.inf),
          "How much the label distribution of the rest diverges from facet d's: sum_y P_a(y) ln(P_a(y)/P_d(y)) "
          "(nats). 0 means identical distributions.",
          "facet d has no rows with a label value that the rest has (log of zero), or a group has no rows")
def kl_divergence(d, a):
    """KL = sum_y P_a(y) * ln(P_a(y) / P_d(y)), over the binarized label; terms with P_a(y) = 0 are 0."""
    pa, pd = _label_pmf(a), _label_pmf(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(pa > 0, pa * np.log(_div(pa, pd)), 0.0)
    return terms.sum(axis=-1)


@register("JS", PRE, "Jensen-Shannon Divergence (JS)", 0.0, (0.0, np.log(2)),
          "A symmetric, always-defined divergence of the two label distributions: "
          "1/2 [KL(P_a || M) + KL(P_d || M)] with M = (P_a + P_d)/2. 0 means identical.",
          "facet d or the rest has no rows")
def jensen_shannon(d, a):
    """JS = 0.5 * [sum P_a ln(P_a/M) + sum P_d ln(P_d/M)], M = (P_a + P_d) / 2."""
    return stats.jensen_shannon(_label_pmf(a), _label_pmf(d), distance=False, normalize=False)


@register("LP", PRE, "L-p Norm (LP)", 0.0, (0.0, np.sqrt(2)),
          "Euclidean (p = 2) distance between the label distributions of the rest and of facet d. 0 means identical.",
          "facet d or the rest has no rows")
def lp_norm(d, a):
    """LP = sqrt(sum_y (P_a(y) - P_d(y))^2)."""
    return np.sqrt(((_label_pmf(a) - _label_pmf(d)) ** 2).sum(axis=-1))


@register("TVD", PRE, "Total Variation Distance (TVD)", 0.0, (0.0, 1.0),
          "Half the L1 distance between the label distributions: 1/2 sum_y |P_a(y) - P_d(y)|. 0 means identical.",
          "facet d or the rest has no rows")
def total_variation_distance(d, a):
    """TVD = 0.5 * sum_y |P_a(y) - P_d(y)|."""
    return 0.5 * np.abs(_label_pmf(a) - _label_pmf(d)).sum(axis=-1)


@register("KS", PRE, "Kolmogorov-Smirnov Distance (KS)", 0.0, (0.0, 1.0),
          "Largest difference between the label distributions: max_y |P_a(y) - P_d(y)|. 0 means identical.",
          "facet d or the rest has no rows")
def kolmogorov_smirnov(d, a):
    """KS = max_y |P_a(y) - P_d(y)|."""
    return np.abs(_label_pmf(a) - _label_pmf(d)).max(axis=-1)


def _cdd(d, a, predicted):
    """Conditional demographic disparity: sum_i n_i DD_i / sum_i n_i over groups i, with
    DD_i = n_d,i(0)/n_i(0) - n_d,i(1)/n_i(1) (a ratio with a zero denominator counts as 0)."""
    axis = -1 if predicted else -2
    other = -2 if predicted else -1
    d_counts, all_counts = d.sum(axis=other), (d + a).sum(axis=other)  # (..., groups, 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        share_neg = np.where(all_counts[..., 0] > 0, d_counts[..., 0] / all_counts[..., 0], 0.0)
        share_pos = np.where(all_counts[..., 1] > 0, d_counts[..., 1] / all_counts[..., 1], 0.0)
    rows = all_counts.sum(axis=-1)
    total_neg, total_pos = all_counts[..., 0].sum(axis=-1), all_counts[..., 1].sum(axis=-1)
    value = _div(((share_neg - share_pos) * rows).sum(axis=-1), rows.sum(axis=-1))
    # Clarify leaves CDD undefined without both outcomes in the data.
    return np.where((total_neg > 0) & (total_pos > 0), value, np.nan)


@register("CDDL", PRE, "Conditional Demographic Disparity in Labels (CDDL)", 0.0, (-1.0, 1.0),
          "Demographic disparity (d's share of negative labels minus its share of positive labels) averaged over "
          "the groups of --group, weighted by group size. Positive values mean d is over-represented among "
          "negatives even within groups.",
          "needs --group, and both positive and negative labels in the data", needs_group=True)
def conditional_demographic_disparity_labels(d, a):
    """CDDL = sum_i n_i DD_i / n, DD_i = n_d,i(0)/n_i(0) - n_d,i(1)/n_i(1) over groups i."""
    return _cdd(d, a, predicted=False)


# --- post-training --------------------------------------------------------------------------
@register("DPPL", POST, "Difference in Positive Proportions in Predicted Labels (DPPL)", 0.0, (-1.0, 1.0),
          "Difference in the share of positive predictions: q̂_a - q̂_d. Positive values mean the model predicts "
          "the positive label less often for facet d.",
          "facet d or the rest has no rows")
def dppl(d, a):
    """DPPL = n̂_a(1)/n_a - n̂_d(1)/n_d."""
    return _div(predicted_pos(a), n(a)) - _div(predicted_pos(d), n(d))


@register("DI", POST, "Disparate Impact (DI)", 1.0, (0.0, np.inf),
          "Ratio of positive-prediction rates: q̂_d / q̂_a. 1 means parity; the US 'four-fifths rule' flags values "
          "below 0.8.",
          "the rest has no positive predictions (q̂_a = 0, division by zero)")
def disparate_impact(d, a):
    """DI = (n̂_d(1)/n_d) / (n̂_a(1)/n_a)."""
    return _div(_div(predicted_pos(d), n(d)), _div(predicted_pos(a), n(a)))


@register("DCAcc", POST, "Difference in Conditional Acceptance (DCAcc)", 0.0, (-np.inf, np.inf),
          "Observed positives per predicted positive, rest minus d: c_a - c_d with c = n(1)/n̂(1). Positive values "
          "mean the model accepts d's qualified members less generously than it should.",
          "facet d or the rest has no positive predictions (division by zero)")
def dcacc(d, a):
    """DCAcc = n_a(1)/n̂_a(1) - n_d(1)/n̂_d(1)."""
    return _div(observed_pos(a), predicted_pos(a)) - _div(observed_pos(d), predicted_pos(d))


@register("DCR", POST, "Difference in Conditional Rejection (DCR)", 0.0, (-np.inf, np.inf),
          "Observed negatives per predicted negative, d minus rest: r_d - r_a with r = n(0)/n̂(0). Positive values "
          "mean d is rejected more than its labels justify.",
          "facet d or the rest has no negative predictions (division by zero)")
def dcr(d, a):
    """DCR = n_d(0)/n̂_d(0) - n_a(0)/n̂_a(0)."""
    return _div(observed_neg(d), predicted_neg(d)) - _div(observed_neg(a), predicted_neg(a))


@register("SD", POST, "Specificity Difference (SD)", 0.0, (-1.0, 1.0),
          "True-negative rate of d minus the rest's: TN_d/(TN_d+FP_d) - TN_a/(TN_a+FP_a).",
          "facet d or the rest has no negative labels (division by zero)")
def specificity_difference(d, a):
    """SD = TN_d/(TN_d + FP_d) - TN_a/(TN_a + FP_a)."""
    return _div(tn(d), tn(d) + fp(d)) - _div(tn(a), tn(a) + fp(a))


@register("RD", POST, "Recall Difference (RD)", 0.0, (-1.0, 1.0),
          "True-positive rate of the rest minus d's: TP_a/(TP_a+FN_a) - TP_d/(TP_d+FN_d). Positive values mean the "
          "model finds d's positives less often.",
          "facet d or the rest has no positive labels (division by zero)")
def recall_difference(d, a):
    """RD = TP_a/(TP_a + FN_a) - TP_d/(TP_d + FN_d)."""
    return _div(tp(a), tp(a) + fn(a)) - _div(tp(d), tp(d) + fn(d))


@register("DAR", POST, "Difference in Acceptance Rates (DAR)", 0.0, (-1.0, 1.0),
          "Precision of the rest minus d's: TP_a/(TP_a+FP_a) - TP_d/(TP_d+FP_d).",
          "facet d or the rest has no positive predictions (division by zero)")
def difference_in_acceptance_rates(d, a):
    """DAR = TP_a/(TP_a + FP_a) - TP_d/(TP_d + FP_d)."""
    return _div(tp(a), tp(a) + fp(a)) - _div(tp(d), tp(d) + fp(d))


@register("DRR", POST, "Difference in Rejection Rates (DRR)", 0.0, (-1.0, 1.0),
          "Negative predictive value of d minus the rest's: TN_d/(TN_d+FN_d) - TN_a/(TN_a+FN_a).",
          "facet d or the rest has no negative predictions (division by zero)")
def difference_in_rejection_rates(d, a):
    """DRR = TN_d/(TN_d + FN_d) - TN_a/(TN_a + FN_a)."""
    return _div(tn(d), tn(d) + fn(d)) - _div(tn(a), tn(a) + fn(a))


@register("AD", POST, "Accuracy Difference (AD)", 0.0, (-1.0, 1.0),
          "Accuracy of the rest minus d's: (TP+TN)/n for each. Positive values mean the model is less accurate on d.",
          "facet d or the rest has no rows")
def accuracy_difference(d, a):
    """AD = (TP_a + TN_a)/n_a - (TP_d + TN_d)/n_d."""
    return _div(tp(a) + tn(a), n(a)) - _div(tp(d) + tn(d), n(d))


@register("TE", POST, "Treatment Equality (TE)", 0.0, (-np.inf, np.inf),
          "Difference in the ratio of false negatives to false positives: FN_d/FP_d - FN_a/FP_a.",
          "facet d or the rest has no false positives (division by zero)")
def treatment_equality(d, a):
    """TE = FN_d/FP_d - FN_a/FP_a."""
    return _div(fn(d), fp(d)) - _div(fn(a), fp(a))


@register("CDDPL", POST, "Conditional Demographic Disparity in Predicted Labels (CDDPL)", 0.0, (-1.0, 1.0),
          "CDDL computed on the predicted labels: d's share of negative predictions minus its share of positive "
          "predictions, averaged over the groups of --group.",
          "needs --group, and both positive and negative predictions", needs_group=True)
def conditional_demographic_disparity_predicted(d, a):
    """CDDPL = sum_i n_i DD_i / n with DD_i = n̂_d,i(0)/n̂_i(0) - n̂_d,i(1)/n̂_i(1)."""
    return _cdd(d, a, predicted=True)


@register("GE", POST, "Generalized Entropy (GE)", 0.0, (0.0, 0.5),
          "Inequality of the 'benefit' b = ŷ - y + 1 over all rows (alpha = 2): 1/(2n) sum[(b/mean(b))^2 - 1]. "
          "Computed over all rows, so every facet value shows the same number.",
          "every row is a false negative (mean benefit 0)")
def generalized_entropy(d, a):
    """GE(alpha=2) = 1/(n alpha (alpha-1)) sum_i [(b_i/mu)^alpha - 1], b_i = ŷ_i - y_i + 1 in {0,1,2}."""
    c = d + a
    rows = n(c)
    b0, b1, b2 = fn(c), tp(c) + tn(c), fp(c)  # benefit 0: FN, 1: correct, 2: FP
    mu = _div(b1 + 2 * b2, rows)
    second = _div(b1 + 4 * b2, rows)  # mean of b^2
    del b0
    return _div(second, mu**2) / 2 - 0.5


PRE_TRAINING = [m for m in REGISTRY.values() if m.stage == PRE]
POST_TRAINING = [m for m in REGISTRY.values() if m.stage == POST]
