"""The ``bert`` model kind: a fine-tuned BERT sequence classifier with its tokenizer.

A model directory holds ``bert/`` (``save_pretrained`` of the model and its tokenizer) and the
card, whose ``params`` give ``max_seq_length``. Prediction tokenizes raw reviews exactly as
training did and runs the model in batches without gradients, on the CPU unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from sagestack.errors import RegistryError
from sagestack.models.base import ModelCard, TextClassifier

MODEL_SUBDIR = "bert"
BATCH_SIZE = 32


class BertPredictor(TextClassifier):
    """Predicts with a fine-tuned BERT (labels in the model's id order: ``-1``, ``0``, ``1``)."""

    kind = "bert"

    def __init__(self, model, tokenizer, max_seq_length: int = 128, device: str = "cpu") -> None:
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.device = device
        self.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]

    @classmethod
    def load(cls, model_dir: Path | str, device: str = "cpu") -> "BertPredictor":
        """Load ``model_dir/bert`` (model and tokenizer).

        Raises:
            RegistryError: the folder is missing or transformers cannot read it.
        """
        from transformers import AutoTokenizer

        from sagestack.models.bert_network import load_classifier

        model_dir = Path(model_dir)
        card = ModelCard.load(model_dir)
        path = model_dir / MODEL_SUBDIR
        if not (path / "config.json").is_file():
            raise RegistryError(f"{model_dir} holds no {MODEL_SUBDIR}/ model; pass the model folder of a BERT training run")
        try:
            model = load_classifier(path)
            tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True, use_fast=True)
        except Exception as exc:  # noqa: BLE001 - transformers, safetensors and torch each raise their own kinds
            raise RegistryError(f"{path} cannot be loaded ({exc}); retrain the model") from None
        return cls(model, tokenizer, int(card.params.get("max_seq_length", 128)), device)

    def save(self, model_dir: Path) -> None:
        """Write the model and tokenizer to ``model_dir/bert`` (safetensors)."""
        path = Path(model_dir) / MODEL_SUBDIR
        self.model.save_pretrained(str(path))
        self.tokenizer.save_pretrained(str(path))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Softmax probabilities per label for raw reviews."""
        import torch

        if not len(texts):
            return np.zeros((0, len(self.labels)))
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), BATCH_SIZE):
                batch = self.tokenizer([str(t) for t in texts[start:start + BATCH_SIZE]], padding=True, truncation=True,
                                       max_length=self.max_seq_length, return_tensors="pt").to(self.device)
                logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                chunks.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
        return np.concatenate(chunks)
