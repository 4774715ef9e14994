"""BentoML services over the sagestack library (run with ``bentoml serve serving.service:...``)."""
