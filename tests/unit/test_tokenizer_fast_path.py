"""The feature store's tokenizer fast path: the shipped tokenizer loaded by the ``tokenizers`` package alone
gives what transformers' tokenizer gives (ids, masks, fingerprint); any other folder goes through transformers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sagestack.features.engineering import (
    BackendTokenizer, default_tokenizer_dir, load_feature_tokenizer, load_tokenizer, tokenize, tokenizer_fingerprint,
)

ODD_TEXTS = [
    "",
    " ",
    "\t\n",
    "Café crème, naïve façade — “quoted” ‘text’ … ½ ™ ©",
    "日本語のレビュー 中文评论 한국어 리뷰",
    "emoji 😀👍🏽 and combining e\u0301 and zero\u200bwidth and \u00a0nbsp",
    "Ünïcödé ÀÉÎÕÜ ß ﬁ ligature",
    "[CLS] [SEP] [PAD] [MASK] [UNK] literal special tokens",
    "control \x00\x07 chars \ufffd",
    "word " * 400,  # far past max_seq_length: truncated
    "supercalifragilisticexpialidocious" * 50,  # one long word
    "a" * 5000,
]


@pytest.fixture(scope="module")
def tokenizers():
    return load_tokenizer(), load_feature_tokenizer()


def test_the_shipped_tokenizer_takes_the_fast_path(tokenizers):
    _, fast = tokenizers
    assert isinstance(fast, BackendTokenizer)


@pytest.mark.parametrize("max_seq_length", [128, 16])
def test_same_fingerprint_as_transformers(tokenizers, max_seq_length):
    slow, fast = tokenizers
    assert tokenizer_fingerprint(fast, max_seq_length) == tokenizer_fingerprint(slow, max_seq_length)


@pytest.mark.parametrize("max_seq_length", [128, 8])
def test_same_ids_and_masks_as_transformers_on_the_reviews_and_odd_texts(tokenizers, shared_data, max_seq_length):
    slow, fast = tokenizers
    reviews = pd.read_csv(shared_data / "reviews_balanced.csv")["review_body"].astype(str).tolist()
    texts = reviews + ODD_TEXTS
    expected = tokenize(slow, texts, max_seq_length, batch_size=512)
    got = tokenize(fast, texts, max_seq_length, batch_size=512)
    assert got == expected
    ids, masks = got
    assert all(len(row) == max_seq_length for row in ids) and all(len(row) == max_seq_length for row in masks)
    assert ids[len(reviews)][:3] == [101, 102, 0] and masks[len(reviews)][:3] == [1, 1, 0]  # "" is [CLS] [SEP]


def test_a_changed_folder_goes_through_transformers(tmp_path):
    folder = tmp_path / "tok"
    shutil.copytree(default_tokenizer_dir(), folder, ignore=shutil.ignore_patterns("*.safetensors", "1_Pooling"))
    config = folder / "tokenizer_config.json"
    config.write_text(config.read_text().replace('"do_lower_case": true', '"do_lower_case": false'))
    tokenizer = load_feature_tokenizer(folder)
    assert not isinstance(tokenizer, BackendTokenizer)
    assert tokenize(tokenizer, ["Hello World"], 8) != tokenize(load_feature_tokenizer(), ["Hello World"], 8)


def test_a_folder_without_a_tokenizer_is_a_config_error(tmp_path):
    from sagestack.errors import ConfigError

    with pytest.raises(ConfigError, match="no tokenizer"):
        load_feature_tokenizer(tmp_path)


def test_the_fast_path_imports_neither_transformers_nor_torch():
    code = ("import sys\nfrom sagestack.features.engineering import load_feature_tokenizer, tokenize\n"
            "tokenize(load_feature_tokenizer(), ['a review'], 16)\n"
            "assert 'transformers' not in sys.modules and 'torch' not in sys.modules, 'heavy import'\nprint('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
