"""The frozen-LLM scorer against plain transformers calls, its cache, and model-name handling."""
from __future__ import annotations

import time

import pytest
import torch

from ragenv.data import Passage, Question
from ragenv.errors import ConfigError
from ragenv.llm import FrozenLLM, LLMConfig, PromptRequest, make_llm_config, resolve_model_source, truncate_words
from ragenv.reward_cache import RewardCache
from tests.support import TEST_LLM


def reference_logprob(llm: FrozenLLM, question: Question, passages, answer: str) -> float:
    """Mean answer-token log-prob from one plain forward pass over prompt + answer."""
    prompt = llm.prompt_ids(question.question, passages)
    answer_ids = llm.answer_ids(answer)
    ids = torch.tensor([prompt + answer_ids])
    with torch.inference_mode():
        logits = llm.model(input_ids=ids).logits[0].float()
    logprobs = torch.log_softmax(logits[len(prompt) - 1:-1], dim=-1)
    return float(logprobs.gather(-1, torch.tensor(answer_ids)[:, None]).mean())


def reference_answer(llm: FrozenLLM, question: Question, passages) -> str:
    prompt = llm.prompt_ids(question.question, passages)
    with torch.inference_mode():
        out = llm.model.generate(input_ids=torch.tensor([prompt]), max_new_tokens=llm.config.max_new_tokens,
                                 do_sample=False, top_p=None, top_k=None, temperature=None)
    return llm.tokenizer.decode(out[0, len(prompt):], skip_special_tokens=True).strip().split("\n")[0].strip()


def requests_for(nq, n: int, long_context: bool = False):
    questions = nq.split("dev")[:n]
    out = []
    for i, q in enumerate(questions):
        passages = tuple(nq.corpus[nq.corpus.row(pid)] for pid in q.gold_passage_ids)
        if long_context:  # push prompts past Gemma's 512-token sliding window
            passages += tuple(nq.corpus.passages[4000 + 4 * i: 4004 + 4 * i])
        out.append(PromptRequest(question=q, passages=passages if i % 3 else (), generate=True))
    return out


def check_against_reference(llm: FrozenLLM, requests) -> None:
    results = llm.run(requests)
    for request, result in zip(requests, results):
        expected = max(reference_logprob(llm, request.question, request.passages, a) for a in request.question.answers)
        assert result.score.mean_logprob == pytest.approx(expected, abs=2e-3)
        assert result.generation.text == reference_answer(llm, request.question, request.passages)


def test_shared_prefix_scoring_and_greedy_decoding_match_plain_transformers(nq, tmp_path):
    llm = FrozenLLM(LLMConfig(TEST_LLM, dtype="float32"), RewardCache(tmp_path / "c.sqlite"))
    check_against_reference(llm, requests_for(nq, 6))


def test_gemma_matches_plain_transformers_beyond_its_sliding_window(nq, tmp_path):
    llm = FrozenLLM(LLMConfig("gemma-3-270m", dtype="float32"), RewardCache(tmp_path / "c.sqlite"))
    requests = requests_for(nq, 2, long_context=True)
    assert max(len(llm.prompt_ids(r.question.question, r.passages)) for r in requests) > 520  # window: 512
    check_against_reference(llm, requests)


def test_cached_results_skip_the_model_entirely(nq, tmp_path):
    requests = requests_for(nq, 4)
    first = FrozenLLM(LLMConfig(TEST_LLM), RewardCache(tmp_path / "c.sqlite"))
    computed = first.run(requests)
    second = FrozenLLM(LLMConfig(TEST_LLM), RewardCache(tmp_path / "c.sqlite"))
    cached = second.run(requests)
    assert second.stats.model_loads == 0 and not second.loaded
    assert [c.score.cached for c in cached] == [True] * 4 and [c.score.cached for c in computed] == [False] * 4
    assert [(c.score.mean_logprob, c.generation.text) for c in cached] == \
           [(c.score.mean_logprob, c.generation.text) for c in computed]


def test_answers_override_and_missing_answers(tmp_path):
    llm = FrozenLLM(LLMConfig(TEST_LLM), RewardCache(tmp_path / "c.sqlite"))
    q = Question("q1", "What is the capital of France?", ("Paris",))
    own, other = llm.answer_logprob([(q, []), (q, [])], answers=[["Paris"], ["Berlin"]])
    assert own.mean_logprob > other.mean_logprob and own.answer == "Paris"
    nothing = llm.answer_logprob([(Question("q2", "Who?", ()), [])])[0]
    assert nothing.mean_logprob == float("-inf")


def test_prompt_truncates_long_passages_by_the_documented_rule():
    llm = FrozenLLM(LLMConfig(TEST_LLM, max_passage_words=5), use_cache=False)
    text = llm.prompt_text("q?", [Passage("p", "T", "one two three four five six seven")])
    assert "one two three four five ..." in text and "six" not in text
    assert truncate_words("a b", 5) == "a b"


@pytest.mark.parametrize("name", ["no-such-model", "/nonexistent/model.gguf", "./missing-folder"])
def test_unknown_models_are_config_errors(name):
    with pytest.raises(ConfigError):
        resolve_model_source(name)


def test_hub_ids_are_accepted_without_loading():
    assert resolve_model_source("HuggingFaceTB/SmolLM2-135M-Instruct").kind == "hub"


def test_identical_requests_in_one_call_are_computed_once(nq, tmp_path):
    llm = FrozenLLM(LLMConfig(TEST_LLM), RewardCache(tmp_path / "c.sqlite"))
    q = nq.split("dev")[0]
    results = llm.run([PromptRequest(question=q, passages=()), PromptRequest(question=q, passages=()),
                    PromptRequest(question=q, passages=(), generate=True)])
    assert llm.stats.scored_sequences == 2 * len(q.answers)  # the first two share one computation
    assert results[0].score == results[1].score and not results[0].score.cached


@pytest.mark.unit
@pytest.mark.parametrize("env_id", ["RAGRetrieval-v0", "SmartRAG-v0"])
def test_gym_make_refuses_a_misspelled_llm_at_once(env_id):
    """The name is checked before any data is read (the folder below does not exist), naming the known models."""
    import gymnasium as gym

    import ragenv  # noqa: F401

    start = time.monotonic()
    with pytest.raises(ConfigError, match="unknown LLM 'gemma-3-27om': use one of gemma-3-270m, smollm2-135m"):
        gym.make(env_id, dataset="/nonexistent/folder", llm="gemma-3-27om")
    assert time.monotonic() - start < 5


@pytest.mark.unit
def test_an_uncached_hub_id_fails_at_once_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE.*gemma-3-270m, smollm2-135m"):
        make_llm_config("google/gemma-3-27om")
    assert time.monotonic() - start < 5


@pytest.mark.unit
def test_an_uncached_hub_id_fails_at_once_without_a_network(monkeypatch):
    """No offline flag, but the Hub cannot be reached: one look-up, no retries, and a message that says why."""
    from huggingface_hub import constants

    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    start = time.monotonic()
    with pytest.raises(ConfigError, match="cannot be reached.*gemma-3-270m, smollm2-135m.*HF_HUB_OFFLINE=1"):
        make_llm_config("google/gemma-3-27om")
    assert time.monotonic() - start < 5


@pytest.mark.unit
def test_known_names_and_local_models_pass_the_make_time_check(tmp_path):
    assert make_llm_config("smollm2-135m").name == "smollm2-135m"
    (tmp_path / "config.json").write_text("{}")
    assert make_llm_config(str(tmp_path)).name == str(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        make_llm_config(str(tmp_path / "missing.gguf"))
