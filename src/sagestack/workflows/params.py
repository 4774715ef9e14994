"""The sentiment pipeline's defaults, declared once.

The trainers are the trainable model kinds (:func:`sagestack.models.kinds.trainer_names`); a
module attribute ``TRAINERS`` reads them from the registry when asked. Kept free of heavy
imports: the CLI imports it to build its help text.
"""

# What a run without --trainers trains: AutoML and BERT take minutes on a CPU, so they are asked for by name.
DEFAULT_TRAINERS = ("fasttext", "baseline")
DEFAULT_MIN_ACCURACY = 0.55
DEFAULT_SELECT_METRIC = "accuracy"
DEFAULT_FACET = "product_category"
DEFAULT_EXPLAIN_SAMPLES = 10
DEFAULT_SEED = 42


def __getattr__(name: str):
    if name == "TRAINERS":  # the trainers registered now (a kind may be added at run time)
        from sagestack.models.kinds import trainer_names

        return tuple(trainer_names())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
