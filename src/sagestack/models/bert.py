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
# One forward pass holds at most this many reviews, and at most CHUNK_TOKENS tokens padding included. On the
# CPU a larger batch of 75-token reviews scores no faster per review (the matrices are already large);
# short reviews still share a pass up to BATCH_SIZE.
BATCH_SIZE = 32
CHUNK_TOKENS = 512


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
        """Softmax probabilities per label for raw reviews.

        The reviews are tokenized once, ordered by length and run in chunks of similar lengths (see
        :func:`length_chunks`), each padded only to its own longest: padding a batch of mixed reviews
        to its longest spent a third of the model's work on padding (validation reviews average 75
        tokens, a batch of 16 pads to about 120).
        """
        import torch

        if not len(texts):
            return np.zeros((0, len(self.labels)))
        encoded = self.tokenizer([str(t) for t in texts], truncation=True, max_length=self.max_seq_length)["input_ids"]
        proba = np.empty((len(encoded), len(self.labels)), dtype=np.float32)
        with torch.inference_mode():
            for chunk in length_chunks([len(ids) for ids in encoded]):
                batch = self.tokenizer.pad({"input_ids": [encoded[i] for i in chunk]}, return_tensors="pt").to(self.device)
                logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                proba[chunk] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        return proba


def length_chunks(lengths: Sequence[int], max_items: int = BATCH_SIZE, max_tokens: int = CHUNK_TOKENS) -> list[list[int]]:
    """Group the indices of sequences of these lengths into forward passes: shortest first, each pass at most
    ``max_items`` sequences and ``max_tokens`` tokens once padded to its longest (a longer sequence alone)."""
    chunks: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        if chunks and len(chunks[-1]) < max_items and (len(chunks[-1]) + 1) * lengths[i] <= max_tokens:
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return chunks
