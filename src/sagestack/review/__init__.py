"""Human review of low-confidence predictions: Augmented AI's flows and human loops, in sagestack.

:mod:`~sagestack.review.store` holds flows, loops and answers (SQLite, transactional);
:mod:`~sagestack.review.starter` starts loops from the endpoint without delaying a response;
:mod:`~sagestack.review.formats` exports CSV / Label Studio tasks and imports Label Studio
annotations; :mod:`~sagestack.review.training` merges reviewed labels into the next training set.
"""

from sagestack.review.store import (
    AlreadyAnswered,
    Flow,
    Loop,
    LoopClosed,
    LoopInput,
    NotATiedLabel,
    ReviewStore,
    UnknownLoop,
    review_store,
)

__all__ = ["AlreadyAnswered", "Flow", "Loop", "LoopClosed", "LoopInput", "NotATiedLabel", "ReviewStore", "UnknownLoop",
           "review_store"]
