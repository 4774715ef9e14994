"""The BERT classifier's network as a saved model holds it: what the ``bert`` predictor loads.

Inference code, so it lives on the predictor's side; the trainer (``sagestack.bert``) builds new
models with it and imports it from here (predictors import no trainer code).
"""

from __future__ import annotations

import functools
from pathlib import Path

# Written into a mean-pooled model's config.json so that a loader knows which class reads it back.
POOLING_KEY = "sagestack_pooling"
HEAD_FILE = "classifier_head.safetensors"


def load_encoder(directory: Path | str, **kwargs):
    """A checkpoint's bare encoder, without the pooler where the architecture has one to leave out
    (a mean-pooled head never reads it, so its weights would get no gradient)."""
    from transformers import AutoModel

    try:
        return AutoModel.from_pretrained(str(directory), local_files_only=True, add_pooling_layer=False, **kwargs)
    except TypeError:
        return AutoModel.from_pretrained(str(directory), local_files_only=True, **kwargs)


@functools.cache
def mean_pooling_classifier_class():
    """The mean-pooling classifier class, built once on first use so that importing this module
    does not import torch and transformers (seconds) for commands that never build a model."""
    import torch
    from transformers.modeling_outputs import SequenceClassifierOutput

    class MeanPoolingClassifier(torch.nn.Module):
        """An encoder whose last hidden states, averaged over the real (unmasked) tokens, feed a linear head.

        Sentence encoders such as all-MiniLM-L6-v2 were trained to be read this way: their ``[CLS]``
        token and pooler carry no sentence-level training, which Hugging Face's
        ``*ForSequenceClassification`` heads rely on. The interface is the part of those classes
        sagestack uses: ``config``, ``base_model``, ``forward(...).logits`` and ``save_pretrained``.
        """

        def __init__(self, encoder) -> None:
            super().__init__()
            self.encoder = encoder
            config = encoder.config
            # As the architecture's own head would: its classifier dropout when set (0 included),
            # DistilBERT's seq_classif_dropout, else the hidden-state dropout.
            dropout = getattr(config, "classifier_dropout", None)
            if dropout is None:
                dropout = getattr(config, "seq_classif_dropout", getattr(config, "hidden_dropout_prob", 0.1))
            self.dropout = torch.nn.Dropout(dropout)
            self.classifier = torch.nn.Linear(config.hidden_size, config.num_labels)

        @property
        def config(self):
            return self.encoder.config

        @property
        def base_model(self):
            return self.encoder

        def forward(self, input_ids, attention_mask=None, labels=None, **inputs):
            """Logits (and the cross-entropy loss when ``labels`` are given); other inputs such as
            ``token_type_ids`` go to the encoder as they would to a Hugging Face classifier."""
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **inputs).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
            logits = self.classifier(self.dropout(pooled))
            loss = torch.nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
            return SequenceClassifierOutput(loss=loss, logits=logits)

        def save_pretrained(self, directory: str) -> None:
            """The encoder as a Hugging Face checkpoint (its config marked mean-pooled) and the head beside it."""
            from safetensors.torch import save_file

            self.encoder.save_pretrained(directory)
            save_file({k: v.detach().contiguous() for k, v in self.classifier.state_dict().items()},
                      str(Path(directory) / HEAD_FILE))

        @classmethod
        def from_pretrained(cls, directory: str) -> "MeanPoolingClassifier":
            """Read back what :meth:`save_pretrained` wrote."""
            from safetensors.torch import load_file

            model = cls(load_encoder(directory))
            model.classifier.load_state_dict(load_file(str(Path(directory) / HEAD_FILE)))
            return model

    return MeanPoolingClassifier


def load_classifier(directory: Path | str):
    """A fine-tuned classifier saved by sagestack: mean-pooled (config says so) or a Hugging Face class.

    Raises:
        OSError, ValueError: transformers or safetensors cannot read the folder.
    """
    import json

    from transformers import AutoModelForSequenceClassification

    config = json.loads((Path(directory) / "config.json").read_text())
    if config.get(POOLING_KEY) == "mean":
        return mean_pooling_classifier_class().from_pretrained(str(directory))
    return AutoModelForSequenceClassification.from_pretrained(str(directory), local_files_only=True)
