"""The agent registry: one entry per agent, names checked before anything loads, one act_batch signature."""
from __future__ import annotations

import hashlib

import pytest

from ragenv.errors import ConfigError
from ragenv.registry import (
    AGENTS,
    AgentEntry,
    agent_fingerprint,
    agent_names,
    check_agent_name,
    find_agent,
    register_agent,
)


@pytest.mark.unit
def test_every_agent_is_listed_for_its_environment_with_its_usage():
    retrieval = agent_names("RAGRetrieval-v0")
    assert list(retrieval) == ["bm25", "bm25s", "dense", "closed-book", "oracle", "random", "r3:DIR"]
    smartrag = agent_names("SmartRAG-v0")
    assert ({"never-retrieve", "always-retrieve", "always-retrieve:keywords", "random", "oracle", "ppo:DIR"}
            <= set(smartrag))
    assert all(text for text in retrieval.values()) and all(text for text in smartrag.values())
    with pytest.raises(ConfigError, match="no built-in agents"):
        agent_names("SmartRAGText-v0")


@pytest.mark.unit
def test_unknown_names_and_missing_trained_folders_are_refused_before_anything_loads(tmp_path):
    with pytest.raises(ConfigError, match="unknown agent 'bm26' for RAGRetrieval-v0: use one of bm25, bm25s"):
        check_agent_name("bm26", "RAGRetrieval-v0")
    with pytest.raises(ConfigError, match="unknown agent 'never-retrieve'"):
        check_agent_name("never-retrieve", "RAGRetrieval-v0")  # a SmartRAG agent
    with pytest.raises(ConfigError,
                       match=r"no trained R3 agent in .*model.pt or agent.json are missing.*ragenv train r3"):
        check_agent_name(f"r3:{tmp_path}", "RAGRetrieval-v0")
    with pytest.raises(ConfigError, match=r"no trained PPO agent .*model.zip is missing"):
        check_agent_name(f"ppo:{tmp_path}", "SmartRAG-v0")
    (tmp_path / "model.zip").write_bytes(b"x")
    entry, argument = find_agent(f"ppo:{tmp_path}", "SmartRAG-v0")
    assert entry.name == "ppo:" and argument == str(tmp_path)
    with pytest.raises(ConfigError, match="unknown environment"):
        check_agent_name("bm25", "CartPole-v1")


@pytest.mark.unit
def test_a_trained_agents_fingerprint_digests_its_files_in_a_fixed_order(tmp_path):
    (tmp_path / "agent.json").write_text("{}")
    (tmp_path / "model.pt").write_bytes(b"weights")
    expected = hashlib.sha256(b"agent.json{}" + b"model.ptweights").hexdigest()[:16]
    assert agent_fingerprint(f"r3:{tmp_path}") == f"r3:{expected}"
    assert agent_fingerprint("bm25") == "bm25"


@pytest.mark.unit
def test_adding_an_agent_is_one_entry(monkeypatch):
    monkeypatch.setattr("ragenv.registry.AGENTS", list(AGENTS))
    register_agent(AgentEntry("first-passage", "retrieval", "always row 0", lambda env, _arg, _seed: None))
    assert "first-passage" in agent_names("RAGRetrieval-v0")
    check_agent_name("first-passage", "RAGRetrieval-v0")
    with pytest.raises(ConfigError, match="already registered"):
        register_agent(AgentEntry("first-passage", "retrieval", "again", lambda env, _arg, _seed: None))
    with pytest.raises(ConfigError, match="family"):
        register_agent(AgentEntry("x", "chess", "no", lambda env, _arg, _seed: None))


@pytest.mark.parametrize("name", ["bm25s", "dense", "closed-book", "oracle", "random"])
def test_every_retrieval_agent_acts_in_batches_as_it_acts_one_question_at_a_time(small_env, name):
    import numpy as np

    from ragenv.registry import RetrievalAgent, make_agent

    base = small_env.unwrapped
    questions = base.questions[:4]
    batched = make_agent(name, small_env, seed=3)
    assert isinstance(batched, RetrievalAgent)
    one_by_one = make_agent(name, small_env, seed=3)
    singles = []
    for question in questions:
        observation, info = small_env.reset(options={"question_id": question.id})
        singles.append(one_by_one.act(observation, info))
    assert np.array_equal(batched.act_batch(questions), np.stack(singles))
