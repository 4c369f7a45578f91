"""RAGRetrieval-v0: choose the passages a frozen LLM reads; be rewarded by its answer probability."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ragenv.data import Dataset, Passage, Question
from ragenv.envs.components import SharedEnvMixin, build_components, check_choice, check_flag, check_int, check_number
from ragenv.errors import ConfigError, InvalidActionError, RagenvError
from ragenv.llm import FrozenLLM, LLMConfig, PromptRequest
from ragenv.metrics import answer_in_output, exact_match, f1_score, hit_at_k
from ragenv.reward_cache import RewardCache
from ragenv.spec import DEFAULT_LLM

REWARDS = ("logprob", "logprob_gain", "em", "f1", "accuracy")
EMPTY = -1  # an action slot that selects no passage


@dataclass(frozen=True)
class StepOutcome:
    """Everything the frozen LLM said about one (question, passages) choice."""

    reward: float
    info: dict


class RAGRetrievalEnv(SharedEnvMixin, gym.Env):
    """
    ## Description
    A retrieval-augmented generation system as a one-step decision problem (R3, arXiv
    2510.24652). Each episode draws one question from a QA dataset. The agent, a
    retriever, picks up to ``k`` passages from the whole corpus; a frozen LLM then reads
    the question with those passages and the environment rewards the agent by how
    likely the LLM finds the gold answer, minus a cost per passage used.

    ## Action Space
    ``MultiDiscrete([N + 1] * k, start=[-1] * k)``: ``k`` corpus row numbers (``N`` =
    corpus size). ``-1`` leaves a slot empty, so ``[-1] * k`` is closed-book. The
    passages are shown to the LLM in the given order. Rows outside ``[-1, N-1]``, a
    wrong shape, non-integers and a passage chosen twice raise
    :class:`ragenv.errors.InvalidActionError` and change nothing. Continuous-action
    policies can wrap the environment in :class:`ragenv.envs.wrappers.CandidateScoreAction`
    and act with ``Box(-1, 1, (m,), float32)`` scores over the first-stage candidates
    instead: the top-``k`` scored candidates become the passage action (only the order
    counts, so finite scores outside ``[-1, 1]`` act too).

    ## Observation Space
    A ``Dict``:

    | key | space | meaning |
    |---|---|---|
    | ``question`` | ``Text`` | the question |
    | ``candidate_ids`` | ``Box(-1, N-1, (m,), int64)`` | first-stage top-``m`` rows (-1 pads) |
    | ``candidate_scores`` | ``Box(-inf, inf, (m,), float32)`` | their first-stage scores |
    | ``question_embedding`` | ``Box(-1, 1, (d,), float32)`` | frozen-encoder query embedding |
    | ``candidate_embeddings`` | ``Box(-1, 1, (m, d), float32)`` | frozen-encoder passage embeddings |

    Passage texts are reachable through ``env.unwrapped.passage(row)`` and, for the
    candidates, ``info["candidate_texts"]`` after ``reset``.

    ## Rewards
    ``reward=`` one of ``logprob`` (mean token log-prob of the gold answer, best alias),
    ``logprob_gain`` (default: that minus the closed-book log-prob), ``em``, ``f1``,
    ``accuracy`` (a gold alias occurs in the greedy answer); minus
    ``cost_per_passage`` times the number of passages used.

    ## Starting State
    ``reset(seed=...)`` draws a question uniformly from the split;
    ``reset(options={"question_id": ...})`` picks one.

    ## Episode End
    The episode terminates after the single step. It is never truncated.

    ## Info
    ``step`` returns ``question_id``, ``passage_ids``, ``answer_logprob`` (mean),
    ``answer_logprob_sum``, ``closed_book_logprob``, ``logprob_gain``, ``hit@k``
    (any gold passage chosen; NaN without gold passages), ``num_passages``,
    ``prompt_tokens``, ``cache_hit``; with ``generate_answers=True`` also
    ``generated_answer``, ``em``, ``f1`` and ``accuracy``.

    ## Arguments
    ``dataset`` (``nq``, ``hotpotqa``, ``squad`` or a folder), ``split`` (``train``,
    ``dev``, ``test``, ``all``), ``llm`` (name or :class:`LLMConfig`), ``k`` (3),
    ``num_candidates`` (m, 20), ``first_stage`` (``bm25s``, ``pyserini`` or ``dense``),
    ``reward``, ``cost_per_passage`` (0.02), ``generate_answers`` (False; forced on for
    the em/f1/accuracy rewards), ``features`` (True: encoder embeddings in the
    observation, each passage embedded when first shown, :class:`~ragenv.index.dense.LiveEmbeddings`,
    or read from the dense index when ``first_stage="dense"``), ``diagnostics`` (False), ``encoder``,
    ``limit`` (first N questions of the split),
    ``data_dir``, ``cache`` (a :class:`RewardCache` or path), ``scorer`` (a shared
    :class:`FrozenLLM`), ``dtype`` (the LLM's precision: ``float32``, the canonical setting
    this version is defined in, or the opt-in ``bfloat16``/``float16``, whose results are
    recorded as non-canonical) and ``device`` (``auto``, ``cpu``, ``cuda``). ``k``,
    ``num_candidates`` and ``limit`` are integers >= 1, ``cost_per_passage`` a finite number
    >= 0; every keyword is checked when the environment is made, before any data or model is
    read (:class:`ragenv.errors.ConfigError`, naming the keyword and the value).

    ## Vectorisation
    ``gym.make_vec`` builds :class:`ragenv.envs.vector.RAGRetrievalVectorEnv` by default
    (``vectorization_mode="vector_entry_point"``: one frozen-LLM batch per vector step).
    Gymnasium's ``"sync"`` and ``"async"`` modes work too and give the same rewards; a forked
    ``async`` worker runs torch on one thread (forking after torch's thread pool has run would
    otherwise hang it), and ``vector_kwargs={"context": "spawn"}`` is another way out.

    ## Version History
    * v0, ragenv 0.3: the encoder features of a passage are computed when it is first shown
      (:class:`~ragenv.index.dense.LiveEmbeddings`) instead of by embedding the whole corpus at
      make time (16,436 passages: minutes on a CPU); the vectors are the same to 1e-6 per
      component (float32 rounding of another batch), so observations are unchanged to that tolerance.
    * v0, after ragenv 0.2.0: no change to rewards, observations or the action space.
      :class:`~ragenv.envs.wrappers.CandidateScoreAction` (now in ``ragenv.envs.wrappers``;
      the old import still works) has the action space ``Box(-1, 1)`` of its vector twin
      instead of ``Box(-inf, inf)``, so Stable-Baselines3 accepts it; it still acts on any
      finite scores. Keywords are checked at make time: a NaN, infinite or negative
      ``cost_per_passage``, a non-integer or non-positive ``k``/``num_candidates``/``limit``,
      an unknown ``first_stage`` or a non-bool flag is refused instead of giving NaN rewards
      or failing later. ``async`` vectorisation after the LLM ran in the same process no
      longer hangs.
    * v0, ragenv 0.2.0: the frozen LLM runs in float32 on every machine (the canonical
      setting; ``dtype``/``device`` keywords for opt-in settings, recorded as non-canonical).
    * v0, ragenv 0.1.0: initial version.
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        dataset: str | Dataset = "nq",
        split: str = "train",
        llm: str | LLMConfig = DEFAULT_LLM,
        k: int = 3,
        num_candidates: int = 20,
        first_stage: str = "bm25s",
        reward: str = "logprob_gain",
        cost_per_passage: float = 0.02,
        generate_answers: bool = False,
        features: bool = True,
        encoder: str = "all-MiniLM-L6-v2",
        limit: int | None = None,
        data_dir: str | None = None,
        cache: RewardCache | str | None = None,
        scorer: FrozenLLM | None = None,
        diagnostics: bool = False,
        render_mode: str | None = None,
        dtype: str | None = None,
        device: str | None = None,
        corpus: str | None = None,
    ):
        # Every keyword is checked before any data or model is read (build_components checks the shared ones).
        check_choice("reward", reward, REWARDS)
        k, num_candidates = check_int("k", k), check_int("num_candidates", num_candidates)
        cost_per_passage = check_number("cost_per_passage", cost_per_passage, minimum=0.0)
        generate_answers = check_flag("generate_answers", generate_answers)
        diagnostics = check_flag("diagnostics", diagnostics)
        check_choice("render_mode", render_mode, [None, *self.metadata["render_modes"]])
        parts = build_components(dataset, split, limit, data_dir, llm, cache, scorer, first_stage, features, encoder,
                                 dtype=dtype, device=device, corpus=corpus)
        self.dataset, self.corpus, self.questions = parts.dataset, parts.corpus, parts.questions
        self.scorer, self.first_stage, self.dense = parts.scorer, parts.first_stage, parts.dense
        self.split_name = split
        self._by_id = {q.id: q for q in self.questions}
        self.k, self.num_candidates = k, num_candidates
        self.reward_name, self.cost_per_passage = reward, float(cost_per_passage)
        self.generate_answers = generate_answers or reward in ("em", "f1", "accuracy")
        self.render_mode = render_mode
        self.diagnostics = diagnostics
        self.first_stage_name = first_stage
        self.features = features
        dim = self.dense.encoder.dim if self.dense is not None else 0

        n = len(self.corpus)
        self.action_space = spaces.MultiDiscrete(np.full(k, n + 1), start=np.full(k, EMPTY), dtype=np.int64)
        charset = sorted({ch for q in self.questions for ch in q.question} | set(" "))
        obs = {
            "question": spaces.Text(max_length=max(len(q.question) for q in self.questions), min_length=1,
                                    charset="".join(charset)),
            "candidate_ids": spaces.Box(EMPTY, n - 1, (num_candidates,), np.int64),
            "candidate_scores": spaces.Box(-np.inf, np.inf, (num_candidates,), np.float32),
        }
        if features:
            obs["question_embedding"] = spaces.Box(-1.0, 1.0, (dim,), np.float32)
            obs["candidate_embeddings"] = spaces.Box(-1.0, 1.0, (num_candidates, dim), np.float32)
        self.observation_space = spaces.Dict(obs)
        self._clear_episode()
        self._first_stage_memo: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._query_embedding_memo: dict[str, np.ndarray] = {}
        # Per-question observation and candidate texts: a warm reset builds nothing (callers get copies).
        self._observation_memo: dict[str, tuple[dict, list[str]]] = {}

    # ------------------------------------------------------------------ helpers
    def _clear_episode(self) -> None:
        self._current: Question | None = None
        self._observation: dict | None = None
        self._last: tuple | None = None  # (question, rows, outcome) of the last step, for render()

    @property
    def env_options(self) -> dict:
        """The settings that change rewards or observations (recorded with every result)."""
        return {"k": self.k, "reward": self.reward_name, "cost_per_passage": self.cost_per_passage,
                "first_stage": self.first_stage_name, "num_candidates": self.num_candidates}

    @property
    def current_question(self) -> Question:
        if self._current is None:
            raise RagenvError("call reset() before using the environment")
        return self._current

    def passage(self, row: int) -> Passage:
        return self.corpus[int(row)]

    def question_by_id(self, question_id: str) -> Question:
        try:
            return self._by_id[question_id]
        except KeyError:
            raise ConfigError(f"question id {question_id!r} is not in split {self.split_name!r}") from None

    def candidates(self, question: Question) -> tuple[np.ndarray, np.ndarray]:
        """First-stage top-m rows and scores (memoised per question)."""
        memo = self._first_stage_memo.get(question.id)
        if memo is None:
            rows, scores = self.first_stage.search([question.question], self.num_candidates)
            memo = (rows[0], scores[0].astype(np.float32))
            self._first_stage_memo[question.id] = memo
        return memo

    def _question_embedding(self, question: Question) -> np.ndarray:
        vec = self._query_embedding_memo.get(question.id)
        if vec is None:
            vec = np.clip(self.dense.query_encoder.encode([question.question])[0], -1.0, 1.0)
            self._query_embedding_memo[question.id] = vec
        return vec

    def _observation_and_texts(self, question: Question) -> tuple[dict, list[str]]:
        """The question's observation and candidate texts, built once per question (never hand out: copy)."""
        memo = self._observation_memo.get(question.id)
        if memo is None:
            rows, scores = self.candidates(question)
            obs = {"question": question.question, "candidate_ids": rows.copy(), "candidate_scores": scores.copy()}
            if self.features:
                obs["question_embedding"] = self._question_embedding(question).copy()
                obs["candidate_embeddings"] = np.clip(self.dense.passage_embeddings(rows), -1.0, 1.0)
            memo = (obs, [self.corpus[r].contents if r >= 0 else "" for r in rows])
            self._observation_memo[question.id] = memo
        return memo

    def observation_for(self, question: Question) -> dict:
        """The observation of a question (fresh arrays: callers may keep or change them)."""
        obs = self._observation_and_texts(question)[0]
        return {key: value.copy() if isinstance(value, np.ndarray) else value for key, value in obs.items()}

    def validate_action(self, action: Any) -> list[int]:
        """The chosen corpus rows, in order, or InvalidActionError (no state is touched)."""
        try:
            arr = np.asarray(action)
        except (ValueError, TypeError):  # ragged nested lists and other shapes numpy cannot hold
            raise InvalidActionError(f"action must be {self.k} integer passage rows, got {type(action).__name__} "
                                     "of uneven nesting") from None
        if arr.shape != (self.k,):
            raise InvalidActionError(f"action must have shape ({self.k},), got {arr.shape}")
        n = len(self.corpus)
        if not np.issubdtype(arr.dtype, np.integer):
            whole = np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))
            if not whole:
                raise InvalidActionError(f"action must hold integer passage rows, got dtype {arr.dtype}")
            if np.any((arr < EMPTY) | (arr >= n)):  # checked before the cast, which would wrap huge values
                raise InvalidActionError(f"passage rows {[float(x) for x in arr if x < EMPTY or x >= n]} are out of "
                                         f"range: use 0..{n - 1}, or -1 for an empty slot")
            arr = arr.astype(np.int64)
        bad = [int(x) for x in arr if x < EMPTY or x >= n]
        if bad:
            raise InvalidActionError(f"passage rows {bad} are out of range: use 0..{n - 1}, or -1 for an empty slot")
        rows = [int(x) for x in arr if x != EMPTY]
        if len(set(rows)) != len(rows):
            raise InvalidActionError(f"action chooses a passage twice: {rows}")
        return rows

    def passage_feedback(self, requests: Sequence[tuple[Question, Sequence[int]]]) -> tuple[np.ndarray, np.ndarray]:
        """Per-passage feedback for retriever training (R3's environment signal).

        For each (question, rows): the frozen LLM's mean log-prob of the gold answer (best
        alias) closed-book, shape [n], and given the question with each single passage,
        shape [n, len(rows)] (NaN where a row is -1). One batched scorer call; every value
        comes from, or goes into, the reward cache.
        """
        width = max((len(rows) for _, rows in requests), default=0)
        prompts = [PromptRequest(question=q, passages=()) for q, _ in requests]
        slots = []
        for n, (q, rows) in enumerate(requests):
            for j, row in enumerate(rows):
                if int(row) >= 0:
                    prompts.append(PromptRequest(question=q, passages=(self.corpus[int(row)],)))
                    slots.append((n, j))
        results = self.scorer.run(prompts)
        closed = np.array([r.score.mean_logprob for r in results[: len(requests)]], dtype=np.float32)
        single = np.full((len(requests), width), np.nan, dtype=np.float32)
        for (n, j), result in zip(slots, results[len(requests):]):
            single[n, j] = result.score.mean_logprob
        return closed, single

    # ------------------------------------------------------------------ outcome (shared by step and batch evaluation)
    def outcomes(self, requests: Sequence[tuple[Question, Sequence[int]]]) -> list[StepOutcome]:
        """Rewards and info for many (question, rows) choices, with batched LLM calls."""
        passage_lists = [tuple(self.corpus[r] for r in rows) for _, rows in requests]
        prompts = [PromptRequest(question=q, passages=ps, generate=self.generate_answers)
                   for (q, _), ps in zip(requests, passage_lists)]
        prompts += [PromptRequest(question=q, passages=()) for q, _ in requests]  # the same questions closed-book
        answered = self.scorer.run(prompts)
        with_passages, closed_book = answered[: len(requests)], answered[len(requests):]
        results = []
        for (q, rows), ps, result, closed in zip(requests, passage_lists, with_passages, closed_book):
            s, c, g = result.score, closed.score, result.generation
            info = {
                "question_id": q.id,
                "passage_ids": [p.id for p in ps],
                "answer_logprob": s.mean_logprob,
                "answer_logprob_sum": s.sum_logprob,
                "closed_book_logprob": c.mean_logprob,
                "logprob_gain": s.mean_logprob - c.mean_logprob,
                f"hit@{self.k}": hit_at_k([p.id for p in ps], q.gold_passage_ids),
                "num_passages": len(ps),
                "prompt_tokens": s.prompt_tokens,
            }
            if self.diagnostics:
                info["cache_hit"] = bool(s.cached and c.cached and (g is None or g.cached))
            if g is not None:
                info.update(generated_answer=g.text, em=exact_match(g.text, q.answers),
                            f1=f1_score(g.text, q.answers), accuracy=answer_in_output(g.text, q.answers))
            base = info["answer_logprob" if self.reward_name == "logprob" else self.reward_name]
            reward = float(base) - self.cost_per_passage * len(ps)
            results.append(StepOutcome(reward, info))
        return results

    def precompute(self, questions: Sequence[Question] | None = None, *, batch_size: int = 16, progress: bool = True,
                   on_batch: Callable[[list[Question]], None] | None = None, single_passages: bool = False) -> dict:
        """Fill the reward cache with each question's closed-book baseline and first-stage top-k choice.

        ``single_passages``: also every first-stage candidate alone (:meth:`passage_feedback`), the
        feedback R3 trains on; with it, R3 training on the same first stage makes no LLM calls.

        These are what every action's ``logprob_gain`` and the first-stage retriever agent
        need; other actions are scored when stepped. ``batch_size`` questions per
        ``outcomes`` call, each batch written to the cache as it finishes (``on_batch`` is
        then called with its questions).
        """
        def work(chunk: list[Question]) -> None:
            self.outcomes([(q, [int(r) for r in self.candidates(q)[0][: self.k] if r >= 0]) for q in chunk])
            if single_passages:
                self.passage_feedback([(q, self.candidates(q)[0].tolist()) for q in chunk])

        what = f"closed-book + first-stage top-{self.k}"
        if single_passages:
            what += f" + each of {self.num_candidates} candidates"
        report = self._precompute_batches(questions, batch_size, progress, on_batch,
                                          f"RAGRetrieval precompute ({what})", work)
        return {**report, "states_per_question": 1 + (self.num_candidates if single_passages else 0)}

    # ------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        if "question_id" in options:
            question = self.question_by_id(str(options["question_id"]))
        else:
            question = self.questions[int(self.np_random.integers(len(self.questions)))]
        self._current = question
        self._observation, texts = self._observation_and_texts(question)
        info = {"question_id": question.id, "candidate_texts": list(texts)}
        return self.observation_for(question), info

    def step(self, action):
        rows = self.plan_step(action)
        return self.finish_step(rows, self.outcomes([(self._current, rows)])[0])

    # The two halves of ``step``, so that a vector environment (ragenv.envs.vector) can batch the
    # frozen-LLM work of many sub-environments into one ``outcomes`` call between them.
    def plan_step(self, action) -> list[int]:
        """Check the episode and the action; the chosen rows (changes nothing)."""
        if self._current is None:
            raise RagenvError("call reset() before step(): each episode is one question")
        return self.validate_action(action)

    def finish_step(self, rows: list[int], outcome: StepOutcome):
        """End the episode with the frozen LLM's ``outcome`` for ``rows``; the ``step`` return value."""
        observation = {key: value.copy() if isinstance(value, np.ndarray) else value
                       for key, value in self._observation.items()}  # fresh arrays: callers may keep them
        self._last = (self._current, rows, outcome)
        self._current = None  # one step per episode
        return observation, outcome.reward, True, False, outcome.info

    def render(self):
        if self.render_mode != "ansi":
            return None
        last = self._last
        if last is None:
            return "(no step yet)"
        question, rows, outcome = last
        lines = [f"Q: {question.question}", f"gold: {' | '.join(question.answers)}"]
        lines += [f"  [{r}] {self.corpus[r].title}" for r in rows]
        lines.append(f"reward {outcome.reward:+.3f}  logprob {outcome.info['answer_logprob']:.3f}")
        return "\n".join(lines)


def top_scored_candidates(scores: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """The passage action that ``Box(m)`` scores over first-stage ``candidates`` stand for.

    The ``k`` best-scored candidates, best first (ties: the first-stage order); empty
    candidate slots (-1) are never chosen; fewer than ``k`` candidates leave -1 slots.
    """
    scores = np.where(candidates >= 0, scores, -np.inf)
    order = np.argsort(-scores, kind="stable")[:k]
    chosen = [int(candidates[i]) for i in order if np.isfinite(scores[i])]
    return np.array(chosen + [EMPTY] * (k - len(chosen)), dtype=np.int64)


def __getattr__(name: str):
    """``CandidateScoreAction`` moved to :mod:`ragenv.envs.wrappers`; the old import keeps working."""
    if name == "CandidateScoreAction":
        from ragenv.envs.wrappers import CandidateScoreAction

        return CandidateScoreAction
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
