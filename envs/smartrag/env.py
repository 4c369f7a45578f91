"""SmartRAG-v0 and SmartRAGText-v0: learn when to retrieve and what to ask (SmartRAG, arXiv 2410.18141)."""
from __future__ import annotations

import itertools
import math
import re
import string
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ragenv.data import Dataset, Passage, Question
from ragenv.errors import ConfigError, InvalidActionError, RagenvError
from ragenv.envs.components import SharedEnvMixin, build_components
from ragenv.llm import FrozenLLM, LLMConfig, PromptRequest
from ragenv.metrics import answer_in_output, exact_match, f1_score, normalize_answer
from ragenv.reward_cache import RewardCache

ANSWER = 0  # action 0 answers; action 1 + i retrieves with QUERY_OPTIONS[i]
QUERY_OPTIONS = ("question", "keywords", "llm-query", "question+guess")
ACTION_NAMES = ("answer",) + tuple(f"retrieve:{o}" for o in QUERY_OPTIONS)
REWARDS = ("em_f1", "accuracy")
MALFORMED_REWARD = -1.0  # text variant: an action that is not a legal [Search]/[Answer] string
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


def guess_support(guess: str, passages: Sequence[str]) -> float:
    """1.0 when the closed-book guess occurs, as whole words after SQuAD normalisation, in one of the passages.

    Whether the corpus backs the LLM's own guess. On nq train (first 500) the guess is in
    the question's top-3 passages for 12.6% of the questions; retrieving with the question
    changes the return by -0.189 there and by +0.104 elsewhere (``scripts/smartrag_gain_probe.py``).
    An empty guess is never supported.
    """
    needle = normalize_answer(guess)
    if not needle:
        return 0.0
    return float(any(f" {needle} " in f" {normalize_answer(text)} " for text in passages))


def words_in_query(query: str) -> int:
    """Distinct words of a query after SQuAD normalisation (at least 1): the scale of a BM25 score."""
    return max(1, len(set(normalize_answer(query).split())))


@dataclass(frozen=True)
class QuestionState:
    """What the frozen LLM and the first stage say about a question before any action."""

    guess: str  # the frozen LLM's closed-book (greedy) answer
    confidence: tuple[float, float]  # exp(mean token log-prob), exp(sum log-prob) of that answer, closed-book
    queries: tuple[str, ...]  # one per QUERY_OPTIONS
    rows: tuple[tuple[int, ...], ...]  # top-n corpus rows per query option
    top_scores: tuple[float, ...]  # first-stage score of each option's top-1 passage (0 if none)
    support: tuple[float, ...]  # 1 where the closed-book guess occurs in that option's top-n passages
    cached: bool  # every LLM result came from the persistent reward cache


@dataclass(frozen=True)
class AnswerOutcome:
    text: str
    em: float
    f1: float
    accuracy: float
    cached: bool


class SmartRAGEnv(SharedEnvMixin, gym.Env):
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
    ``Discrete(5)``:

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
    sb3-contrib's ``MaskablePPO``; also ``info["action_mask"]``). An illegal action, an
    index outside ``0..4`` or a non-integer raises :class:`ragenv.errors.InvalidActionError`
    and changes nothing: the episode stays open.

    ## Observation Space
    A ``Dict`` of ``Box`` es (stable-baselines3's ``MultiInputPolicy`` reads it):

    | key | shape | meaning |
    |---|---|---|
    | ``question_embedding`` | ``(d,)`` in [-1, 1] | frozen-encoder embedding of the question |
    | ``context_embedding`` | ``(d,)`` in [-1, 1] | mean embedding of the retrieved passages (zeros before any) |
    | ``retrievals`` | ``(1,)`` in [0, max(N, 1)] | retrievals made so far |
    | ``query_used`` | ``(4,)`` in {0, 1} | query options already used |
    | ``query_scores`` | ``(4,)`` | first-stage score of each query option's top-1 passage |
    | ``query_scores_per_word`` | ``(4,)`` | that score divided by the query's distinct words (:func:`words_in_query`): BM25 sums over query terms, so this puts short and long queries on one scale |
    | ``closed_book_support`` | ``(4,)`` in {0, 1} | 1 where the closed-book guess occurs in that option's top-n passages (:func:`guess_support`): the corpus backs the LLM's guess |
    | ``closed_book_confidence`` | ``(2,)`` in [0, 1] | the frozen LLM's probability of its own closed-book greedy answer: per token (exp of the mean log-prob) and whole answer (exp of the sum) |

    With ``features=False`` the two embeddings are left out (no encoder is loaded).
    The texts are in ``info``: ``question``, ``passages`` (``title\\ntext``, in order),
    ``passage_ids``, ``queries`` (the text of each query option), ``closed_book_answer``,
    ``num_retrievals``, ``action_mask``.

    ## Rewards
    0 for a retrieval step. The ANSWER step earns ``EM + F1`` of the frozen LLM's answer
    (0 to 2, SQuAD normalisation, best gold alias; ``reward="accuracy"``: 1 if a gold
    alias occurs in the answer) minus ``alpha`` times the number of retrievals, so the
    return of an episode is the SmartRAG reward.

    ## Starting State
    ``reset(seed=...)`` draws a question uniformly from the split;
    ``reset(options={"question_id": ...})`` picks one.

    ## Episode End
    Terminates on ANSWER, which is reached within ``max_retrievals + 1`` steps (after
    the quota only ANSWER is legal). Never truncated. The terminal ``info`` adds
    ``answer``, ``em``, ``f1``, ``accuracy``, ``actions``, ``search_queries`` (the query
    texts used), ``cache_hit`` and ``episode_record`` (the episode's JSON-ready summary
    that ``ragenv evaluate`` writes per question). Replaying ``search_queries`` and the
    answer as ``[Search]``/``[Answer]`` strings in SmartRAGText-v0 gives the same reward.

    ## Arguments
    ``dataset`` (``nq``, ``hotpotqa``, ``squad`` or a folder), ``split``, ``llm`` (name or
    :class:`LLMConfig`), ``alpha`` (0.2), ``max_retrievals`` (quota N, 1), ``top_n``
    (passages per retrieval, 3), ``reward`` (``em_f1`` or ``accuracy``), ``first_stage``
    (``bm25s``, ``pyserini`` or ``dense``), ``features`` (True), ``encoder``, ``limit``,
    ``data_dir``, ``cache`` (a :class:`RewardCache` or path), ``scorer`` (a shared
    :class:`FrozenLLM`), ``render_mode`` (``ansi``), ``dtype`` (``float32``, canonical, or
    the opt-in ``bfloat16``/``float16``) and ``device`` (``auto``, ``cpu``, ``cuda``).

    ``precompute()`` (``ragenv precompute``) fills the reward cache with every LLM
    result the episodes can reach, batched; after it, steps make no LLM call.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}
    multi_step = True  # ragenv.evaluate runs it through reset/step episodes

    def __init__(
        self,
        dataset: str | Dataset = "nq",
        split: str = "train",
        llm: str | LLMConfig = "gemma-3-270m",
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
    ):
        if reward not in REWARDS:
            raise ConfigError(f"unknown reward {reward!r} for SmartRAG: use one of {', '.join(REWARDS)}")
        if not (isinstance(max_retrievals, (int, np.integer)) and 0 <= max_retrievals <= len(QUERY_OPTIONS)):
            raise ConfigError(f"max_retrievals must be an integer from 0 to {len(QUERY_OPTIONS)}, got {max_retrievals!r}")
        if not (isinstance(top_n, (int, np.integer)) and top_n >= 1):
            raise ConfigError(f"top_n must be an integer >= 1, got {top_n!r}")
        if not (isinstance(alpha, (int, float)) and math.isfinite(alpha)):
            raise ConfigError(f"alpha must be a finite number, got {alpha!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(f"unknown render_mode {render_mode!r}: use 'ansi' or None")
        parts = build_components(dataset, split, limit, data_dir, llm, cache, scorer, first_stage, features, encoder,
                                 dtype=dtype, device=device)
        self.dataset, self.corpus, self.questions = parts.dataset, parts.corpus, parts.questions
        self.scorer, self.first_stage, self.dense = parts.scorer, parts.first_stage, parts.dense
        self.split_name = split
        self._by_id = {q.id: q for q in self.questions}
        self.alpha, self.max_retrievals, self.top_n = float(alpha), int(max_retrievals), int(top_n)
        self.reward_name = reward
        self.render_mode = render_mode
        self.first_stage_name = first_stage
        self.features = features
        self._setup_spaces()

        # Per-process memos of the hot paths; the persistent one is the reward cache.
        self._question_states: dict[str, QuestionState] = {}
        self._answers: dict[tuple[str, tuple[int, ...]], AnswerOutcome] = {}
        self._observations: dict[tuple[str, tuple[int, ...]], dict] = {}
        self._question_embeddings: dict[str, np.ndarray] = {}
        self._clear_episode()

    # ------------------------------------------------------------------ spaces and options
    def _setup_spaces(self) -> None:
        self.action_space = spaces.Discrete(1 + len(QUERY_OPTIONS))
        m = len(QUERY_OPTIONS)
        obs = {}
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

    @property
    def env_options(self) -> dict:
        """The settings that change rewards or observations (recorded with every result)."""
        return {"alpha": self.alpha, "max_retrievals": self.max_retrievals, "top_n": self.top_n,
                "reward": self.reward_name, "first_stage": self.first_stage_name, "features": self.features}

    def _clear_episode(self) -> None:
        self._current: Question | None = None
        self._used: tuple[int, ...] = ()  # query options used, in order
        self._rows: tuple[int, ...] = ()  # passages in the state, in order
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

    # ------------------------------------------------------------------ helpers
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

    @staticmethod
    def _merge(rows: tuple[int, ...], new: Sequence[int]) -> tuple[int, ...]:
        """State passages after a retrieval: the old ones, then the new ones not already there."""
        seen = set(rows)
        return rows + tuple(r for r in new if r >= 0 and r not in seen and not seen.add(r))

    def rows_after(self, question: Question, options: Sequence[int]) -> tuple[int, ...]:
        """The passages of the state reached by retrieving with ``options`` (query option indices) in order."""
        state = self.question_state(question)
        rows: tuple[int, ...] = ()
        for option in options:
            rows = self._merge(rows, state.rows[option])
        return rows

    def reachable_sequences(self) -> list[tuple[int, ...]]:
        """Every legal sequence of query options (distinct, at most ``max_retrievals``), shortest first."""
        m = len(QUERY_OPTIONS)
        return [seq for n in range(self.max_retrievals + 1) for seq in itertools.permutations(range(m), n)]

    # ------------------------------------------------------------------ frozen LLM outcomes (batched, memoised)
    def _prepare(self, questions: Sequence[Question]) -> None:
        """Closed-book guess, its confidence, the LLM's search query and every option's retrieval, batched."""
        self.resolve(questions, ())

    def resolve(self, questions: Sequence[Question], pairs: Sequence[tuple[Question, tuple[int, ...]]]) -> None:
        """Memoise the question states of ``questions`` and the answers at the ``pairs`` states.

        Two batched frozen-LLM calls at most: one for every independent prompt (closed-book
        guesses, LLM-written queries and the answers), then one scoring the guesses (the
        closed-book confidence), which depends on the first. ``_prepare`` and ``answers``
        are this with one side empty; a vector environment passes both sides of all its
        sub-environments at once.
        """
        todo = [q for q in dict.fromkeys(questions) if q.id not in self._question_states]
        answer_todo = list(dict.fromkeys((q, tuple(rows)) for q, rows in pairs if (q.id, tuple(rows)) not in self._answers))
        if not todo and not answer_todo:
            return
        first = self.scorer.run([PromptRequest(q, (), (), True) for q in todo]
                                + [PromptRequest(q, (), (), True, "search_query") for q in todo]
                                + [PromptRequest(q, tuple(self.corpus[r] for r in rows), (), True)
                                   for q, rows in answer_todo])
        for (q, rows), result in zip(answer_todo, first[2 * len(todo):]):
            text = result.generation.text
            self._answers[(q.id, rows)] = AnswerOutcome(text, exact_match(text, q.answers), f1_score(text, q.answers),
                                                        answer_in_output(text, q.answers), result.generation.cached)
        if not todo:
            return
        guesses, written = first[: len(todo)], first[len(todo): 2 * len(todo)]
        scored = self.scorer.run([PromptRequest(q, (), (g.generation.text,)) for q, g in zip(todo, guesses)])
        queries = []
        for q, guess, query in zip(todo, guesses, written):
            text = guess.generation.text
            queries.append((q.question, keyword_query(q.question), clean_search_query(query.generation.text, q.question),
                            f"{q.question} {text}".strip()))
        flat = [text for qs in queries for text in qs]
        rows, scores = self.first_stage.search(flat, self.top_n)
        m = len(QUERY_OPTIONS)
        for n, (q, guess, query, score) in enumerate(zip(todo, guesses, written, scored)):
            block = slice(n * m, (n + 1) * m)
            option_rows = tuple(tuple(int(r) for r in row if r >= 0) for row in rows[block])
            top = tuple(float(s[0]) if len(row) and row[0] >= 0 else 0.0 for s, row in zip(scores[block], rows[block]))
            support = tuple(guess_support(guess.generation.text, [self.corpus[r].contents for r in option])
                            for option in option_rows)
            mean, total = score.score.mean_logprob, score.score.sum_logprob
            confidence = (math.exp(mean) if math.isfinite(mean) else 0.0, math.exp(total) if math.isfinite(total) else 0.0)
            cached = bool(guess.generation.cached and query.generation.cached and score.score.cached)
            self._question_states[q.id] = QuestionState(guess.generation.text, confidence, queries[n], option_rows, top,
                                                         support, cached)
        if self.features:
            missing = [q for q in todo if q.id not in self._question_embeddings]
            vectors = np.clip(self.dense.query_encoder.encode([q.question for q in missing]), -1.0, 1.0)
            for q, vec in zip(missing, vectors):
                self._question_embeddings[q.id] = vec.astype(np.float32)

    def question_state(self, question: Question) -> QuestionState:
        state = self._question_states.get(question.id)
        if state is None:
            self._prepare([question])
            state = self._question_states[question.id]
        return state

    def answers(self, pairs: Sequence[tuple[Question, tuple[int, ...]]]) -> list[AnswerOutcome]:
        """The frozen LLM's answer from each (question, passage rows) state, with one batched LLM call."""
        self.resolve((), pairs)
        return [self._answers[(q.id, tuple(rows))] for q, rows in pairs]

    def answer_reward(self, outcome: AnswerOutcome | None = None, *, em: float = 0.0, f1: float = 0.0,
                      accuracy: float = 0.0, retrievals: int = 0) -> float:
        """The SmartRAG reward of a final answer after ``retrievals`` retrievals."""
        if outcome is not None:
            em, f1, accuracy = outcome.em, outcome.f1, outcome.accuracy
        base = em + f1 if self.reward_name == "em_f1" else accuracy
        return float(base) - self.alpha * retrievals

    def precompute(self, questions: Sequence[Question] | None = None, *, batch_size: int = 16,
                   progress: bool = True, on_batch: Callable[[list[Question]], None] | None = None) -> dict:
        """Fill the reward cache (and this process's memos) with every LLM result episodes can reach.

        Per question: the closed-book guess and its confidence, the LLM-written query, every
        option's retrieval, and the answer at every reachable state (``reachable_sequences``;
        5 states under quota 1). Batched ``batch_size`` questions at a time; each batch is
        written to the cache as it finishes, so an interrupted run keeps its work; ``on_batch``
        is then called with the batch's questions (run journals note progress there).
        """
        sequences = self.reachable_sequences()

        def work(chunk: list[Question]) -> None:
            self._prepare(chunk)
            self.answers([(q, rows) for q in chunk for rows in dict.fromkeys(self.rows_after(q, s) for s in sequences)])

        report = self._precompute_batches(questions, batch_size, progress, on_batch,
                                          f"SmartRAG precompute ({len(sequences)} states per question)", work)
        return {**report, "states_per_question": len(sequences)}

    def sequence_outcomes(self, question: Question) -> list[tuple[tuple[int, ...], float, AnswerOutcome]]:
        """Every reachable action sequence (query options, then ANSWER) with its return and answer."""
        sequences = self.reachable_sequences()
        outcomes = self.answers([(question, self.rows_after(question, s)) for s in sequences])
        return [(seq, self.answer_reward(o, retrievals=len(seq)), o) for seq, o in zip(sequences, outcomes)]

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
                obs["question_embedding"] = self._question_embeddings[question.id]
                context = np.zeros(self.dense.encoder.dim, dtype=np.float32)
                if self._rows:
                    context = np.clip(self.dense.passage_embeddings(np.array(self._rows)).mean(axis=0), -1.0, 1.0)
                obs["context_embedding"] = context.astype(np.float32)
            obs["retrievals"] = np.array([self._retrievals], dtype=np.float32)
            obs["query_used"] = used
            obs["query_scores"] = np.array(state.top_scores, dtype=np.float32)
            obs["query_scores_per_word"] = np.array([score / words_in_query(query) for score, query
                                                     in zip(state.top_scores, state.queries)], dtype=np.float32)
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
            "queries": dict(zip(QUERY_OPTIONS, state.queries)),
            "closed_book_answer": state.guess,
            "num_retrievals": self._retrievals,
            "action_mask": self.action_masks(),
        }

    # ------------------------------------------------------------------ actions
    def validate_action(self, action: Any) -> int:
        """The action as an int, or InvalidActionError (no state is touched)."""
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
        if not self.action_masks()[value]:
            why = ("the retrieval quota is used up" if self._retrievals >= self.max_retrievals
                   else f"query option {QUERY_OPTIONS[value - 1]!r} was already used in this episode")
            legal = [ACTION_NAMES[i] for i in np.flatnonzero(self.action_masks())]
            raise InvalidActionError(f"illegal action {value} ({ACTION_NAMES[value]}): {why}; legal now: {', '.join(legal)} "
                                     "(see action_masks())")
        return value

    def _retrieve(self, rows: Sequence[int]) -> None:
        self._rows = self._merge(self._rows, rows)
        self._retrievals += 1

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

    # ------------------------------------------------------------------ Gymnasium API
    def _start(self, seed: int | None, options: dict | None) -> Question:
        super().reset(seed=seed)
        options = options or {}
        if "question_id" in options:
            question = self.question_by_id(str(options["question_id"]))
        else:
            question = self.questions[int(self.np_random.integers(len(self.questions)))]
        self._clear_episode()
        self._current = question
        return question

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
    def plan_step(self, action) -> int:
        """Check the episode and the action; the action as an int (changes nothing)."""
        if self._current is None:
            raise RagenvError("call reset() before step(): the episode has ended or not started")
        return self.validate_action(action)

    def pending_llm_work(self, value: int) -> list[tuple[Question, tuple[int, ...]]]:
        """The answer states that ``finish_step(value)`` will ask the frozen LLM about."""
        return [(self._current, self._rows)] if value == ANSWER else []

    def finish_step(self, value: int):
        """Carry out a checked action (from ``plan_step``); the ``step`` return value."""
        if value != ANSWER:
            option = value - 1
            self._retrieve(self.question_state(self._current).rows[option])
            self._used = self._used + (option,)
            return self._observation(), 0.0, False, False, self._info()
        state = self.question_state(self._current)
        answer = self.answers([(self._current, self._rows)])[0]
        actions = [f"retrieve:{QUERY_OPTIONS[o]}" for o in self._used] + ["answer"]
        extra = {"actions": actions, "search_queries": [state.queries[o] for o in self._used],
                 "cache_hit": bool(answer.cached and state.cached)}
        reward, info = self._finish(answer, extra)
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


# --------------------------------------------------------------------------- the text variant

# ASCII: under re.IGNORECASE alone "[ſearch]" (long s) matched, and was then scored as an answer
_TEXT_ACTION = re.compile(r"^\[(search|answer)\](.*)$", re.IGNORECASE | re.DOTALL | re.ASCII)
MAX_TEXT_ACTION = 2000


def parse_text_action(action: str) -> tuple[str, str]:
    """``("search", query)``, ``("answer", answer)`` or ``("malformed", reason)`` for a text action.

    Rules: surrounding whitespace is ignored; the text must start with the tag
    ``[Search]`` or ``[Answer]`` (any ASCII case); the payload is the rest of the first line,
    stripped, and must not be empty; at most 2000 characters in all.
    """
    if len(action) > MAX_TEXT_ACTION:
        return "malformed", f"action is longer than {MAX_TEXT_ACTION} characters"
    text = action.strip()
    if not text:
        return "malformed", "empty action"
    match = _TEXT_ACTION.match(text)
    if match is None:
        return "malformed", "action must start with [Search] or [Answer]"
    payload = match.group(2).split("\n")[0].strip()
    kind = match.group(1).lower()
    if not payload:
        return "malformed", f"[{kind.capitalize()}] needs {'a query' if kind == 'search' else 'an answer'} after the tag"
    return kind, payload


class SmartRAGTextEnv(SmartRAGEnv):
    """
    ## Description
    SmartRAG-v0 for LLM policies: the same questions, retriever, quota, costs and
    rewards, with the paper's string actions. The policy writes its own queries and
    its own answer (as the SmartRAG policy network does); the environment retrieves
    and scores. No frozen-LLM call is made.

    ## Action Space
    ``Text``: ``"[Search] <query>"`` retrieves the top-``n`` passages of ``<query>``
    (appended, de-duplicated; costs ``alpha``); ``"[Answer] <answer>"`` ends the episode
    and scores ``<answer>``. Parsing (:func:`parse_text_action`): surrounding whitespace
    is ignored, the tag must come first (any ASCII case), the payload is the rest of the
    first line and must not be empty, at most 2000 characters. Any ``str`` is parsed:
    the ``Text`` space's charset (printable ASCII) only shapes ``action_space.sample()``.

    Text that parses as neither (no tag, unknown tag, empty payload, too long), and a
    ``[Search]`` once the quota is used up, is *malformed*: reward -1, the episode ends,
    and ``info["invalid_action"]`` says why (as in the SmartRAG reference code). A
    non-string action raises :class:`ragenv.errors.InvalidActionError`.

    ## Observation Space
    ``Text``: the prompt an LLM policy reads: the question, the retrieval count and
    quota, the passages so far, and the actions legal now (``[Answer]`` only once the
    quota is used up). ``info`` carries the same fields as SmartRAG-v0 minus
    ``queries``, ``closed_book_answer`` and ``action_mask``.

    ## Rewards
    As SmartRAG-v0 for ``[Answer]`` (EM + F1 of the given answer, or accuracy, minus
    ``alpha`` per retrieval); -1 for a malformed action; 0 for a search.

    ## Episode End
    On ``[Answer]`` or a malformed action; within ``max_retrievals + 1`` steps. Never truncated.

    ## Arguments
    As SmartRAG-v0; ``features`` defaults to False and has no effect on the observation.
    """

    def __init__(self, *args, features: bool = False, **kwargs):
        super().__init__(*args, features=features, **kwargs)
        self._search_memo: dict[str, tuple[int, ...]] = {}

    def _setup_spaces(self) -> None:
        template = self._prompt("", [], 0, True) + self._prompt("", [], 0, False)
        charset = set(string.printable) | set(template)
        for q in self.questions:
            charset.update(q.question)
        longest_passage = 0
        for text in self.corpus.contents:
            charset.update(text)
            longest_passage = max(longest_passage, len(text))
        longest_question = max(len(q.question) for q in self.questions)
        slots = self.max_retrievals * self.top_n
        max_length = len(template) + longest_question + slots * (longest_passage + 16) + 64
        self.observation_space = spaces.Text(max_length=max_length, min_length=1, charset="".join(sorted(charset)))
        self.action_space = spaces.Text(max_length=MAX_TEXT_ACTION, min_length=0, charset=string.printable)

    def _prompt(self, question: str, rows: Sequence[int], retrievals: int, may_search: bool) -> str:
        lines = [f"Question: {question}", f"Retrievals: {retrievals} of {self.max_retrievals}", "Passages:"]
        lines += [f"[{i}] {self.corpus[r].title}: {self.corpus[r].text}" if self.corpus[r].title
                  else f"[{i}] {self.corpus[r].text}" for i, r in enumerate(rows, 1)] or ["(none)"]
        if may_search:
            lines.append(f'Reply "[Search] <query>" to retrieve {self.top_n} more passages, or "[Answer] <answer>".')
        else:
            lines.append('Reply "[Answer] <answer>" (no retrievals left).')
        return "\n".join(lines)

    def _observation(self) -> str:
        question = self.current_question
        return self._prompt(question.question, self._rows, self._retrievals, self._retrievals < self.max_retrievals)

    def _info(self) -> dict:
        question = self.current_question
        return {"question_id": question.id, "question": question.question,
                "passages": [self.corpus[r].contents for r in self._rows],
                "passage_ids": [self.corpus[r].id for r in self._rows], "num_retrievals": self._retrievals}

    def action_masks(self):  # noqa: D401 - not a discrete action space
        raise RagenvError("SmartRAGText-v0 has a Text action space and no action mask; use SmartRAG-v0 for MaskablePPO")

    def search(self, query: str) -> tuple[int, ...]:
        """Top-n corpus rows of a free-text query (memoised)."""
        rows = self._search_memo.get(query)
        if rows is None:
            found, _ = self.first_stage.search([query], self.top_n)
            rows = tuple(int(r) for r in found[0] if r >= 0)
            self._search_memo[query] = rows
        return rows

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._start(seed, options)
        self._queries: list[str] = []
        return self._observation(), self._info()

    def get_state(self) -> dict:
        return {**super().get_state(), "queries": list(getattr(self, "_queries", []))}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self._queries = list(state.get("queries", []))

    def step(self, action):
        if self._current is None:
            raise RagenvError("call reset() before step(): the episode has ended or not started")
        if not isinstance(action, str):
            raise InvalidActionError(f"SmartRAGText-v0 takes a string action ('[Search] <query>' or '[Answer] <answer>'), "
                                     f"got {type(action).__name__}")
        kind, payload = parse_text_action(action)
        if kind == "search" and self._retrievals >= self.max_retrievals:
            kind, payload = "malformed", f"[Search] after the retrieval quota ({self.max_retrievals}) is used up"
        if kind == "search":
            self._retrieve(self.search(payload))
            self._queries.append(payload)
            return self._observation(), 0.0, False, False, self._info()
        extra = {"search_queries": list(self._queries)}
        if kind == "malformed":
            reward, info = self._finish(AnswerOutcome("", 0.0, 0.0, 0.0, True), {**extra, "invalid_action": payload},
                                        reward=MALFORMED_REWARD)
        else:
            question = self.current_question
            outcome = AnswerOutcome(payload, exact_match(payload, question.answers), f1_score(payload, question.answers),
                                    answer_in_output(payload, question.answers), True)
            reward, info = self._finish(outcome, extra)
        observation = self._observation()
        self._current = None
        return observation, reward, True, False, info

    def precompute(self, questions=None, *, batch_size: int = 16, progress: bool = True, on_batch=None) -> dict:
        raise RagenvError("SmartRAGText-v0 makes no frozen-LLM calls, so there is nothing to precompute; "
                          "precompute SmartRAG-v0 instead")
