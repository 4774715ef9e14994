"""The sentiment pipeline's trainers and defaults, declared once.

The pipeline's parameters, the step functions and the CLI's help all read these. Kept free of
heavy imports: the CLI imports it to build its help text.
"""

# The trainers (pipeline branches), in the order ties are broken: the first listed wins a tie.
TRAINERS = ("fasttext", "baseline", "automl", "bert")
# What a run without --trainers trains: AutoML and BERT take minutes on a CPU, so they are asked for by name.
DEFAULT_TRAINERS = ("fasttext", "baseline")
# The pipeline's AutoML branch: a shorter budget than `sagestack automl` (240 s).
DEFAULT_AUTOML_TIME_LIMIT = 120.0
DEFAULT_MIN_ACCURACY = 0.55
DEFAULT_SELECT_METRIC = "accuracy"
DEFAULT_FACET = "product_category"
DEFAULT_EXPLAIN_SAMPLES = 10
DEFAULT_SEED = 42
