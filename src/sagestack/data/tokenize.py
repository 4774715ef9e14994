"""The course's text tokenization for fastText/BlazingText input.

The course prepared BlazingText data with::

    ' '.join(nltk.word_tokenize(str(review).replace(',', '').replace('"', '').lower()))

NLTK's ``word_tokenize`` needs the ``punkt`` model, a download we cannot rely on, so this
module re-implements the parts of NLTK's Treebank-style tokenizer that matter for these
reviews (sentence-final periods, punctuation, brackets, and English contractions such as
``can't -> ca n't``). ``tests/unit/test_tokenize.py`` measures agreement with the course's own
BlazingText files.
"""

from __future__ import annotations

import re

# NLTK's NLTKWordTokenizer rules, in its order, as (triggers, pattern, replacement). A rule only
# runs when one of its trigger substrings occurs: most sentences need 3 of the 20 substitutions,
# which makes tokenization about 3x faster (it is most of a served prediction's time).
_BEFORE_PADDING = [
    (("«", "“", "‘", "„", "`"), re.compile(r"([«“‘„]|[`]+)"), r" \1 "),
    # An apostrophe that does not start a contraction is split off: 5'4 -> 5' 4.
    (("'",), re.compile(r"(?i)(\')(?!re|ve|ll|m|t|s|d|n)(\w)\b"), r"\1 \2"),
    ((".",), re.compile(r"([^\.])(\.)([\]\)}>\"']*)\s*$"), r"\1 \2 \3 "),
    ((":", ","), re.compile(r"([:,])([^\d])"), r" \1 \2"),
    ((":", ","), re.compile(r"([:,])$"), r" \1 "),
    (("..",), re.compile(r"\.{2,}"), r" \g<0> "),
    ((";", "@", "#", "$", "%", "&"), re.compile(r"[;@#$%&]"), r" \g<0> "),
    (("?", "!"), re.compile(r"[?!]"), r" \g<0> "),
    (("' ",), re.compile(r"([^'])' "), r"\1 ' "),
    (("*",), re.compile(r"[*]"), r" \g<0> "),
    (("[", "]", "(", ")", "{", "}", "<", ">"), re.compile(r"[\]\[\(\)\{\}\<\>]"), r" \g<0> "),
    (("--",), re.compile(r"--"), r" -- "),
]
_AFTER_PADDING = [
    (("''",), re.compile(r"''"), " '' "),
    (("'",), re.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') "), r"\1 \2 "),
    (("'",), re.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r"\1 \2 "),
]
_CONTRACTION_HINT = re.compile(r"cannot|d'ye|gimme|gonna|gotta|lemme|more'n|wanna|'tis|'twas", re.IGNORECASE)
_CONTRACTIONS = [
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"\b(can)(not)\b",
        r"\b(d)('ye)\b",
        r"\b(gim)(me)\b",
        r"\b(gon)(na)\b",
        r"\b(got)(ta)\b",
        r"\b(lem)(me)\b",
        r"\b(more)('n)\b",
        r"\b(wan)(na)(?=\s)",
        r" ('t)(is)\b",
        r" ('t)(was)\b",
    )
]
# Candidate sentence boundaries: terminal punctuation (plus closing brackets) then whitespace.
_SENTENCE_END = re.compile(r"[.!?]+[\])}]*\s+")
# Punkt does not end a sentence after a number ("a size 6. i ...") or an initial ("size s.")
# when the next word is lower-case, which is always the case in lower-cased reviews.
# Likewise after the abbreviations punkt's English model knows that occur in reviews.
_NO_BREAK_BEFORE_PERIOD = re.compile(r"(?:^|\s)(?:\d+|[^\W\d]|ok|vs|dr|ft)\.$")


def _sentences(text: str) -> list[str]:
    sentences, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        head = text[start : match.end()].rstrip()
        if _NO_BREAK_BEFORE_PERIOD.search(head):
            continue
        sentences.append(head)
        start = match.end()
    sentences.append(text[start:])
    return sentences


def _apply(rules, text: str) -> str:
    for triggers, pattern, repl in rules:
        if any(t in text for t in triggers):
            text = pattern.sub(repl, text)
    return text


def _tokenize_sentence(text: str) -> list[str]:
    text = f" {_apply(_BEFORE_PADDING, text)} "
    text = _apply(_AFTER_PADDING, text)
    if _CONTRACTION_HINT.search(text):
        for pattern in _CONTRACTIONS:
            text = pattern.sub(r" \1 \2 ", text)
    return text.split()


def word_tokenize(text: str) -> list[str]:
    """Split text into Treebank-style word tokens (NLTK ``word_tokenize`` compatible).

    Args:
        text: any text.

    Returns:
        The tokens, e.g. ``"I can't."`` -> ``["I", "ca", "n't", "."]``.
    """
    tokens: list[str] = []
    for sentence in _sentences(text.strip()):
        if sentence:
            tokens.extend(_tokenize_sentence(sentence))
    return tokens


def course_tokenize(review: str) -> str:
    """Tokenize a review exactly as the course did for BlazingText.

    Commas and double quotes are deleted, the text is lower-cased, tokenized, and the tokens
    are joined with single spaces. Newlines therefore never survive, so the result is always
    one fastText line.

    Args:
        review: the raw review text.

    Returns:
        The space-separated tokens.
    """
    return " ".join(word_tokenize(str(review).replace(",", "").replace('"', "").lower()))
