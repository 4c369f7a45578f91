"""SmartRAG-v0: learn when to retrieve and what to ask (SmartRAG, arXiv 2410.18141), with Discrete actions."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from gymnasium import spaces

from ragenv.data import Question
from ragenv.envs.smartrag.episode import SmartRAGEpisode, full_signature
from ragenv.envs.smartrag.outcomes import AnswerOutcome, QuestionState, State
from ragenv.envs.smartrag.queries import QUERY_OPTIONS, words_in_query
from ragenv.errors import ConfigError, InvalidActionError, RagenvError

ANSWER = 0  # action 0 answers; action 1 + i retrieves with QUERY_OPTIONS[i]
ACTION_NAMES = ("answer",) + tuple(f"retrieve:{o}" for o in QUERY_OPTIONS)
INVALID_ACTION_MODES = ("raise", "penalize")
INVALID_ACTION_REWARD = -1.0  # invalid_action="penalize": the reward of a masked action (the state is unchanged)


@dataclass(frozen=True)
class MaskedAction:
    """A masked action that ``plan_step`` let through under ``invalid_action="penalize"``; ``finish_step``
    answers it with :data:`INVALID_ACTION_REWARD` and changes nothing."""

    action: int
    reason: str


Plan = int | MaskedAction  # what plan_step returns and finish_step takes


class SequenceOutcome(NamedTuple):
    """A reachable sequence of query options (then ANSWER), its return and the final answer."""

    options: tuple[int, ...]  # query option indices, in retrieval order
    episode_return: float  # the SmartRAG reward of the episode
    answer: AnswerOutcome


class SmartRAGEnv(SmartRAGEpisode):
    """
    ## Description
    A RAG system as a short episode (SmartRAG, arXiv 2410.18141): for one question the
    agent decides whether to retrieve, with which query, and when to let the frozen LLM
    answer. Each retrieval costs ``alpha``; the answer earns its correctness. The
    agent never sees gold answers; the frozen LLM (through :class:`ragenv.llm.FrozenLLM`,
    every result memoised in the reward cache) writes one of the queries, guesses
    closed-book, and answers from the passages gathered so far.

    The state is the question, the passages retrieved so far (in retrieval order,
    de-duplicated) and the number of retrievals. Each retrieval appends the top-``n``
    first-stage passages of its query (only those not already in the state).

    ## Action Space
    ``Discrete(5)``, one RETRIEVE per query option of
    :data:`ragenv.envs.smartrag.queries.QUERY_WRITERS`, in its order:

    | action | meaning |
    |---|---|
    | 0 | ANSWER: the frozen LLM answers from the current state; the episode ends |
    | 1 | RETRIEVE with the original question |
    | 2 | RETRIEVE with the keyword rewrite (question words and stopwords removed, :func:`keyword_query`) |
    | 3 | RETRIEVE with a search query written by the frozen LLM (closed-book, prompt ``search-query-v1``) |
    | 4 | RETRIEVE with the question followed by the frozen LLM's closed-book guess |

    RETRIEVE is legal while fewer than ``max_retrievals`` retrievals were made and that
    query option has not been used in this episode (it would return the same passages);
    ANSWER is always legal. ``action_masks()`` returns the legal actions (for
    sb3-contrib's ``MaskablePPO``; also ``info["action_mask"]``).

    A masked action (legal in the space, illegal now), by default
    (``invalid_action="raise"``), raises :class:`ragenv.errors.InvalidActionError` and
    changes nothing: the episode stays open. With ``invalid_action="penalize"``, for a
    learner without masks (SB3's ``PPO``, ``check_env``, a user's own loop), it is a step
    instead: reward :data:`INVALID_ACTION_REWARD` (-1.0), the state unchanged (same
    observation, episode still open, nothing counted against the quota), and
    ``info["invalid_action"]`` is True (``info["invalid_action_reason"]`` says why); the
    key is absent on other steps. An action outside the space (an index outside ``0..4``,
    a non-integer) raises :class:`ragenv.errors.InvalidActionError` in both modes.

    ## Observation Space
    A ``Dict`` of ``Box`` es (stable-baselines3's ``MultiInputPolicy`` reads it):

    | key | shape | meaning |
    |---|---|---|
    | ``question_embedding`` | ``(d,)`` in [-1, 1] | frozen-encoder embedding of the question |
    | ``context_embedding`` | ``(d,)`` in [-1, 1] | mean embedding of the retrieved passages (zeros before any) |
    | ``retrievals`` | ``(1,)`` in [0, max(N, 1)] | retrievals made so far |
    | ``query_used`` | ``(4,)`` in {0, 1} | query options already used |
    | ``query_scores`` | ``(4,)`` | first-stage score of each query option's top-1 passage |
    | ``query_scores_per_word`` | ``(4,)`` | that score divided by the query's distinct words (see below) |
    | ``closed_book_support`` | ``(4,)`` in {0, 1} | 1 where the closed-book guess occurs in that option's passages |
    | ``closed_book_confidence`` | ``(2,)`` in [0, 1] | the frozen LLM's probability of its closed-book answer |

    ``query_scores_per_word`` divides by :func:`words_in_query` (distinct words): BM25 sums over
    query terms, so this puts short and long queries on one scale. ``closed_book_support`` is
    :func:`guess_support` over that option's top-n passages: the corpus backs the LLM's guess.
    ``closed_book_confidence`` is the probability of the frozen LLM's own closed-book greedy
    answer, per token (exp of the mean log-prob) and for the whole answer (exp of the sum).
    With ``features=False`` the two embeddings are left out (no encoder is loaded).
    The texts are in ``info``: ``question``, ``passages`` (``title\\ntext``, in order),
    ``passage_ids``, ``queries`` (the text of each query option), ``closed_book_answer``,
    ``num_retrievals``, ``action_mask``.

    ## Rewards
    0 for a retrieval step. The ANSWER step earns ``EM + F1`` of the frozen LLM's answer
    (0 to 2, SQuAD normalisation, best gold alias; ``reward="accuracy"``: 1 if a gold
    alias occurs in the answer) minus ``alpha`` times the number of retrievals, so the
    return of an episode is the SmartRAG reward. With ``invalid_action="penalize"``, a
    masked action earns :data:`INVALID_ACTION_REWARD` (-1.0) on top.

    ## Starting State
    ``reset(seed=...)`` draws a question uniformly from the split;
    ``reset(options={"question_id": ...})`` picks one.

    ## Episode End
    Terminates on ANSWER, which is reached within ``max_retrievals + 1`` steps (after
    the quota only ANSWER is legal; under ``invalid_action="penalize"`` each penalised
    step comes on top: bound such a learner with ``max_episode_steps`` if it needs one).
    Never truncated. The terminal ``info`` adds ``answer``, ``em``, ``f1``, ``accuracy``,
    ``actions``, ``search_queries`` (the query texts used), ``cache_hit`` and
    ``episode_record`` (the episode's JSON-ready summary that ``ragenv evaluate`` writes
    per question). Replaying ``search_queries`` and the answer as ``[Search]``/``[Answer]``
    strings in SmartRAGText-v0 gives the same reward.

    ## Arguments
    ``dataset`` (``nq``, ``hotpotqa``, ``squad`` or a folder), ``split``, ``llm`` (name or
    :class:`LLMConfig`), ``alpha`` (0.2, a finite number), ``max_retrievals`` (quota N, an
    integer from 0 to 4, 1), ``top_n`` (passages per retrieval, an integer >= 1, 3),
    ``reward`` (``em_f1`` or ``accuracy``), ``first_stage`` (``bm25s``, ``pyserini`` or
    ``dense``), ``features`` (True), ``encoder``, ``limit`` (None or an integer >= 1),
    ``data_dir``, ``cache`` (a :class:`RewardCache` or path), ``scorer`` (a shared
    :class:`FrozenLLM`), ``render_mode`` (``ansi``), ``dtype`` (``float32``, canonical, or
    the opt-in ``bfloat16``/``float16``), ``device`` (``auto``, ``cpu``, ``cuda``) and
    ``invalid_action`` (``raise``, the default, or ``penalize``). Every keyword is checked
    when the environment is made, before any data or model is loaded: a bad value (a NaN
    ``alpha``, a negative ``max_retrievals``, an unknown ``invalid_action``) raises
    :class:`ragenv.errors.ConfigError` naming it.

    ``precompute()`` (``ragenv precompute``) fills the reward cache with every LLM
    result the episodes can reach, batched; after it, steps make no LLM call. The
    outcomes themselves come from :class:`ragenv.envs.smartrag.outcomes.OutcomeEngine`
    (``env.engine``). Results measured with this environment: docs/results/smartrag.md.

    ## Version History
    * v0 (ragenv 0.1): first version, with the observation keys ``question_embedding``,
      ``context_embedding``, ``retrievals``, ``query_used``, ``query_scores`` and
      ``closed_book_confidence``.
    * v0, still in ragenv 0.1 and after the first results were published: the observation gained
      ``query_scores_per_word`` and ``closed_book_support``, without a version bump, because the
      change is compatible: actions, transitions, rewards, infos and the reward cache's entries are
      unchanged, the six earlier keys keep their values, and the new keys are computed from
      results the environment already had (the first-stage scores and passages, the closed-book
      guess). So every published figure (returns of action sequences; the PPO agent reads a fixed
      list of keys, ``PPOConfig.observation_keys``, which does not include the new ones)
      reproduces. Only a policy whose network takes the whole ``Dict`` sees a new space: select
      the keys it was trained on (``gymnasium.wrappers.FilterObservation``).
    * v0, ragenv 0.2: the frozen LLM's numerics are canonical float32 on every machine
      (docs/results/numerics.md); ``invalid_action="penalize"`` is a new opt-in and the
      default (``raise``) is unchanged; every keyword is checked at make time (besides the
      earlier checks, a boolean quota or ``top_n``, a negative ``limit`` and a non-boolean
      ``features`` are now refused). The environment is now the package
      ``ragenv.envs.smartrag``; rewards, observations, prompts and cache keys are unchanged.
    * v0, ragenv 0.3: ``context_embedding`` embeds a passage when it is first retrieved
      (:class:`~ragenv.index.dense.LiveEmbeddings`) instead of embedding the whole corpus at make
      time; the same vectors to 1e-6 per component.
    """

    def __init__(self, *args: Any, invalid_action: str = "raise", **kwargs: Any):
        if invalid_action not in INVALID_ACTION_MODES:
            raise ConfigError(f"unknown invalid_action {invalid_action!r} for SmartRAG-v0: use "
                              f"{' or '.join(repr(m) for m in INVALID_ACTION_MODES)}")
        self.invalid_action = invalid_action
        self._observations: dict[tuple[str, tuple[int, ...]], dict] = {}  # memo of the observation per state
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ spaces and options
    def _setup_spaces(self) -> None:
        self.action_space = spaces.Discrete(1 + len(QUERY_OPTIONS))
        m = len(QUERY_OPTIONS)
        obs: dict[str, spaces.Space] = {}
        if self.features:
            dim = self.dense.encoder.dim
            obs["question_embedding"] = spaces.Box(-1.0, 1.0, (dim,), np.float32)
            obs["context_embedding"] = spaces.Box(-1.0, 1.0, (dim,), np.float32)
        obs["retrievals"] = spaces.Box(0.0, float(max(1, self.max_retrievals)), (1,), np.float32)
        obs["query_used"] = spaces.Box(0.0, 1.0, (m,), np.float32)
        obs["query_scores"] = spaces.Box(-np.inf, np.inf, (m,), np.float32)
        obs["query_scores_per_word"] = spaces.Box(-np.inf, np.inf, (m,), np.float32)
        obs["closed_book_support"] = spaces.Box(0.0, 1.0, (m,), np.float32)
        obs["closed_book_confidence"] = spaces.Box(0.0, 1.0, (2,), np.float32)
        self.observation_space = spaces.Dict(obs)

    # ------------------------------------------------------------------ outcomes (the engine's, batched and memoised)
    def resolve(self, questions: Sequence[Question], pairs: Sequence[State]) -> None:
        """Memoise the question states of ``questions`` and the answers at the ``pairs`` states
        (:meth:`OutcomeEngine.resolve`: two batched frozen-LLM calls at most)."""
        self.engine.resolve(questions, pairs)

    def question_state(self, question: Question) -> QuestionState:
        return self.engine.question_state(question)

    def answers(self, pairs: Sequence[State]) -> list[AnswerOutcome]:
        """The frozen LLM's answer from each (question, passage rows) state, with one batched LLM call."""
        return self.engine.answers(pairs)

    def rows_after(self, question: Question, options: Sequence[int]) -> tuple[int, ...]:
        """The passages of the state reached by retrieving with ``options`` (query option indices) in order."""
        return self.engine.rows_after(question, options)

    def reachable_sequences(self) -> list[tuple[int, ...]]:
        """Every legal sequence of query options (distinct, at most ``max_retrievals``), shortest first."""
        return self.engine.reachable_sequences()

    def sequence_outcomes(self, question: Question) -> list[SequenceOutcome]:
        """Every reachable action sequence (query options, then ANSWER) with its return and answer."""
        return [SequenceOutcome(s.options, self.answer_reward(s.answer, retrievals=len(s.options)), s.answer)
                for s in self.engine.sequence_answers(question)]

    def precompute(self, questions: Sequence[Question] | None = None, *, batch_size: int = 16,
                   progress: bool = True, on_batch: Callable[[list[Question]], None] | None = None) -> dict:
        """Fill the reward cache (and this process's memos) with every LLM result episodes can reach.

        Per question: the closed-book guess and its confidence, the LLM-written query, every
        option's retrieval, and the answer at every reachable state (``reachable_sequences``;
        5 states under quota 1). Batched ``batch_size`` questions at a time; each batch is
        written to the cache as it finishes, so an interrupted run keeps its work; ``on_batch``
        is then called with the batch's questions (run journals note progress there).
        """
        states = len(self.reachable_sequences())
        report = self._precompute_batches(questions, batch_size, progress, on_batch,
                                          f"SmartRAG precompute ({states} states per question)", self.engine.fill)
        return {**report, "states_per_question": states}

    # ------------------------------------------------------------------ observation
    def action_masks(self) -> np.ndarray:
        """Legal actions now (True = legal): ANSWER always; unused query options while under the quota."""
        mask = np.zeros(1 + len(QUERY_OPTIONS), dtype=bool)
        mask[ANSWER] = True
        if self._retrievals < self.max_retrievals:
            mask[1:] = True
            for option in self._used:
                mask[1 + option] = False
        return mask

    def _observation(self) -> dict:
        question = self.current_question
        key = (question.id, self._used)
        obs = self._observations.get(key)
        if obs is None:
            state = self.question_state(question)
            used = np.zeros(len(QUERY_OPTIONS), dtype=np.float32)
            used[list(self._used)] = 1.0
            obs = {}
            if self.features:
                obs["question_embedding"] = self.engine.question_embedding(question)
                context = np.zeros(self.dense.encoder.dim, dtype=np.float32)
                if self._rows:
                    context = np.clip(self.dense.passage_embeddings(np.array(self._rows)).mean(axis=0), -1.0, 1.0)
                obs["context_embedding"] = context.astype(np.float32)
            obs["retrievals"] = np.array([self._retrievals], dtype=np.float32)
            obs["query_used"] = used
            obs["query_scores"] = np.array(state.top_scores, dtype=np.float32)
            per_word = [score / words_in_query(query) for score, query in zip(state.top_scores, state.queries.values())]
            obs["query_scores_per_word"] = np.array(per_word, dtype=np.float32)
            obs["closed_book_support"] = np.array(state.support, dtype=np.float32)
            obs["closed_book_confidence"] = np.clip(np.array(state.confidence, dtype=np.float32), 0.0, 1.0)
            self._observations[key] = obs
        return {k: v.copy() for k, v in obs.items()}  # fresh arrays: callers may keep or change them

    def _info(self) -> dict:
        question = self.current_question
        state = self.question_state(question)
        return {
            "question_id": question.id,
            "question": question.question,
            "passages": [self.corpus[r].contents for r in self._rows],
            "passage_ids": [self.corpus[r].id for r in self._rows],
            "queries": dict(state.queries),
            "closed_book_answer": state.guess,
            "num_retrievals": self._retrievals,
            "action_mask": self.action_masks(),
        }

    # ------------------------------------------------------------------ actions
    def _action_index(self, action: Any) -> int:
        """The action as an int in the action space, or InvalidActionError (no state is touched)."""
        try:
            arr = np.asarray(action)
        except (ValueError, TypeError):  # ragged nested lists and other shapes numpy cannot hold
            arr = np.asarray(None)
        if arr.shape not in ((), (1,)) or not (np.issubdtype(arr.dtype, np.integer) or
                                              (np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr))
                                               and np.all(arr == np.round(arr)))):
            raise InvalidActionError(f"action must be one integer in 0..{self.action_space.n - 1}, got {action!r}")
        value = int(arr.reshape(-1)[0])
        if not 0 <= value < self.action_space.n:
            raise InvalidActionError(
                f"unknown action {value}: use 0 (answer) or 1..{len(QUERY_OPTIONS)} to retrieve with "
                + ", ".join(f"{i + 1}={o}" for i, o in enumerate(QUERY_OPTIONS))
            )
        return value

    def _masked_reason(self, value: int) -> str | None:
        """Why the in-space action ``value`` is masked now (None: it is legal)."""
        if self.action_masks()[value]:
            return None
        why = ("the retrieval quota is used up" if self._retrievals >= self.max_retrievals
               else f"query option {QUERY_OPTIONS[value - 1]!r} was already used in this episode")
        legal = [ACTION_NAMES[i] for i in np.flatnonzero(self.action_masks())]
        return (f"illegal action {value} ({ACTION_NAMES[value]}): {why}; legal now: {', '.join(legal)} "
                "(see action_masks())")

    def validate_action(self, action: Any) -> int:
        """The action as an int, or InvalidActionError, masked actions included (no state is touched)."""
        value = self._action_index(action)
        reason = self._masked_reason(value)
        if reason is not None:
            raise InvalidActionError(reason)
        return value

    # ------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self.plan_reset(seed=seed, options=options)
        return self.finish_reset()

    # The two halves of ``reset``: a vector environment memoises the question states of all the
    # questions ``plan_reset`` drew with one ``resolve`` before ``finish_reset`` reads them.
    def plan_reset(self, *, seed: int | None = None, options: dict | None = None) -> Question:
        """Start an episode: seed, draw (or pick) the question; the question (no LLM call yet)."""
        return self._start(seed, options)

    def finish_reset(self):
        """The ``reset`` return value of the episode ``plan_reset`` started."""
        return self._observation(), self._info()

    def step(self, action):
        return self.finish_step(self.plan_step(action))

    # The two halves of ``step``, so that a vector environment (ragenv.envs.vector) can batch the
    # frozen-LLM work of many sub-environments (``pending_llm_work``) into one ``resolve`` between them.
    def plan_step(self, action) -> Plan:
        """Check the episode and the action (changes nothing): the action as an int, or, for a masked
        action under ``invalid_action="penalize"``, the :class:`MaskedAction` that ``finish_step`` penalises."""
        if self._current is None:
            raise RagenvError("call reset() before step(): the episode has ended or not started")
        value = self._action_index(action)
        reason = self._masked_reason(value)
        if reason is None:
            return value
        if self.invalid_action == "raise":
            raise InvalidActionError(reason)
        return MaskedAction(value, reason)

    def pending_llm_work(self, value: Plan) -> list[State]:
        """The answer states that ``finish_step(value)`` will ask the frozen LLM about."""
        return [(self._current, self._rows)] if value == ANSWER and not isinstance(value, MaskedAction) else []

    def finish_step(self, value: Plan):
        """Carry out a checked action (from ``plan_step``); the ``step`` return value."""
        if isinstance(value, MaskedAction):
            info = {**self._info(), "invalid_action": True, "invalid_action_reason": value.reason}
            return self._observation(), INVALID_ACTION_REWARD, False, False, info
        if value != ANSWER:
            option = value - 1
            self._retrieve(self.question_state(self.current_question).rows[option], option)
            return self._observation(), 0.0, False, False, self._info()
        state = self.question_state(self._current)
        answer = self.answers([(self._current, self._rows)])[0]
        actions = [f"retrieve:{QUERY_OPTIONS[o]}" for o in self._used] + ["answer"]
        extra = {"actions": actions, "search_queries": [state.queries[QUERY_OPTIONS[o]] for o in self._used],
                 "cache_hit": bool(answer.cached and state.cached)}
        return self._end(answer, extra)


SmartRAGEnv.__init__.__signature__ = full_signature(SmartRAGEnv.__init__, SmartRAGEpisode.__init__)  # type: ignore[attr-defined]
