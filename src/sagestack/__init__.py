"""sagestack: the SageMaker data-science workflow on open-source parts.

Importing the package is cheap on purpose: heavy frameworks (fastText, MLflow, torch, ...)
are imported inside the modules that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
