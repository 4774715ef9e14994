"""Workflows: the step functions of each pipeline (one module per workflow), free of KFP."""
