"""The sagestack console: SageMaker Studio's and Data Wrangler's pages in a local web app.

A top-floor adapter, like ``serving/``: FastAPI routes and Jinja2 templates over the library,
long work run as ``sagestack … --json`` jobs (:mod:`sagestack.jobs`). Start it with
``sagestack console``.
"""

from sagestack.console.app import ConsoleOptions, create_app

__all__ = ["ConsoleOptions", "create_app"]
