"""The episode both SmartRAG environments share: one question, the passages retrieved so far, the quota.

:class:`SmartRAGEpisode` holds what SmartRAG-v0 (:mod:`ragenv.envs.smartrag.env`) and
SmartRAGText-v0 (:mod:`ragenv.envs.smartrag.text`) have in common: the keyword checks and the
set-up (data, frozen-LLM scorer, first stage, outcome engine), the episode state and its
checkpoint (``get_state``/``set_state``), the SmartRAG reward, the terminal info and ``render``.
Each environment adds its own spaces, observation, info and ``step``.
"""
from __future__ import annotations

import inspect
import math
import numbers
from typing import Any

import gymnasium as gym
import numpy as np

from ragenv.data import Dataset, Passage, Question
from ragenv.envs.components import SharedEnvMixin, build_components
from ragenv.envs.smartrag.outcomes import AnswerOutcome, OutcomeEngine, merge_rows
from ragenv.envs.smartrag.queries import QUERY_OPTIONS
from ragenv.errors import ConfigError, RagenvError
from ragenv.llm import FrozenLLM, LLMConfig
from ragenv.reward_cache import RewardCache
from ragenv.spec import DEFAULT_LLM

REWARDS = ("em_f1", "accuracy")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_episode_options(*, alpha: Any, max_retrievals: Any, top_n: Any, reward: Any, features: Any, limit: Any,
                          render_mode: Any, render_modes: list[str]) -> None:
    """Refuse a bad keyword of either SmartRAG environment before any data or model is loaded."""
    if reward not in REWARDS:
        raise ConfigError(f"unknown reward {reward!r} for SmartRAG: use one of {', '.join(REWARDS)}")
    if not (_is_int(max_retrievals) and 0 <= max_retrievals <= len(QUERY_OPTIONS)):
        raise ConfigError(f"max_retrievals must be an integer from 0 to {len(QUERY_OPTIONS)}, got {max_retrievals!r}")
    if not (_is_int(top_n) and top_n >= 1):
        raise ConfigError(f"top_n must be an integer >= 1, got {top_n!r}")
    if not (isinstance(alpha, numbers.Real) and not isinstance(alpha, (bool, np.bool_)) and math.isfinite(alpha)):
        raise ConfigError(f"alpha must be a finite number, got {alpha!r}")
    if not isinstance(features, (bool, np.bool_)):
        raise ConfigError(f"features must be True or False, got {features!r}")
    if limit is not None and not (_is_int(limit) and limit >= 1):
        raise ConfigError(f"limit must be None (the whole split) or an integer >= 1, got {limit!r}")
    if render_mode is not None and render_mode not in render_modes:
        raise ConfigError(f"unknown render_mode {render_mode!r}: use 'ansi' or None")


def full_signature(init: Any, base_init: Any) -> inspect.Signature:
    """The signature of a forwarding ``__init__(self, *args, own=..., **kwargs)``: the base's parameters,
    with the subclass's own keyword-only ones added (or their defaults replacing the base's).

    ``inspect.signature``, ``help`` and tools that read an environment's keywords (``features`` to
    skip the corpus embedding, say) then see every keyword the class accepts.
    """
    own = {p.name: p for p in inspect.signature(init).parameters.values() if p.kind is p.KEYWORD_ONLY}
    merged = [p.replace(default=own.pop(p.name).default) if p.name in own else p
              for p in inspect.signature(base_init).parameters.values()]
    return inspect.signature(base_init).replace(parameters=merged + list(own.values()))


class SmartRAGEpisode(SharedEnvMixin, gym.Env):
    """The shared part of SmartRAG-v0 and SmartRAGText-v0 (see their docstrings for the arguments).

    Subclasses provide ``_setup_spaces``, ``_observation``, ``_info``, ``reset`` and ``step``.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}
    multi_step = True  # ragenv.evaluate runs it through reset/step episodes

    # the episode (reset by _clear_episode)
    _current: Question | None
    _used: tuple[int, ...]  # query options used, in order
    _rows: tuple[int, ...]  # passages in the state, in order
    _retrievals: int
    _last: dict | None

    def __init__(
        self,
        dataset: str | Dataset = "nq",
        split: str = "train",
        llm: str | LLMConfig = DEFAULT_LLM,
        alpha: float = 0.2,
        max_retrievals: int = 1,
        top_n: int = 3,
        reward: str = "em_f1",
        first_stage: str = "bm25s",
        features: bool = True,
        encoder: str = "all-MiniLM-L6-v2",
        limit: int | None = None,
        data_dir: str | None = None,
        cache: RewardCache | str | None = None,
        scorer: FrozenLLM | None = None,
        render_mode: str | None = None,
        dtype: str | None = None,
        device: str | None = None,
        corpus: str | None = None,
    ):
        check_episode_options(alpha=alpha, max_retrievals=max_retrievals, top_n=top_n, reward=reward,
                              features=features, limit=limit, render_mode=render_mode,
                              render_modes=self.metadata["render_modes"])
        parts = build_components(dataset, split, limit, data_dir, llm, cache, scorer, first_stage, features, encoder,
                                 dtype=dtype, device=device, corpus=corpus)
        self.dataset, self.corpus, self.questions = parts.dataset, parts.corpus, parts.questions
        self.scorer, self.first_stage, self.dense = parts.scorer, parts.first_stage, parts.dense
        self.split_name = split
        self._by_id = {q.id: q for q in self.questions}
        self.alpha, self.max_retrievals, self.top_n = float(alpha), int(max_retrievals), int(top_n)
        self.reward_name = reward
        self.render_mode = render_mode
        self.first_stage_name = first_stage
        self.features = bool(features)
        self.engine = OutcomeEngine(self.corpus, self.first_stage, self.scorer, top_n=self.top_n,
                                    max_retrievals=self.max_retrievals, dense=self.dense)
        self._setup_spaces()
        self._clear_episode()

    def _setup_spaces(self) -> None:
        raise NotImplementedError

    def _observation(self) -> Any:
        raise NotImplementedError

    def _info(self) -> dict:
        raise NotImplementedError

    @property
    def env_options(self) -> dict:
        """The settings that change rewards or observations (recorded with every result)."""
        return {"alpha": self.alpha, "max_retrievals": self.max_retrievals, "top_n": self.top_n,
                "reward": self.reward_name, "first_stage": self.first_stage_name, "features": self.features}

    # ------------------------------------------------------------------ episode state
    def _clear_episode(self) -> None:
        self._current = None
        self._used = ()
        self._rows = ()
        self._retrievals = 0
        self._last: dict | None = None

    def get_state(self) -> dict:
        """The episode in progress and the random generator (what a training checkpoint must keep)."""
        return {"question_id": None if self._current is None else self._current.id, "used": list(self._used),
                "rows": list(self._rows), "retrievals": self._retrievals,
                "rng": None if self._np_random is None else self._np_random.bit_generator.state}

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state` (a resumed run continues exactly where the checkpoint was taken)."""
        self._clear_episode()
        if state["question_id"] is not None:
            self._current = self.question_by_id(state["question_id"])
        self._used, self._rows, self._retrievals = tuple(state["used"]), tuple(state["rows"]), int(state["retrievals"])
        if state["rng"] is not None:
            self._np_random = np.random.Generator(getattr(np.random, state["rng"]["bit_generator"])())
            self._np_random.bit_generator.state = state["rng"]

    @property
    def current_question(self) -> Question:
        if self._current is None:
            raise RagenvError("call reset() before using the environment")
        return self._current

    @property
    def num_retrievals(self) -> int:
        return self._retrievals

    def question_by_id(self, question_id: str) -> Question:
        try:
            return self._by_id[question_id]
        except KeyError:
            raise ConfigError(f"question id {question_id!r} is not in split {self.split_name!r}") from None

    def passage(self, row: int) -> Passage:
        return self.corpus[int(row)]

    def _start(self, seed: int | None, options: dict | None) -> Question:
        """Seed, draw (or pick, ``options["question_id"]``) the question, and start its episode."""
        super().reset(seed=seed)
        options = options or {}
        if "question_id" in options:
            question = self.question_by_id(str(options["question_id"]))
        else:
            question = self.questions[int(self.np_random.integers(len(self.questions)))]
        self._clear_episode()
        self._current = question
        return question

    def _retrieve(self, rows: tuple[int, ...], option: int | None = None) -> None:
        """Append a retrieval's passages to the state (``option``: the query option it used, if any)."""
        self._rows = merge_rows(self._rows, rows)
        self._retrievals += 1
        if option is not None:
            self._used = (*self._used, option)

    # ------------------------------------------------------------------ reward and the terminal step
    def answer_reward(self, outcome: AnswerOutcome | None = None, *, em: float = 0.0, f1: float = 0.0,
                      accuracy: float = 0.0, retrievals: int = 0) -> float:
        """The SmartRAG reward of a final answer after ``retrievals`` retrievals."""
        if outcome is not None:
            em, f1, accuracy = outcome.em, outcome.f1, outcome.accuracy
        base = em + f1 if self.reward_name == "em_f1" else accuracy
        return float(base) - self.alpha * retrievals

    def _finish(self, answer: AnswerOutcome, extra: dict, reward: float | None = None) -> tuple[float, dict]:
        """Reward and terminal info for a final answer (``reward`` overrides the SmartRAG reward)."""
        question = self.current_question
        if reward is None:
            reward = self.answer_reward(answer, retrievals=self._retrievals)
        info = {**self._info(), "answer": answer.text, "em": answer.em, "f1": answer.f1, "accuracy": answer.accuracy,
                "cache_hit": answer.cached, **extra}
        info["episode_record"] = {
            "question_id": question.id, "question": question.question, "answers": list(question.answers),
            "gold_passage_ids": list(question.gold_passage_ids), "passage_ids": info["passage_ids"],
            "num_retrievals": self._retrievals, "generated_answer": answer.text, "em": answer.em, "f1": answer.f1,
            "accuracy": answer.accuracy, "reward": reward, "cache_hit": info["cache_hit"],
            **{k: v for k, v in extra.items() if k != "cache_hit"},
        }
        self._last = {"question": question, "rows": self._rows, "answer": answer.text, "reward": reward}
        return reward, info

    def _end(self, answer: AnswerOutcome, extra: dict, reward: float | None = None):
        """The ``step`` return value of the episode's last step (the episode is then over)."""
        reward, info = self._finish(answer, extra, reward)
        observation = self._observation()
        self._current = None
        return observation, reward, True, False, info

    def render(self):
        if self.render_mode != "ansi":
            return None
        if self._last is None and self._current is None:
            return "(no episode yet)"
        if self._current is not None:
            question, rows, tail = self._current, self._rows, f"retrievals {self._retrievals}/{self.max_retrievals}"
        else:
            question, rows = self._last["question"], self._last["rows"]
            tail = f"answer {self._last['answer']!r}  reward {self._last['reward']:+.3f}"
        lines = [f"Q: {question.question}", f"gold: {' | '.join(question.answers)}"]
        lines += [f"  [{r}] {self.corpus[r].title}" for r in rows]
        lines.append(tail)
        return "\n".join(lines)
