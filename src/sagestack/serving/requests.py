"""What the prediction endpoint accepts and what it answers, with no web framework here.

The HTTP service (``serving/service.py``) validates every request body with
:func:`validate_reviews` and shapes every answer with :func:`prediction_response`, so the
limits and the response format are plain functions tested on their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from sagestack.errors import SagestackError

if TYPE_CHECKING:
    from sagestack.registry import ModelVersionInfo
    from sagestack.serving.predictor import Prediction

MAX_REVIEWS_PER_REQUEST = 64
MAX_REVIEW_CHARS = 5_000
# Every valid request fits: 64 reviews x 5,000 characters x 6 bytes (a JSON "\uXXXX" escape)
# is 1.92 MB, leaving room for the JSON syntax around them.
MAX_REQUEST_BYTES = 2 * 1024 * 1024


class InvalidRequest(SagestackError, ValueError):
    """A prediction request the service refuses; ``str(error)`` says what to fix."""


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def validate_reviews(
    reviews: object,
    *,
    max_reviews: int = MAX_REVIEWS_PER_REQUEST,
    max_chars: int = MAX_REVIEW_CHARS,
) -> list[str]:
    """Check the ``reviews`` of a prediction request.

    Args:
        reviews: the decoded ``reviews`` value of the request body.
        max_reviews: the most reviews one request may hold.
        max_chars: the most characters one review may have.

    Returns:
        The reviews, unchanged, as a list.

    Raises:
        InvalidRequest: ``reviews`` is not a list, is empty or too long, or an item is not a
            string, is blank or is too long. The message names the first offending item.
    """
    if not isinstance(reviews, list):
        raise InvalidRequest(f"reviews must be a list of strings, got {_type_name(reviews)}")
    if not reviews:
        raise InvalidRequest("reviews is empty; send at least one review")
    if len(reviews) > max_reviews:
        raise InvalidRequest(f"too many reviews: {len(reviews)} (at most {max_reviews} per request); split the request")
    for i, text in enumerate(reviews):
        if not isinstance(text, str):
            raise InvalidRequest(f"reviews[{i}] must be a string, got {_type_name(text)}")
        if not text.strip():
            raise InvalidRequest(f"reviews[{i}] is empty; send the review text")
        if len(text) > max_chars:
            raise InvalidRequest(f"reviews[{i}] is too long: {len(text)} characters (at most {max_chars})")
    return reviews


def model_summary(ref: str, info: ModelVersionInfo | None) -> dict:
    """Describe the served model as every response reports it.

    Args:
        ref: the reference the model was loaded from (``NAME@ALIAS``, ``NAME/VERSION``, ``NAME``
            or a local path).
        info: the registry version it resolved to, or ``None`` for a local model file.

    Returns:
        ``{"name", "version", "alias"}`` for a registered model (``alias`` is ``None`` unless the
        reference named one), ``{"name": None, "version": None, "source": ref}`` for a local file.
    """
    if info is None:
        return {"name": None, "version": None, "source": ref}
    alias = ref.split("@", 1)[1] if "@" in ref else None
    return {"name": info.name, "version": info.version, "alias": alias}


def prediction_response(model: dict, predictions: Sequence[Prediction]) -> dict:
    """The body of a ``/predict`` answer.

    Args:
        model: the served model, as :func:`model_summary` describes it.
        predictions: one prediction per review, in request order.

    Returns:
        ``{"model": model, "predictions": [{"label", "probabilities"}, ...]}``.
    """
    return {"model": model, "predictions": [p.to_dict() for p in predictions]}
