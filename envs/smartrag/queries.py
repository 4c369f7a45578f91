"""SmartRAG-v0's query options: how each RETRIEVE action writes its search query.

:data:`QUERY_WRITERS` maps each option's name to its writer; its key order is the action
order (action ``1 + i`` retrieves with the ``i``-th option), and :data:`QUERY_OPTIONS` is
its keys. Every writer is a pure function of :class:`QueryInputs` (the question, the frozen
LLM's closed-book guess and its raw search-query text), so the queries of a question are
fixed before any action. To add a rewrite, add one entry here: the action space, the
observation and the baselines follow (a new option changes the environment, so it needs a
new environment version).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ragenv.metrics import normalize_answer

MAX_QUERY_WORDS = 32

# Removed by the keyword rewrite: question words, auxiliaries and common English function words.
QUESTION_WORDS = frozenset(
    "who whom whose what which when where why how whats whos wheres".split()
)
STOPWORDS = frozenset(
    """a about above after again against all am an and any are aren as at be because been before being below
    between both but by can cannot could couldn did didn do does doesn doing don down during each few for from
    further had hadn has hasn have haven having he her here hers herself him himself his i if in into is isn it
    its itself just me more most much my myself no nor not now of off on once only or other ought our ours
    ourselves out over own same shall she should shouldn so some such than that the their theirs them themselves
    then there these they this those through to too under until up upon very was wasn we were weren will with
    would wouldn you your yours yourself yourselves name named called many""".split()
)
_CLITICS = frozenset("s t re ve ll d m".split())
_WORD = re.compile(r"[\w'’.-]+", re.UNICODE)


def keyword_query(question: str) -> str:
    """The deterministic keyword-only rewrite: the question's words minus question words and stopwords.

    Words keep their case and order; edge punctuation is stripped. ``"who wrote the
    lyrics of let it be"`` gives ``"wrote lyrics let"``. An empty result falls back to the
    question itself.
    """
    drop = QUESTION_WORDS | STOPWORDS
    kept = []
    for token in _WORD.findall(question):
        word = token.strip(".'’-")
        lower = word.lower().replace("’", "'")
        base, _, clitic = lower.partition("'")
        if not word or lower in drop or (clitic in _CLITICS and base in drop):  # what's, isn't, don't
            continue
        kept.append(word)
    return " ".join(kept) or question.strip()


_QUOTED = re.compile(r"[\"“”]([^\"“”]{3,})[\"“”]")
_LABEL = re.compile(r"^(?:search(?: engine)?\s+)?query\s*:\s*", re.IGNORECASE)


def clean_search_query(text: str, question: str) -> str:
    """The frozen LLM's search query as used: deterministic clean-up of its first line.

    A quoted span of at least two words is taken as the query (small models like
    ``The query for "x y" would be``); a leading ``Query:`` label and surrounding quotes
    and punctuation are dropped; at most 32 words are kept; an empty result falls
    back to the question.
    """
    text = text.strip()
    quoted = [m.group(1).strip() for m in _QUOTED.finditer(text) if len(m.group(1).split()) >= 2]
    if quoted:
        text = quoted[0]
    text = _LABEL.sub("", text).strip().strip("\"'“”`").strip()
    words = text.split()[:MAX_QUERY_WORDS]
    return " ".join(words) or question.strip()


def words_in_query(query: str) -> int:
    """Distinct words of a query after SQuAD normalisation (at least 1): the scale of a BM25 score."""
    return max(1, len(set(normalize_answer(query).split())))


@dataclass(frozen=True)
class QueryInputs:
    """What a query writer may read: all of it is known before the episode's first action."""

    question: str  # the question text
    guess: str  # the frozen LLM's closed-book (greedy) answer
    written: str  # the frozen LLM's raw reply to the search-query prompt (``search-query-v1``)


def question_query(inputs: QueryInputs) -> str:
    """``question``: the original question."""
    return inputs.question


def keywords_query(inputs: QueryInputs) -> str:
    """``keywords``: :func:`keyword_query` of the question."""
    return keyword_query(inputs.question)


def llm_query(inputs: QueryInputs) -> str:
    """``llm-query``: the frozen LLM's own search query, cleaned (:func:`clean_search_query`)."""
    return clean_search_query(inputs.written, inputs.question)


def question_guess_query(inputs: QueryInputs) -> str:
    """``question+guess``: the question followed by the frozen LLM's closed-book guess."""
    return f"{inputs.question} {inputs.guess}".strip()


QueryWriter = Callable[[QueryInputs], str]

# Name -> writer; the key order is the action order (action 1 + i retrieves with the i-th option).
QUERY_WRITERS: Mapping[str, QueryWriter] = MappingProxyType({
    "question": question_query,
    "keywords": keywords_query,
    "llm-query": llm_query,
    "question+guess": question_guess_query,
})
QUERY_OPTIONS: tuple[str, ...] = tuple(QUERY_WRITERS)


def write_queries(inputs: QueryInputs) -> dict[str, str]:
    """Every option's query for one question: option name -> query text, in action order."""
    return {name: writer(inputs) for name, writer in QUERY_WRITERS.items()}
