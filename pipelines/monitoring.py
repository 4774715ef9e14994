"""The monitoring pipeline (wiring only): one monitoring run, scheduled as a KFP recurring run."""

from kfp import dsl

from sagestack.components.monitor import monitor_window


@dsl.pipeline(name="sagestack-monitoring", description="Captured traffic of the last hours against the baseline.")
def monitoring_pipeline(baseline: str, capture: str = "", window_hours: float = 1.0, settings: str = ""):
    """``capture`` defaults to the home's capture folder; ``settings`` (see
    :func:`sagestack.config.settings_from_parameter`) to the pod's own."""
    task = monitor_window(baseline=baseline, capture=capture, window_hours=window_hours, settings=settings)
    task.set_caching_options(False)  # each run looks at new traffic: never reuse an earlier run's answer
