"""The container image every component runs on in cluster mode (pinned to the package version)."""

from sagestack import __version__

IMAGE = f"ghcr.io/sagestack/sagestack:{__version__}"
