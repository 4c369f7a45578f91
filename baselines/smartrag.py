"""Baseline policies for SmartRAG-v0: each maps (observation, info) to a Discrete action.

- ``never-retrieve``: answer closed-book at once.
- ``always-retrieve`` / ``always-retrieve:<option>``: retrieve once with a fixed query
  option (``question``, ``keywords``, ``llm-query``, ``question+guess``), then answer.
- ``random``: uniform over the legal actions (seeded).
- ``oracle``: the best action sequence in hindsight, found per question by enumerating
  every reachable sequence (5 under quota 1) with the cached outcomes; an upper bound
  that reads the gold answers, so it is not a policy.
"""
from __future__ import annotations

import numpy as np

from ragenv.envs.smartrag.env import ANSWER, SmartRAGEnv
from ragenv.envs.smartrag.queries import QUERY_OPTIONS
from ragenv.errors import ConfigError


def _mask(env: SmartRAGEnv, info: dict | None) -> np.ndarray:
    if info is not None and "action_mask" in info:
        return np.asarray(info["action_mask"], dtype=bool)
    return env.action_masks()


def _retrievals(env: SmartRAGEnv, info: dict | None) -> int:
    return info["num_retrievals"] if info is not None and "num_retrievals" in info else env.num_retrievals


class NeverRetrieveAgent:
    name = "never-retrieve"

    def __init__(self, env: SmartRAGEnv):
        self.env = env

    def act(self, observation, info=None) -> int:
        return ANSWER


class AlwaysRetrieveAgent:
    """Retrieve once with one query option (the first retrieval), then answer."""

    def __init__(self, env: SmartRAGEnv, option: str = "question"):
        if option not in QUERY_OPTIONS:
            raise ConfigError(f"unknown query option {option!r}: use one of {', '.join(QUERY_OPTIONS)}")
        self.env = env
        self.option = option
        self.action = 1 + QUERY_OPTIONS.index(option)
        self.name = "always-retrieve" if option == "question" else f"always-retrieve:{option}"

    def act(self, observation, info=None) -> int:
        retrievals = _retrievals(self.env, info)
        if retrievals == 0 and _mask(self.env, info)[self.action]:
            return self.action
        return ANSWER


class RandomPolicyAgent:
    """Uniform over the legal actions; seeded, so a run is reproducible."""

    name = "random"

    def __init__(self, env: SmartRAGEnv, seed: int = 0):
        self.env = env
        self.rng = np.random.default_rng(seed)

    def act(self, observation, info=None) -> int:
        return int(self.rng.choice(np.flatnonzero(_mask(self.env, info))))


class OracleSequenceAgent:
    """The best reachable action sequence of the current question, by its (cached) return.

    Ties go to fewer retrievals, then to the lower query option, so the oracle never
    pays for a retrieval that does not raise the answer's score.
    """

    name = "oracle"

    def __init__(self, env: SmartRAGEnv):
        self.env = env
        self._plan: list[int] = []
        self._question: str | None = None

    def plan(self, question) -> list[int]:
        """The actions of the best sequence: every reachable answer from the outcome engine, scored by the env."""
        env = self.env

        def rank(s):  # highest return, then fewest retrievals, then the lowest query options
            return env.answer_reward(s.answer, retrievals=len(s.options)), -len(s.options), [-x for x in s.options]

        best = max(env.engine.sequence_answers(question), key=rank)
        return [1 + option for option in best.options] + [ANSWER]

    def act(self, observation, info=None) -> int:
        question = self.env.current_question
        retrievals = _retrievals(self.env, info)
        if self._question != question.id or retrievals == 0:
            self._plan, self._question = self.plan(question), question.id
            self._plan = self._plan[::-1]
        return self._plan.pop() if self._plan else ANSWER
