"""The container image every component runs on in cluster mode (pinned to the package version)."""

from sagestack import __version__

IMAGE = f"ghcr.io/sagestack/sagestack:{__version__}"
# The same image built with `--target gpu` (torch's CUDA build): the BERT step, which asks for a GPU.
GPU_IMAGE = f"{IMAGE}-gpu"
