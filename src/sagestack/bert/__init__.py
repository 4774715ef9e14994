"""BERT fine-tuning for review sentiment: hyperparameters, data, model, the training loop, the job.

``sagestack.bert.training`` imports with only torch, transformers, numpy and pandas, so it
runs on a GPU machine's stock PyTorch image with the source tree on the path; MLflow, Feast
and the registry are imported only by ``sagestack.bert.job``.
"""
