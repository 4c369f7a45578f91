"""Pinned reward-cache keys and prompts: no refactor may silently orphan a user's reward cache.

Every digest below was computed with the code before ``ragenv/llm.py`` became the package
``ragenv/llm/``; none of these tests loads a model. A digest that moves means every cached
result of that kind is lost: give the prompt a new version instead (``ragenv.llm.prompts``).
"""
from __future__ import annotations

import hashlib

import pytest

from ragenv.data import Passage
from ragenv.llm import FrozenLLM, LLMConfig, build_prompt
from ragenv.llm.models import model_fingerprint
from ragenv.llm.prompts import cache_fingerprint, prompt_key

pytestmark = pytest.mark.unit  # model-free: the fast tier

FINGERPRINT = "fixed-cache-fingerprint"  # stands for a model: the key formula alone is pinned
GEMMA_GGUF_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"  # its package's EXPECTED_SHA256
QUESTION = "who wrote hamlet?"
PASSAGES = (Passage("p1", "Hamlet", "Hamlet is a play by William Shakespeare."),
            Passage("p2", "", "The Globe Theatre was built in 1599 in London."))
LIMITS = {"max_passage_words": 160, "max_question_words": 96}  # LLMConfig's defaults


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(("kind", "passages", "extra", "task", "expected"), [
    ("logprob", PASSAGES, "William Shakespeare", "answer",  # an answer score with passages
     "2e5210e28d7a2af7371e3b554c528a62b1bf85df828391e5b531c429751aab63"),
    ("logprob", (), "William Shakespeare", "answer",  # a closed-book answer score
     "7317c738ea71bd520cf4887fb11fc8da8a84cb6f92c1f99917ebeb5f95e4b48d"),
    ("generate", PASSAGES, 24, "answer",  # a generated answer
     "fe70bcf147754e44e0397726a605df557b42fd317e8e0c0a34146241e1cf4d8b"),
    ("generate", (), 24, "answer",  # a closed-book generated answer
     "77f83a91af5e27fe5fc640343021e8c5f58a6f77698de21d8f67ab52c8b21e89"),
    ("generate", PASSAGES[:1], 24, "search_query",  # an LLM-written search query
     "00a22690806af18334c689d0bb7e79c0eacfaf4dc81468fb9ebc56f7d36a6b0e"),
])
def test_key_digests_are_pinned(kind, passages, extra, task, expected):
    assert prompt_key(kind, FINGERPRINT, QUESTION, passages, extra, task, **LIMITS) == expected


def test_the_truncation_limits_are_part_of_the_key():
    key = prompt_key("logprob", FINGERPRINT, QUESTION, PASSAGES, "William Shakespeare",
                     max_passage_words=3, max_question_words=2)
    assert key == "1f8576b6ba47b1907ee23689f06f47ccdd4c84397beec17f07da7299d7fac878"


def test_fingerprint_formulas_are_pinned():
    assert model_fingerprint(GEMMA_GGUF_SHA256) == "c3d166f598acbabbf5156711332515a910aece3d986287a583aea1240042e499"
    assert cache_fingerprint(GEMMA_GGUF_SHA256, "float32") == \
        "a0122d18098d349ca8b03faca4a611497a2283e03c21ed064b32169e9841a25b"
    assert cache_fingerprint(GEMMA_GGUF_SHA256, "bfloat16") == \
        "6b6cbcf3a22f6c8af3950e4392574619c3e456cc69370081f0019859028f46ee"


def test_the_default_models_keys_are_pinned_without_loading_it():
    """Gemma 3 270M's own keys, as the scorer builds them (its package publishes the weights' digest)."""
    llm = FrozenLLM(LLMConfig("gemma-3-270m"), use_cache=False)
    assert llm.fingerprint == "c3d166f598acbabbf5156711332515a910aece3d986287a583aea1240042e499"
    assert llm.cache_fingerprint == "a0122d18098d349ca8b03faca4a611497a2283e03c21ed064b32169e9841a25b"
    assert llm.key("logprob", QUESTION, PASSAGES, "William Shakespeare") == \
        "15c76952abc4a1eee3107ea6a98cfb5e35ac176c3a6f2c854468a910ce3aa3a8"
    assert llm.key("logprob", QUESTION, (), "William Shakespeare") == \
        "4b8000b6fc6bd8e4b2811fc873f003b4ff2de48d80f59f3e2edce0fd5446196a"
    assert llm.key("generate", QUESTION, PASSAGES, 24) == \
        "c7dc0064a7b62b5880be96434d9af09610eb5924a464d6bfc80f6fd2212bf65c"
    assert llm.key("generate", QUESTION, (), 24, "search_query") == \
        "e480f424e74c870b7975afe4dbec93c60218f9984760a1b7001b7a45b65f50b9"
    assert not llm.loaded


@pytest.mark.parametrize(("passages", "task", "expected"), [
    (PASSAGES, "answer", "fc36b18a97aadeb176a0eab76a78e163b4daae2c2ddbbf1df141eccf2b402e8d"),
    ((), "answer", "c4ac835e070f1dc874b0d30e41b8c19eae28fe138af9e7d5ac0f0706daf88b6f"),
    (PASSAGES, "search_query", "0fb2c23b3e1052fbfbc0737fccf57908b70aa5b614b77d21da5a0d5bb57caad0"),
    ((), "search_query", "3992cc14042889549ca789dd315d2c640a74a16b885f37f8dc002a42dc6e4210"),
])
def test_prompt_texts_are_pinned(passages, task, expected):
    """The prompt is behind every key's prompt version: its text must not move either."""
    assert sha256(build_prompt(QUESTION, passages, task, **LIMITS)) == expected


def test_truncated_prompt_text():
    text = build_prompt(QUESTION, PASSAGES, max_passage_words=3, max_question_words=2)
    assert sha256(text) == "7cdcb33dcf01d5d70b3b3a26c3466a1e0fcb7ebbab5f74994ec00818df6778a6"
    assert text.endswith("[1] Hamlet: Hamlet is a ...\n[2] The Globe Theatre ...\n\nQuestion: who wrote ...")
