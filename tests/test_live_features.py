"""Encoder features without a corpus-wide embedding pass: LiveEmbeddings embeds a passage when it is first shown.

Real data (the small nq fixture) and the real MiniLM encoder; no LLM is called (only the
observation's features are read).
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import ragenv  # noqa: F401  (registers the environments)
from ragenv.index.dense import DenseIndex, LiveEmbeddings
from tests.support import TEST_LLM


@pytest.fixture(scope="module")
def live_env(small_dataset):
    env = gym.make("RAGRetrieval-v0", dataset=str(small_dataset), split="test", llm=TEST_LLM, features=True)
    yield env
    env.close()


def test_make_embeds_no_passage(live_env):
    base = live_env.unwrapped
    assert isinstance(base.dense, LiveEmbeddings) and base.dense.memoised == 0  # no DenseIndex: no corpus-wide pass


def test_features_equal_the_dense_index_vectors(live_env):
    """The live vector of a passage is the stored one up to float32 rounding (another batch, other padding)."""
    base = live_env.unwrapped
    observation, _ = live_env.reset(seed=0)
    rows = observation["candidate_ids"]
    features = observation["candidate_embeddings"]
    assert features.shape == (base.num_candidates, base.dense.encoder.dim)
    shown = base.dense.memoised
    assert 0 < shown <= base.num_candidates  # only this question's candidates were embedded
    index = DenseIndex(base.corpus, base.dense.encoder)  # the whole (small) corpus, for reference
    stored = np.clip(index.passage_embeddings(rows), -1.0, 1.0)
    assert np.abs(features - stored).max() < 1e-6
    assert np.allclose(np.linalg.norm(features[rows >= 0], axis=1), 1.0, atol=1e-5)
    live_env.reset(seed=0)  # the same question again: nothing new to embed
    assert base.dense.memoised == shown


def test_padding_rows_are_zero_vectors(live_env):
    dense = live_env.unwrapped.dense
    out = dense.passage_embeddings(np.array([[0, -1], [-1, 1]]))
    assert out.shape == (2, 2, dense.encoder.dim)
    assert not out[0, 1].any() and not out[1, 0].any() and out[0, 0].any()
