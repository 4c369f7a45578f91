"""Dense retrieval: the packaged MiniLM encoder, and the DPR question/context path on a local checkpoint."""
from __future__ import annotations

import numpy as np
import pytest

from ragenv.data import Corpus
from ragenv.index import make_index


@pytest.fixture(scope="module")
def corpus(nq):
    questions = nq.split("dev")[:20]
    gold = [nq.corpus[nq.corpus.row(q.gold_passage_ids[0])] for q in questions]
    others = nq.corpus.passages[5000:5200]
    return Corpus("dense-test", gold + [p for p in others if p not in gold]), questions


def test_minilm_finds_gold_passages_and_is_cached(corpus):
    corp, questions = corpus
    index = make_index("dense", corp)
    rows, scores = index.search([q.question for q in questions], 5)
    assert rows.shape == scores.shape == (20, 5) and rows.dtype == np.int64
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    hits = np.mean([corp[r].id in q.gold_passage_ids for q, row in zip(questions, rows) for r in row[:5]]) * 5
    assert hits >= 0.7  # measured 0.9: MiniLM puts the gold passage in the top 5 for most nq questions
    again = make_index("dense", corp)
    assert again.path == index.path and np.array_equal(again.embeddings, index.embeddings)
    assert np.allclose(np.linalg.norm(index.embeddings, axis=1), 1.0, atol=1e-4)


def test_k_beyond_corpus_pads_with_minus_one(corpus):
    corp, _ = corpus
    rows, _ = make_index("dense", corp).search(["anything"], len(corp) + 5)
    assert (rows[0, -5:] == -1).all() and set(rows[0, :-5]) == set(range(len(corp)))


def test_dpr_question_and_context_encoder_pair(corpus, tmp_path):
    """A DPR pair saved locally (tiny random weights: no checkpoint can be downloaded here) loads and searches."""
    from transformers import BertTokenizerFast, DPRConfig, DPRContextEncoder, DPRQuestionEncoder

    from ragenv.encoder import resolve_encoder_path

    corp, questions = corpus
    tokenizer = BertTokenizerFast.from_pretrained(resolve_encoder_path("all-MiniLM-L6-v2"))
    config = DPRConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=64, projection_dim=0)
    for name, cls in (("q", DPRQuestionEncoder), ("ctx", DPRContextEncoder)):
        cls(config).save_pretrained(tmp_path / name)
        tokenizer.save_pretrained(tmp_path / name)
    index = make_index("dense", corp, encoder=str(tmp_path / "ctx"), query_encoder=str(tmp_path / "q"))
    assert index.embeddings.shape == (len(corp), 32)
    rows, scores = index.search([questions[0].question], 3)
    expected = index.query_encoder.encode([questions[0].question]) @ np.asarray(index.embeddings).T
    assert rows[0, 0] == int(np.argmax(expected[0])) and scores[0, 0] == pytest.approx(expected[0].max(), rel=1e-5)
