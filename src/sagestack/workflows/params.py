"""The sentiment pipeline's trainers and defaults, declared once.

The pipeline's parameters, the step functions and the CLI's help all read these. Kept free of
heavy imports: the CLI imports it to build its help text.
"""

# The trainers (pipeline branches), in the order ties are broken: the first listed wins a tie.
TRAINERS = ("fasttext", "baseline")
DEFAULT_MIN_ACCURACY = 0.55
DEFAULT_SELECT_METRIC = "accuracy"
DEFAULT_FACET = "product_category"
DEFAULT_EXPLAIN_SAMPLES = 10
DEFAULT_SEED = 42
