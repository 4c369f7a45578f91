"""The frozen LLM's prompts and reward-cache keys: pure functions, no model and no torch.

Everything here decides what a cached result means, so it is frozen: a changed wording,
truncation or key formula needs a new prompt version, or it would silently reuse (or orphan)
the results in every user's reward cache. ``tests/test_cache_keys.py`` pins the digests.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from ragenv.data import Passage, Question
from ragenv.errors import ConfigError
from ragenv.reward_cache import cache_key

# The prompt is versioned: change PROMPT_VERSION whenever its wording or truncation changes,
# so that cached results of the old prompt are never reused.
PROMPT_VERSION = "rag-qa-v1"
INSTRUCTION_WITH_PASSAGES = "Answer the question using the passages. Reply with the short answer only."
INSTRUCTION_CLOSED_BOOK = "Answer the question. Reply with the short answer only."

# Further prompts ("tasks"), each versioned on its own. The answer task keeps its historical cache
# keys (PROMPT_VERSION, no task field); every other task puts its own version into the key.
QUERY_PROMPT_VERSION = "search-query-v1"
INSTRUCTION_SEARCH_QUERY = (
    "Write a short search engine query that would find a Wikipedia passage answering the question. "
    "Reply with the query only."
)
INSTRUCTION_SEARCH_QUERY_WITH_PASSAGES = (
    "The passages do not answer the question. Write a short search engine query that would find a "
    "Wikipedia passage answering it. Reply with the query only."
)
TASKS = {
    "answer": PROMPT_VERSION,
    "search_query": QUERY_PROMPT_VERSION,
}
# task -> (instruction without passages, instruction with passages)
_INSTRUCTIONS = {
    "answer": (INSTRUCTION_CLOSED_BOOK, INSTRUCTION_WITH_PASSAGES),
    "search_query": (INSTRUCTION_SEARCH_QUERY, INSTRUCTION_SEARCH_QUERY_WITH_PASSAGES),
}


@dataclass(frozen=True, kw_only=True)
class PromptRequest:
    """One prompt: score ``answers`` (None: the question's gold answers; (): none) and/or generate.

    ``task`` selects the instruction (see :data:`TASKS`): ``"answer"`` answers the question,
    ``"search_query"`` writes a search query for it. Keyword-only, so call sites name what they ask for.
    """

    question: Question
    passages: tuple[Passage, ...]
    answers: tuple[str, ...] | None = None
    generate: bool = False
    task: str = "answer"


def check_task(task: str) -> None:
    """Refuse a prompt task without an instruction and a version."""
    if task not in TASKS:
        raise ConfigError(f"unknown prompt task {task!r}: use one of {', '.join(TASKS)}")


def truncate_words(text: str, max_words: int) -> str:
    """The documented truncation rule: keep the first ``max_words`` whitespace-separated words."""
    words = text.split()
    return text if len(words) <= max_words else " ".join(words[:max_words]) + " ..."


def build_prompt(question: str, passages: Sequence[Passage], task: str = "answer", *,
                 max_question_words: int, max_passage_words: int) -> str:
    """The user message: instruction, numbered passages, question (prompt version ``TASKS[task]``)."""
    check_task(task)
    q = truncate_words(question, max_question_words)
    closed, with_passages = _INSTRUCTIONS[task]
    if not passages:
        return f"{closed}\n\nQuestion: {q}"
    lines = [
        f"[{i}] {p.title}: {truncate_words(p.text, max_passage_words)}" if p.title
        else f"[{i}] {truncate_words(p.text, max_passage_words)}"
        for i, p in enumerate(passages, 1)
    ]
    return f"{with_passages}\n\n" + "\n".join(lines) + f"\n\nQuestion: {q}"


def cache_fingerprint(weights_digest: str, dtype_name: str) -> str:
    """Model and dtype, the first part of every reward-cache key: two numeric settings never share an entry.

    Its formula is frozen (sha256 of ``weights|dtype``): a new formula would orphan every cache.
    """
    return hashlib.sha256(f"{weights_digest}|{dtype_name}".encode()).hexdigest()


def key_parts(kind: str, fingerprint: str, question: str, passages: Sequence[Passage], extra: object,
              task: str = "answer", *, max_passage_words: int, max_question_words: int) -> list:
    """What a reward-cache key is the digest of: result kind, model, prompt version and limits, texts, ``extra``.

    ``kind`` is ``"logprob"`` (``extra``: the answer alias) or ``"generate"`` (``extra``: max new tokens).
    """
    parts = [kind, fingerprint, PROMPT_VERSION, max_passage_words, max_question_words, question,
             [(p.id, p.contents) for p in passages], extra]
    if task != "answer":  # the answer task keeps the keys it always had, so existing caches stay valid
        parts[2] = TASKS[task]
        parts.append({"task": task})
    return parts


def prompt_key(kind: str, fingerprint: str, question: str, passages: Sequence[Passage], extra: object,
               task: str = "answer", *, max_passage_words: int, max_question_words: int) -> str:
    """The reward-cache key of one result (see :func:`key_parts`)."""
    return cache_key(*key_parts(kind, fingerprint, question, passages, extra, task,
                                max_passage_words=max_passage_words, max_question_words=max_question_words))
