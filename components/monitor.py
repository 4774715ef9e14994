"""The monitoring pipeline's component: a thin adapter over ``sagestack.workflows.monitoring``."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Output

from sagestack.components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def monitor_window(baseline: str, capture: str, window_hours: float, settings: str,
                   report: Output[HTML], violations: Output[Artifact]):
    """The last ``window_hours`` of captured traffic against the baseline: report, violations, MLflow metrics."""
    from sagestack.config import settings_from_parameter
    from sagestack.workflows.monitoring import monitor_step

    summary = monitor_step(baseline, capture, window_hours, report.path, violations.path,
                           settings_from_parameter(settings))
    violations.metadata.update(summary)
