"""Input limits (README "Input limits"): long text is cut by documented rules and never silently by a
tokenizer, a prompt beyond the LLM's context is refused, Unicode goes through end to end, empty answers and
duplicate ids are named errors, and RAGENV_CACHE decides where every cache lives.

Real data pieces (nq questions and passages), the real SmolLM2 and the real all-MiniLM-L6-v2.
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import ragenv  # noqa: F401
from ragenv.data import load_user_dataset
from ragenv.errors import DataError, PromptTooLongError
from ragenv.llm import truncate_words
from tests.support import TEST_LLM

UNICODE_QUESTION = "¿Quién escribió «Cien años de soledad»? 誰が書いた 🎉 (Ünïcödé, ‏עברית‏, e\u0301, zero\u200bwidth)"
LONG_WORDS = 5000


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def unicode_dataset(nq, tmp_path_factory) -> Path:
    """Real nq passages (first 20 words each) plus Unicode passages, one of 5,000 words and one 'word' of 40,000 CJK
    characters; an nq question and a Unicode one whose answer is in the Unicode passage."""
    folder = tmp_path_factory.mktemp("unicode-data")
    question = nq.split("test")[0]
    gold = nq.corpus[nq.corpus.row(question.gold_passage_ids[0])]
    passages = [{"id": gold.id, "title": gold.title, "text": " ".join(gold.text.split()[:20])}]
    passages += [{"id": p.id, "title": p.title, "text": " ".join(p.text.split()[:20])}
                 for p in nq.corpus.passages[3000:3006]]
    passages += [
        {"id": "u-es", "title": "Cien años de soledad",
         "text": "«Cien años de soledad» es una novela de Gabriel García Márquez 📚."},
        {"id": "u-ja", "title": "日本語", "text": "ガブリエル・ガルシア＝マルケスが書いた小説。"},
        {"id": "u-long", "title": "Long", "text": " ".join(f"wörd{i}" for i in range(LONG_WORDS))},
        {"id": "u-one-huge-word", "title": "", "text": "語" * 40_000},
    ]
    questions = [
        {"id": question.id, "question": question.question, "answers": list(question.answers),
         "gold_passage_ids": [gold.id], "split": "test"},
        {"id": "u-q", "question": UNICODE_QUESTION, "answers": ["", "Gabriel García Márquez"],
         "gold_passage_ids": ["u-es"], "split": "test"},
    ]
    for name, rows in (("corpus.jsonl", passages), ("questions.jsonl", questions)):
        (folder / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def unicode_env(unicode_dataset):
    """With features: every passage the environment shows is embedded, the long ones included (counted, not silent)."""
    env = gym.make("RAGRetrieval-v0", dataset=str(unicode_dataset), split="test", llm=TEST_LLM, k=2, num_candidates=4)
    yield env
    env.close()


def test_unicode_question_and_passages_go_through_a_step(unicode_env):
    base = unicode_env.unwrapped
    obs, info = unicode_env.reset(options={"question_id": "u-q"})
    assert obs["question"] == UNICODE_QUESTION and unicode_env.observation_space.contains(obs)
    rows = [base.corpus.row("u-es"), base.corpus.row("u-ja")]
    obs, reward, terminated, _, info = unicode_env.step(np.array(rows))
    assert terminated and math.isfinite(reward) and info["passage_ids"] == ["u-es", "u-ja"]
    assert base.dataset.questions[1].answers == ("Gabriel García Márquez",)  # the blank alias was dropped
    text = base.scorer.prompt_text(UNICODE_QUESTION, [base.corpus[r] for r in rows])
    assert UNICODE_QUESTION in text and "ガブリエル" in text and "📚" in text  # nothing re-encoded or lost


def test_long_passage_is_cut_by_the_word_rule_not_by_the_tokenizer(unicode_env):
    base = unicode_env.unwrapped
    long_row = base.corpus.row("u-long")
    unicode_env.reset(options={"question_id": "u-q"})
    _, reward, _, _, info = unicode_env.step(np.array([long_row, -1]))
    assert math.isfinite(reward)
    limit = base.scorer.config.max_passage_words
    prompt = base.scorer.prompt_text(UNICODE_QUESTION, [base.corpus[long_row]])
    assert f"wörd{limit - 1} ..." in prompt and f"wörd{limit}" not in prompt  # the first 160 words, then " ..."
    assert truncate_words(base.corpus[long_row].text, limit).split()[-1] == "..."
    assert info["prompt_tokens"] == len(base.scorer.prompt_ids(UNICODE_QUESTION, [base.corpus[long_row]]))
    assert info["prompt_tokens"] < 10 * limit < LONG_WORDS  # the LLM read 160 of the 5,000 words (each >= 1 token)


def test_encoder_cut_is_counted_and_follows_the_token_rule(unicode_env):
    base = unicode_env.unwrapped
    encoder = base.dense.encoder
    before = encoder.stats.truncated
    base.dense.passage_embeddings(np.array([base.corpus.row("u-long"), base.corpus.row("u-one-huge-word")]))
    assert encoder.stats.truncated - before in (0, 2)  # 0 if a reset had already shown (and embedded) them
    assert encoder.stats.truncated >= 2  # the 5,000-word and the 40,000-character passages
    limit = encoder.config.max_seq_length
    long_text = " ".join(f"wörd{i}" for i in range(LONG_WORDS))
    before = encoder.stats.truncated
    first, with_tail, short, short_tail = encoder.encode([long_text, long_text + " and more words at the end",
                                                          "a short passage", "a short passage and more words"])
    assert encoder.stats.truncated == before + 2
    assert encoder.token_lengths([long_text])[0] > limit >= encoder.token_lengths(["a short passage and more words"])[0]
    assert np.array_equal(first, with_tail)  # only the first 256 tokens count: words past them change nothing
    assert not np.array_equal(short, short_tail)  # within the window every word counts


def test_prompt_beyond_the_context_is_refused_before_any_llm_work(unicode_env):
    base = unicode_env.unwrapped
    unicode_env.reset(options={"question_id": "u-q"})
    passes = base.scorer.stats.forward_passes
    huge = base.corpus.row("u-one-huge-word")  # one 40,000-character "word": the word rule cannot shorten it
    with pytest.raises(PromptTooLongError,
                       match=re.escape("'u-q'") + r".*over the 8,192-token context of smollm2-135m"):
        unicode_env.step(np.array([huge, -1]))
    assert base.scorer.stats.forward_passes == passes  # refused before the model ran
    assert base.current_question.id == "u-q"  # the episode is still open
    assert unicode_env.step(np.array([-1, -1]))[2]


def test_too_many_passages_for_the_context_are_refused(small_dataset, unicode_env):
    """k = 80 passages of about 100 words each exceed SmolLM2's 8,192 tokens although each passage is within its
    limit."""
    env = gym.make("RAGRetrieval-v0", dataset=str(small_dataset), split="test", k=80, features=False,
                   scorer=unicode_env.unwrapped.scorer)  # the loaded SmolLM2
    env.reset(seed=0)
    with pytest.raises(PromptTooLongError, match="80 passage"):
        env.step(np.arange(80))


@pytest.mark.unit
def test_empty_answers_and_duplicate_ids_are_named_errors(tmp_path):
    """The documented rules one by one: duplicate ids are errors, not merged; blank answer aliases are dropped."""
    def write(corpus, questions):
        (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in corpus) + "\n")
        (tmp_path / "questions.jsonl").write_text("\n".join(json.dumps(r) for r in questions) + "\n")

    passages = [{"id": "p1", "title": "Ünïcödé", "text": "日本語 テキスト 🎉"}, {"id": 2, "text": "plain"}]
    question = {"id": "q1", "question": "¿Dónde está 日本?", "answers": ["", "  ", "Tokio"],
                "gold_passage_ids": ["p1", 2]}
    write(passages, [question])
    dataset = load_user_dataset(tmp_path)
    assert dataset.questions[0].answers == ("Tokio",) and dataset.questions[0].gold_passage_ids == ("p1", "2")
    assert dataset.corpus[0].text == "日本語 テキスト 🎉"
    for corpus, questions, where in [
        (passages + [{"id": "p1", "text": "again"}], [question], "corpus.jsonl:3: duplicate passage id"),
        (passages + [{"id": "2", "text": "the int 2 again"}], [question], "corpus.jsonl:3: duplicate passage id"),
        (passages, [question, {**question, "question": "again?"}], "questions.jsonl:2: duplicate question id"),
        (passages, [{**question, "answers": ["", " "]}], "questions.jsonl:1: 'answers' needs at least one"),
        (passages, [{**question, "answers": []}], "questions.jsonl:1: 'answers' needs at least one"),
        (passages, [{**question, "id": True}], "questions.jsonl:1: a question needs 'id'"),
        (passages, [{**question, "split": ["test"]}], "questions.jsonl:1: 'split' must be"),
        (passages, [{**question, "source": {"a": 1}}], "questions.jsonl:1: 'source' must be"),
    ]:
        write(corpus, questions)
        with pytest.raises(DataError, match=re.escape(where)):
            load_user_dataset(tmp_path)
    (tmp_path / "questions.jsonl").write_bytes(json.dumps(question).encode() + b"\n" + b'{"id": "q2\xff"}\n')
    with pytest.raises(DataError, match=re.escape("questions.jsonl:2: not UTF-8")):
        load_user_dataset(tmp_path)
    (tmp_path / "questions.jsonl").write_text(json.dumps(question) + "\n" + '{"id": ' + "1" * 5000 + "}\n")
    with pytest.raises(DataError, match=re.escape("questions.jsonl:2: not valid JSON")):
        load_user_dataset(tmp_path)


def test_ragenv_cache_decides_where_every_cache_lives(tmp_path, monkeypatch):
    from ragenv import settings
    from ragenv.index.base import index_path
    from ragenv.llm import FrozenLLM, LLMConfig
    from ragenv.reward_cache import RewardCache

    root = tmp_path / "my cache ü"
    monkeypatch.setenv("RAGENV_CACHE", str(root))
    assert settings.cache_dir() == root and root.is_dir()
    assert RewardCache().path == root / "reward_cache.sqlite"
    assert FrozenLLM(LLMConfig(TEST_LLM)).converted_dir().parent == root / "models"

    class Corpus:
        name, fingerprint = "c", "0" * 64

    assert index_path("bm25s", {}, Corpus()).parent == root / "indexes"
    result = subprocess.run([sys.executable, "-m", "ragenv.cli", "cache", "info"], capture_output=True, text=True,
                            env={**os.environ, "RAGENV_CACHE": str(root / "cli"), "COLUMNS": "1000"}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert str(root / "cli" / "reward_cache.sqlite") in result.stdout.replace("\n", "")
    monkeypatch.delenv("RAGENV_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert settings.cache_dir() == tmp_path / "xdg" / "ragenv"  # the default: the user cache folder
