"""Model monitoring: a baseline of the training data and the model's predictions, drift tests,
and monitoring runs over windows of captured traffic (SageMaker Model Monitor + Clarify's
bias-drift monitor)."""

from sagestack.monitor.baseline import Baseline, load_baseline, make_baseline
from sagestack.monitor.run import check_window

__all__ = ["Baseline", "check_window", "load_baseline", "make_baseline"]
