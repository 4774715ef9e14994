"""BentoML services over the sagestack library (run with ``bentoml serve sagestack.bento.service:...``)."""
