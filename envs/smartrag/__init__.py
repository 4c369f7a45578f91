"""SmartRAG-v0 and SmartRAGText-v0: learn when to retrieve and what to ask (SmartRAG, arXiv 2410.18141).

One module per concern:

- :mod:`~ragenv.envs.smartrag.queries`: the query options and their rewrites (name -> writer);
  add a query rewrite there.
- :mod:`~ragenv.envs.smartrag.outcomes`: the Gym-free outcome engine and its memos (question
  states, retrievals, answers), batched through the frozen LLM.
- :mod:`~ragenv.envs.smartrag.episode`: the episode both environments share.
- :mod:`~ragenv.envs.smartrag.env`: SmartRAG-v0 (:class:`SmartRAGEnv`, Discrete actions).
- :mod:`~ragenv.envs.smartrag.text`: SmartRAGText-v0 (:class:`SmartRAGTextEnv`, string actions).

Results measured with these environments are in docs/results/smartrag.md.
"""
from __future__ import annotations

from ragenv.envs.smartrag.env import (
    ACTION_NAMES,
    ANSWER,
    INVALID_ACTION_MODES,
    INVALID_ACTION_REWARD,
    MaskedAction,
    SequenceOutcome,
    SmartRAGEnv,
)
from ragenv.envs.smartrag.episode import REWARDS, SmartRAGEpisode
from ragenv.envs.smartrag.outcomes import AnswerOutcome, OutcomeEngine, QuestionState, SequenceAnswer, guess_support
from ragenv.envs.smartrag.queries import (
    MAX_QUERY_WORDS,
    QUERY_OPTIONS,
    QUERY_WRITERS,
    QUESTION_WORDS,
    STOPWORDS,
    QueryInputs,
    clean_search_query,
    keyword_query,
    words_in_query,
)
from ragenv.envs.smartrag.text import MALFORMED_REWARD, MAX_TEXT_ACTION, SmartRAGTextEnv, parse_text_action

__all__ = [
    "ACTION_NAMES", "ANSWER", "INVALID_ACTION_MODES", "INVALID_ACTION_REWARD", "MALFORMED_REWARD", "MAX_QUERY_WORDS",
    "MAX_TEXT_ACTION", "QUERY_OPTIONS", "QUERY_WRITERS", "QUESTION_WORDS", "REWARDS", "STOPWORDS", "AnswerOutcome",
    "MaskedAction", "OutcomeEngine", "QueryInputs", "QuestionState", "SequenceAnswer", "SequenceOutcome",
    "SmartRAGEnv", "SmartRAGEpisode", "SmartRAGTextEnv", "clean_search_query", "guess_support", "keyword_query",
    "parse_text_action", "words_in_query",
]
