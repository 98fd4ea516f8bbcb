"""`Encoder.encode_tokens`: the per-token vectors behind a sentence vector (used by the cache verifier experiment)."""

from __future__ import annotations

import numpy as np

from indexer.encoder import get_encoder


def test_token_vectors_pool_to_the_sentence_vector_and_keep_input_order() -> None:
    enc = get_encoder()
    texts = ["How do I sort an array in JavaScript?", "hi", "convert a string to an int in Go"]
    out = enc.encode_tokens(texts)
    assert len(out) == len(texts)
    first = out[0]
    assert first.tokens[0] == "[CLS]" and first.tokens[-1] == "[SEP]"
    assert "sort" in first.tokens and "array" in first.tokens
    assert len(first.tokens) == len(first.word_ids) == first.vectors.shape[0]
    assert first.vectors.shape[1] == enc.dim and first.vectors.dtype == np.float32
    # Special tokens have no word; "javascript" is split into pieces that share one word index.
    assert first.word_ids[0] == -1 and first.word_ids[-1] == -1
    js = [w for t, w in zip(first.tokens, first.word_ids) if t in ("java", "##script")]
    assert len(js) == 2 and js[0] == js[1]
    # Mean pooling of the token vectors is the sentence vector `encode` returns (sorting by length must not reorder).
    sentences = enc.encode(texts)
    for tv, vec in zip(out, sentences):
        pooled = tv.vectors.mean(axis=0)
        pooled /= np.linalg.norm(pooled)
        assert float(pooled @ vec) > 0.9999
    assert out[1].tokens == ["[CLS]", "hi", "[SEP]"]


def test_blank_text_still_gets_token_vectors() -> None:
    out = get_encoder().encode_tokens(["", "   "])
    assert [tv.tokens for tv in out] == [["[CLS]", "[SEP]"], ["[CLS]", "[SEP]"]]
