"""The frozen LLM scorer: the only place that runs the environment's language model.

Every environment, agent and baseline reaches the LLM through :class:`FrozenLLM`,
so batching, caching, device placement and the prompt live here alone.

- ``answer_logprob``: token log-probabilities of the gold answer given the question
  and passages (mean and sum; the maximum over answer aliases).
- ``generate``: the greedy answer.
- ``run``: both, for many prompts at once; ``PromptRequest.task`` selects the
  instruction: ``"answer"`` (the QA prompt) or ``"search_query"`` (write a search
  query for the question, used by SmartRAG-v0's LLM-written query option).

Both are memoised in the :class:`~ragenv.reward_cache.RewardCache`; the model and
tokenizer are loaded only when a result is missing, so a fully cached run never
loads them. The prompt and key logic is in :mod:`ragenv.llm.prompts`, the model
sources in :mod:`ragenv.llm.models`, the torch side in :mod:`ragenv.llm.engine`.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ragenv.data import Passage, Question
from ragenv.errors import PromptTooLongError
from ragenv.llm.engine import AliasScore, Engine, LLMStats
from ragenv.llm.models import (
    LLMConfig,
    converted_dir,
    model_fingerprint,
    model_folder,
    resolve_model_source,
    resolved_device,
    resolved_dtype_name,
    weights_digest,
)
from ragenv.llm.prompts import (
    PROMPT_VERSION,
    TASKS,
    PromptRequest,
    build_prompt,
    cache_fingerprint,
    check_task,
    prompt_key,
)
from ragenv.numerics import NumericSetting, numeric_setting
from ragenv.reward_cache import CacheEntry, RewardCache


@dataclass(frozen=True)
class AnswerScore:
    """Log-probability of the gold answer (best alias) given a prompt."""

    mean_logprob: float
    sum_logprob: float
    answer: str  # the alias with the best mean log-probability
    answer_tokens: int
    prompt_tokens: int
    cached: bool


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    cached: bool


@dataclass(frozen=True)
class PromptResult:
    score: AnswerScore | None
    generation: Generation | None


@dataclass(frozen=True)
class _Keys:
    """The reward-cache keys of one :meth:`FrozenLLM.run` call, per request."""

    aliases: list[list[str]]  # the answers to score
    score: list[list[str]]  # one key per alias
    generate: list[str | None]  # the generation key, or None when no answer is generated

    def wanted(self) -> list[str]:
        return [k for ks in self.score for k in ks] + [k for k in self.generate if k]

    def missing(self, found: dict) -> list[int]:
        """The requests with a result that is not in ``found``."""
        return [i for i in range(len(self.score))
                if any(k not in found for k in self.score[i]) or (self.generate[i] and self.generate[i] not in found)]

    def unique(self, indices: Sequence[int]) -> list[int]:
        """``indices`` less repeats of the same keys (e.g. a closed-book action beside its closed-book baseline)."""
        return list({(tuple(self.score[i]), self.generate[i]): i for i in reversed(indices)}.values())[::-1]


class FrozenLLM:
    """Batched, cached scoring and generation with one frozen causal LM."""

    def __init__(self, config: LLMConfig | str = LLMConfig(), cache: RewardCache | None = None, *,
                 use_cache: bool = True, memo_size: int = 200_000):
        self.config = LLMConfig(name=config) if isinstance(config, str) else config
        self.source = resolve_model_source(self.config.name)
        self.cache = (cache if cache is not None else RewardCache()) if use_cache else None
        self.stats = LLMStats()
        # In-process memo in front of the reward cache: request -> its result as the cache serves it
        # (cached=True). A warm step then skips key hashing, SQLite and JSON. Results are
        # deterministic, so it can never disagree with the cache; the oldest entries go first.
        self.memo_size = memo_size if use_cache else 0
        self._memo: dict[PromptRequest, PromptResult] = {}
        self._engine = Engine(self.config, self.stats, lambda: model_folder(self.source, self.fingerprint))
        self._weights: str | None = None
        self._fingerprint: str | None = None
        self._cache_fingerprint: str | None = None

    # ------------------------------------------------------------------ identity
    @property
    def device(self) -> str:
        return resolved_device(self.config)

    @property
    def dtype_name(self) -> str:
        return resolved_dtype_name(self.config)

    @property
    def numerics(self) -> NumericSetting:
        """The numeric setting results are computed in (dtype, device, hardware; canonical or not)."""
        return numeric_setting(self.dtype_name, self.device)

    def _weights_digest(self) -> str:
        if self._weights is None:
            self._weights = weights_digest(self.source)
        return self._weights

    @property
    def fingerprint(self) -> str:
        """The model's identity: its weights and tokenizer, whatever the numeric setting (no model load).

        A leaderboard submission must match it; the numeric setting is recorded beside it.
        """
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self._weights_digest())
        return self._fingerprint

    @property
    def cache_fingerprint(self) -> str:
        """Model and dtype: part of every reward-cache key, so two numeric settings never share an entry.

        Its formula is frozen (see :func:`ragenv.llm.prompts.cache_fingerprint`).
        """
        if self._cache_fingerprint is None:
            self._cache_fingerprint = cache_fingerprint(self._weights_digest(), self.dtype_name)
        return self._cache_fingerprint

    def describe(self) -> dict:
        return {"name": self.config.name, "fingerprint": self.fingerprint, "dtype": self.dtype_name,
                "prompt_version": PROMPT_VERSION, "task_prompt_versions": dict(TASKS),
                "numerics": self.numerics.describe()}

    # ------------------------------------------------------------------ the model
    @property
    def loaded(self) -> bool:
        """Whether the model is loaded (a fully cached run never loads it)."""
        return self._engine.loaded

    @property
    def tokenizer(self):
        return self._engine.tokenizer

    @property
    def model(self):
        return self._engine.model

    @property
    def context_length(self) -> int | None:
        """The most tokens (prompt plus answer) the model reads: its ``max_position_embeddings``."""
        return self._engine.context_length

    def converted_dir(self) -> Path:
        """Where the converted (safetensors) copy of a GGUF model is cached."""
        return converted_dir(self.source, self.fingerprint)

    # ------------------------------------------------------------------ prompts and keys
    def prompt_text(self, question: str, passages: Sequence[Passage], task: str = "answer") -> str:
        """The user message: instruction, numbered passages, question (prompt version ``TASKS[task]``)."""
        return build_prompt(question, passages, task, max_question_words=self.config.max_question_words,
                            max_passage_words=self.config.max_passage_words)

    def prompt_ids(self, question: str, passages: Sequence[Passage], task: str = "answer") -> list[int]:
        """The prompt's token ids, as the model reads them (loads the tokenizer)."""
        return self._engine.prompt_ids(self.prompt_text(question, passages, task))

    def answer_ids(self, answer: str) -> list[int]:
        """An answer's token ids, as they are scored after the prompt (loads the tokenizer)."""
        return self._engine.answer_ids(answer)

    def key(self, kind: str, question: str, passages: Sequence[Passage], extra: object, task: str = "answer") -> str:
        """The reward-cache key of one result: ``kind`` ``"logprob"`` (``extra``: the alias) or ``"generate"``."""
        return prompt_key(kind, self.cache_fingerprint, question, passages, extra, task,
                          max_passage_words=self.config.max_passage_words,
                          max_question_words=self.config.max_question_words)

    # ------------------------------------------------------------------ public API
    def switch_cache(self, cache: RewardCache) -> None:
        """Read and write ``cache`` from now on; the in-process memo (the old cache's results) is emptied.

        The model stays loaded: benchmarks time cold runs this way without loading it again.
        """
        self.cache = cache
        self._memo.clear()

    def run(self, requests: Sequence[PromptRequest]) -> list[PromptResult]:
        """Answer log-probs and/or greedy answers for many prompts, from the cache where possible.

        Look up (the in-process memo, then the reward cache), compute what is missing (each
        distinct prompt once, see :meth:`Engine.forward_prompts`), store it (one cache
        transaction per call), and assemble the results. Results already served in this
        process come from the memo, exactly as the cache gave them.
        """
        remembered = self._recall(requests)
        if remembered is not None:
            return remembered
        keys = self._keys(requests)
        found = self._lookup(keys)
        missing = keys.missing(found)
        entries = self._compute(requests, keys, found, keys.unique(missing))
        self._store(entries)
        fresh = set(missing)
        results = [self._result(request, keys, i, found, cached=i not in fresh) for i, request in enumerate(requests)]
        if self.memo_size:
            self._remember(requests, results)
        return results

    def _recall(self, requests: Sequence[PromptRequest]) -> list[PromptResult] | None:
        """Every result from the in-process memo, or None when any is missing."""
        if not self._memo:
            return None
        hits = []
        for request in requests:
            hit = self._memo.get(request)
            if hit is None:
                return None
            hits.append(hit)
        return hits

    def _keys(self, requests: Sequence[PromptRequest]) -> _Keys:
        """The cache keys of every alias to score and every answer to generate (tasks checked first)."""
        for r in requests:
            check_task(r.task)
        alias_lists = [list(r.question.answers if r.answers is None else r.answers) for r in requests]
        score_keys = [[self.key("logprob", r.question.question, r.passages, a, r.task) for a in al]
                      for r, al in zip(requests, alias_lists)]
        gen_keys = [self.key("generate", r.question.question, r.passages, self.config.max_new_tokens, r.task)
                    if r.generate else None for r in requests]
        return _Keys(alias_lists, score_keys, gen_keys)

    def _lookup(self, keys: _Keys) -> dict[str, dict]:
        """The cached values of ``keys`` (key -> value); empty without a cache."""
        return self.cache.get_many(keys.wanted()) if self.cache is not None else {}

    def _compute(self, requests: Sequence[PromptRequest], keys: _Keys, found: dict[str, dict],
                 todo: Sequence[int]) -> list[CacheEntry]:
        """Run the model for the requests ``todo``: their values go into ``found``, and come back as cache entries.

        Only what ``found`` lacks is computed; of two requests sharing a key, the first one's value is kept.
        """
        if not todo:
            return []
        prompts = [self.prompt_ids(requests[i].question.question, requests[i].passages, requests[i].task) for i in todo]
        aliases = [[self.answer_ids(a) if keys.score[i][j] not in found else [] for j, a in enumerate(keys.aliases[i])]
                   for i in todo]
        generate = [bool(keys.generate[i]) and keys.generate[i] not in found for i in todo]
        self._check_context([requests[i] for i in todo], prompts, aliases, generate)
        computed, texts = self._engine.forward_prompts(prompts, aliases, generate)
        entries = []
        for n, i in enumerate(todo):
            request = requests[i]
            values = self._values(keys, i, found, computed[n], texts[n] if generate[n] else None,
                                  len(prompts[n]), TASKS[request.task])
            for key, kind, value in values:
                found[key] = value
                entries.append(CacheEntry(key, kind, self.cache_fingerprint, request.question.id,
                                          ",".join(p.id for p in request.passages), value))
        return entries

    @staticmethod
    def _values(keys: _Keys, i: int, found: dict[str, dict], scores: Sequence[AliasScore], text: str | None,
                prompt_tokens: int, prompt_version: str) -> list[tuple[str, str, dict]]:
        """(key, kind, value) of each newly computed result of request ``i``, as the cache stores it."""
        common = {"prompt_tokens": prompt_tokens, "prompt_version": prompt_version}
        values = [(keys.score[i][j], "logprob", {"mean": m, "sum": t, "n": c, **common})
                  for j, (m, t, c) in enumerate(scores) if keys.score[i][j] not in found]
        gen_key = keys.generate[i]
        if text is not None and gen_key:
            values.append((gen_key, "generate", {"text": text, **common}))
        return values

    def _store(self, entries: Sequence[CacheEntry]) -> None:
        """Write the computed results to the reward cache in one transaction."""
        if entries and self.cache is not None:
            self.cache.put_many(entries)

    @staticmethod
    def _result(request: PromptRequest, keys: _Keys, i: int, found: dict[str, dict], cached: bool) -> PromptResult:
        """Request ``i``'s score (best alias by mean; the best sum beside it) and generation from the values."""
        score = None
        if keys.score[i]:
            values = [found[k] for k in keys.score[i]]
            best = max(range(len(values)), key=lambda j: values[j]["mean"])
            score = AnswerScore(values[best]["mean"], max(v["sum"] for v in values), keys.aliases[i][best],
                                values[best]["n"], values[best]["prompt_tokens"], cached)
        elif request.answers is None:  # a question without any gold answer
            score = AnswerScore(float("-inf"), float("-inf"), "", 0, 0, True)
        generation = None
        gen_key = keys.generate[i]
        if gen_key:
            value = found[gen_key]
            generation = Generation(value["text"], value["prompt_tokens"], cached)
        return PromptResult(score, generation)

    def _check_context(self, requests: Sequence[PromptRequest], prompts: Sequence[list[int]],
                       aliases: Sequence[Sequence[list[int]]], generate: Sequence[bool]) -> None:
        """Refuse, before any forward pass, a prompt whose tokens and answer exceed the model's context.

        Questions and passages are cut by words (``max_question_words``, ``max_passage_words``);
        that bounds ordinary text well inside the context (the longest wiki-mini question with its
        three longest passages is a 1,261-token SmolLM2 prompt), but not text with extremely long
        "words" or very many passages. Such a prompt is never cut by the tokenizer:
        :class:`PromptTooLongError` names it and what to change.
        """
        limit = self.context_length
        if not limit:
            return
        for request, prompt, alias_ids, gen in zip(requests, prompts, aliases, generate):
            answer = max([len(a) for a in alias_ids] + [self.config.max_new_tokens if gen else 0])
            if len(prompt) + answer > limit:
                raise PromptTooLongError(
                    f"question {request.question.id!r} with {len(request.passages)} passage(s): the prompt is "
                    f"{len(prompt):,} tokens and its answer needs up to {answer:,} more, over the {limit:,}-token "
                    f"context of {self.config.name}; questions are cut to {self.config.max_question_words} words and "
                    f"passages to {self.config.max_passage_words}, so these texts hold extremely long words or too "
                    "many passages: use fewer passages (k, top_n) or shorter texts")

    def _remember(self, requests: Sequence[PromptRequest], results: Sequence[PromptResult]) -> None:
        """Keep results for :meth:`run`'s memo, marked cached as a later cache read would mark them."""
        memo = self._memo
        for request, result in zip(requests, results):
            if request in memo:
                continue
            score, generation = result.score, result.generation
            if (score is not None and not score.cached) or (generation is not None and not generation.cached):
                result = PromptResult(
                    score if score is None or score.cached else dataclasses.replace(score, cached=True),
                    generation if generation is None or generation.cached
                    else dataclasses.replace(generation, cached=True))
            while len(memo) >= self.memo_size:
                del memo[next(iter(memo))]
            memo[request] = result

    def answer_logprob(self, items: Sequence[tuple[Question, Sequence[Passage]]],
                       answers: Sequence[Sequence[str]] | None = None) -> list[AnswerScore | None]:
        """Log-prob of each question's answers given its passages; max over aliases (by mean).

        ``answers`` overrides the gold answers per item (e.g. to score the model's own guess); an
        empty override scores nothing, and that item's result is None.
        """
        requests = [PromptRequest(question=q, passages=tuple(ps),
                                  answers=None if answers is None else tuple(answers[n]))
                    for n, (q, ps) in enumerate(items)]
        return [r.score for r in self.run(requests)]

    def generate(self, items: Sequence[tuple[Question, Sequence[Passage]]], task: str = "answer") -> list[Generation]:
        """Greedy replies (first line, stripped) for each (question, passages): answers, or search queries
        with ``task="search_query"``."""
        requests = [PromptRequest(question=q, passages=tuple(ps), answers=(), generate=True, task=task)
                    for q, ps in items]
        generations = []
        for r in self.run(requests):
            assert r.generation is not None  # every request asked to generate
            generations.append(r.generation)
        return generations
