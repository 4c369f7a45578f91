"""R3 training: reinforced contrastive learning on RAGRetrieval-v0's own feedback (arXiv 2510.24652).

One training step, for a batch of questions (the loop reads like CleanRL: all of it is here):

1. **Retrieve** with the current parameters: the first stage gives the top-``m`` candidates
   (``bm25s``/``pyserini``: a frozen BM25 index; ``bm25s+dense``: the union of BM25's and the
   *starting* dense index's top ``m``, both frozen; ``bag-of-tokens``: SiDR's frozen binary
   token index searched with the live query vocabulary vector; ``dense-reindex``, the
   ablation: a full dense index of the corpus rebuilt every ``reindex_every`` steps), then the
   live dense head re-ranks them.
2. **Environment feedback**: the frozen LLM's probability of the gold answer given the
   question and each single candidate (``RAGRetrievalEnv.passage_feedback``: shared scorer,
   reward cache). Misses are scored on the spot and counted in the history.
3. **Label** with the per-question thresholds fixed before training (:func:`thresholds`):
   above ``T+`` positive, below ``T-`` negative, in between unused.
4. **Update** with InfoNCE: each question's positive (``positives`` of them, drawn at random
   among its positives, each its own row) against its hardest negatives under the current
   ranking (on-policy) and every other passage of the batch (in-batch negatives). Dense
   head: parametric-parametric pairs; with the vocabulary head on, also its
   parametric-parametric, parametric-sparse and sparse-parametric pairs.

Checkpoints (``DIR/checkpoint/``: weights, optimizer, step, history, generators) are written
every ``checkpoint_every`` steps and at each epoch end; a killed run resumes exactly.
"""
from __future__ import annotations

import ctypes
import json
import math
import pickle
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ragenv.data import Question
from ragenv.errors import ConfigError, RagenvError

FIRST_STAGES = ("bm25s", "pyserini", "bm25s+dense", "bag-of-tokens", "dense-reindex")
FROZEN_FIRST_STAGES = ("bm25s", "pyserini", "bm25s+dense")  # candidates fixed per question: memoised, cache-served
AGENT_FORMAT = 1


@dataclass(frozen=True)
class R3Config:
    """Everything that determines an R3 run; the defaults produce the README's result."""

    encoder: str = "all-MiniLM-L6-v2"
    first_stage: str = "bm25s+dense"  # see FIRST_STAGES; the README explains the choice (nq dev, not test)
    num_candidates: int = 20  # m: first-stage candidates re-ranked live (and scored by the LLM); bm25s+dense: m from each
    k: int = 3  # passages handed to the LLM at evaluation
    epochs: int = 2
    batch_size: int = 16  # questions per step
    learning_rate: float = 5e-5  # few steps (2 epochs of 200 questions): higher than the usual 2e-5
    weight_decay: float = 0.01
    temperature: float = 0.05
    hard_negatives: int = 3  # per question, the negatives the current model ranks highest
    positives: int = 1  # per question and step, drawn among its positives, each its own InfoNCE row (0: all)
    listwise_weight: float = 0.0  # > 0 adds the listwise KL term (REPLUG-style) to InfoNCE; 0: InfoNCE alone
    listwise_candidates: int = 10  # per question, the live top-L candidates the KL term ranks
    listwise_temperature: float = 1.0  # of the LLM target softmax over those candidates' log-probs
    listwise_chunk: int = 4  # questions per backward pass of the listwise term (memory only: same gradient)
    threshold_margin: float = 0.5  # T+ >= closed-book log-prob + margin (nats per answer token)
    positive_quantile: float = 0.75  # T+ >= this quantile of the initial candidates' log-probs
    positive_window: float | None = None  # T+ >= the best initial candidate's log-prob minus this (None: no such bound)
    negative_quantile: float = 0.5  # T- <= this quantile
    vocab_head: bool | None = None  # train the vocabulary head (None: only with the bag-of-tokens first stage)
    activation: str = "elu1p"
    reindex_every: int = 0  # dense-reindex ablation: steps between full re-encodes (0: once per epoch)
    max_query_tokens: int = 64
    max_passage_tokens: int = 160
    checkpoint_every: int = 25
    device: str = "auto"  # auto: cuda when present, else cpu
    bf16_autocast: bool = False  # opt-in: bf16 autocast (about 2x on CPUs with native bf16); off keeps float32, canonical
    seed: int = 0

    def __post_init__(self):
        if self.first_stage not in FIRST_STAGES:
            raise ConfigError(f"unknown R3 first stage {self.first_stage!r}: use one of {', '.join(FIRST_STAGES)}")
        if self.positives < 0 or self.hard_negatives < 0:
            raise ConfigError("R3 positives and hard_negatives cannot be negative (positives 0 means all)")
        if min(self.num_candidates, self.k, self.epochs, self.batch_size) < 1 or self.k > self.num_candidates:
            raise ConfigError("R3 needs num_candidates >= k >= 1, epochs >= 1 and batch_size >= 1")
        if not (0.0 <= self.negative_quantile <= self.positive_quantile <= 1.0):
            raise ConfigError("R3 thresholds need 0 <= negative_quantile <= positive_quantile <= 1")
        if self.positive_window is not None and not self.positive_window >= 0:
            raise ConfigError("R3 positive_window must be >= 0 (nats below the best candidate), or None")
        if self.learning_rate <= 0 or self.temperature <= 0:
            raise ConfigError("R3 learning_rate and temperature must be positive")
        if (self.listwise_weight < 0 or self.listwise_candidates < 2 or self.listwise_temperature <= 0
                or self.listwise_chunk < 1):
            raise ConfigError("R3 listwise_weight must be >= 0, listwise_candidates >= 2, "
                              "listwise_temperature > 0 and listwise_chunk >= 1")

    @property
    def uses_vocab_head(self) -> bool:
        return self.first_stage == "bag-of-tokens" if self.vocab_head is None else bool(self.vocab_head)


# --------------------------------------------------------------------------- thresholds


def thresholds(closed_book: np.ndarray, candidate_logprobs: np.ndarray, config: R3Config) -> tuple[np.ndarray, np.ndarray]:
    """Per-question ``(T+, T-)``, fixed before training from the starting retriever's candidates.

    The documented rule, with ``c`` the closed-book log-prob and ``S`` the log-probs given each
    initial candidate: ``T+ = max(c + margin, quantile(S, positive_quantile), max(S) - positive_window)``
    (the last term only when ``positive_window`` is set) and
    ``T- = min(c + margin, quantile(S, negative_quantile))``. A positive must beat answering
    closed-book by the margin, be among the better candidates and, with a window, be within
    ``positive_window`` nats of the LLM's favourite; a negative helps less than the margin or sits
    in the worse half. ``T- <= T+`` always.
    """
    upper = np.nanquantile(candidate_logprobs, config.positive_quantile, axis=1)
    if config.positive_window is not None:
        upper = np.maximum(upper, np.nanmax(candidate_logprobs, axis=1) - config.positive_window)
    lower = np.nanquantile(candidate_logprobs, config.negative_quantile, axis=1)
    helpful = closed_book + config.threshold_margin
    return np.maximum(helpful, upper).astype(np.float32), np.minimum(helpful, lower).astype(np.float32)


# --------------------------------------------------------------------------- the retriever with its first stage


class R3Retriever:
    """The encoder plus its first stage: ``retrieve(questions)`` -> candidates, live scores, top-k."""

    def __init__(self, config: R3Config, corpus):
        from ragenv.agents.r3.model import R3Encoder
        from ragenv.encoder import resolve_encoder_path
        from ragenv.llm import resolve_device

        self.config, self.corpus = config, corpus
        self.encoder = R3Encoder(resolve_encoder_path(config.encoder), config.activation, config.max_query_tokens,
                                 config.max_passage_tokens, resolve_device(config.device), autocast=config.bf16_autocast)
        self._first_stage = None
        self._frozen_memo: dict[str, np.ndarray] = {}  # frozen first stages: question id -> candidate rows
        self.passage_matrix: np.ndarray | None = None  # dense-reindex: the (stale) full index
        self.reindex_seconds = 0.0
        self.reindexes = 0
        self.index_is_current = False  # dense-reindex: passage_matrix was encoded with the present parameters

    @property
    def first_stage(self):
        if self._first_stage is None:
            from ragenv.index import make_index

            kind = self.config.first_stage
            if kind in ("bm25s", "pyserini"):
                self._first_stage = make_index(kind, self.corpus)
            elif kind == "bm25s+dense":  # the dense index of the *starting* encoder, built once like BM25's
                self._first_stage = (make_index("bm25s", self.corpus),
                                     make_index("dense", self.corpus, encoder=self.config.encoder))
            elif kind == "bag-of-tokens":
                from ragenv.agents.r3.model import BagOfTokensIndex

                self._first_stage = BagOfTokensIndex(self.corpus, self.encoder, self.config.encoder)
            else:
                self._first_stage = make_index("dense", self.corpus, encoder=self.config.encoder)
        return self._first_stage

    def reindex(self, progress: bool = False) -> None:
        """dense-reindex ablation: re-encode the whole corpus with the current parameters."""
        started = time.perf_counter()
        texts = self.corpus.contents
        self.passage_matrix = self.encoder.encode_numpy(texts, "passage", ("dense",), batch_size=64)["dense"]
        self.reindex_seconds += time.perf_counter() - started
        self.reindexes += 1
        self.index_is_current = True

    def _frozen_candidates(self, texts: list[str]) -> np.ndarray:
        """A frozen first stage's rows: [n, m], or [n, 2m] for bm25s+dense (dense first, then BM25's new ones)."""
        m = self.config.num_candidates
        if self.config.first_stage != "bm25s+dense":
            return self.first_stage.search(texts, m)[0]
        bm25, dense = self.first_stage
        rows = np.full((len(texts), 2 * m), -1, dtype=np.int64)
        for n, (d, b) in enumerate(zip(dense.search(texts, m)[0], bm25.search(texts, m)[0])):
            union = list(dict.fromkeys(int(r) for r in (*d, *b) if r >= 0))
            rows[n, : len(union)] = union
        return rows

    def candidates(self, questions: Sequence[Question]) -> np.ndarray:
        """First-stage candidate rows [n, m] ([n, 2m] for bm25s+dense) with the current parameters (-1 pads)."""
        m = self.config.num_candidates
        kind = self.config.first_stage
        if kind in FROZEN_FIRST_STAGES:  # memoised per question
            todo = [q for q in questions if q.id not in self._frozen_memo]
            if todo:
                self._frozen_memo.update(zip((q.id for q in todo), self._frozen_candidates([q.question for q in todo])))
            return np.stack([self._frozen_memo[q.id] for q in questions])
        texts = [q.question for q in questions]
        if kind == "bag-of-tokens":
            weights = self.encoder.encode_numpy(texts, "query", ("vocab",))["vocab"]
            return self.first_stage.search_vectors(weights, m)[0]
        from ragenv.index.base import top_k_by_score

        queries = self.encoder.encode_numpy(texts, "query", ("dense",))["dense"]
        matrix = self.passage_matrix if self.passage_matrix is not None else np.asarray(self.first_stage.embeddings)
        return top_k_by_score(queries @ matrix.T, m)[0]

    def rerank_scores(self, questions: Sequence[Question], rows: np.ndarray) -> np.ndarray:
        """Live dense-head scores of each question's candidates [n, m] (-inf for -1 rows), no gradients."""
        flat = [int(r) for r in rows.reshape(-1) if r >= 0]
        unique = sorted(set(flat))
        passages = self.encoder.encode_numpy([self.corpus[r].contents for r in unique], "passage", ("dense",))["dense"]
        lookup = {r: i for i, r in enumerate(unique)}
        queries = self.encoder.encode_numpy([q.question for q in questions], "query", ("dense",))["dense"]
        scores = np.full(rows.shape, -np.inf, dtype=np.float32)
        for n in range(len(questions)):
            for j, r in enumerate(rows[n]):
                if r >= 0:
                    scores[n, j] = float(queries[n] @ passages[lookup[int(r)]])
        return scores

    def retrieve(self, questions: Sequence[Question], k: int | None = None) -> np.ndarray:
        """The top-k rows [n, k] after the live re-rank (what the agent hands the LLM)."""
        k = k or self.config.k
        rows = self.candidates(questions)
        scores = self.rerank_scores(questions, rows)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        top = np.take_along_axis(rows, order, axis=1)
        return np.where(np.take_along_axis(scores, order, axis=1) > -np.inf, top, -1)


# --------------------------------------------------------------------------- the loss


def info_nce(query: "torch.Tensor", passages: "torch.Tensor", targets: "torch.Tensor", mask: "torch.Tensor",
             temperature: float) -> "torch.Tensor":
    """Mean InfoNCE: query i against every passage, target column ``targets[i]``, ``mask`` False = excluded."""
    import torch

    logits = (query @ passages.T) / temperature
    logits = logits.masked_fill(~mask, float("-inf"))
    return torch.nn.functional.cross_entropy(logits, targets)


def _normalise(x):
    import torch

    return torch.nn.functional.normalize(x, dim=-1)


def contrastive_loss(retriever: R3Retriever, batch: list[Question], positives: list[list[int]],
                     negatives: list[list[int]], config: R3Config) -> tuple["torch.Tensor", dict]:
    """InfoNCE over the batch's passages: one row per (question, positive), its target that positive.

    The columns are every positive, then each question's hard negatives; a row's other columns
    are its negatives (in-batch included), except passages that are positives of its own question.
    """
    import torch

    corpus, encoder = retriever.corpus, retriever.encoder
    rows = [r for pos in positives for r in pos] + [r for negs in negatives for r in negs]
    owner = [n for n, pos in enumerate(positives) for _ in pos]  # the question of each InfoNCE row
    heads = ("dense", "vocab") if config.uses_vocab_head else ("dense",)
    q = encoder.encode([x.question for x in batch], "query", heads)
    p = encoder.encode([corpus[r].contents for r in rows], "passage", heads)
    device = q["dense"].device
    targets = torch.arange(len(owner))
    own = [set(positives[n]) for n in owner]
    mask = torch.tensor([[j == i or rows[j] not in own[i] for j in range(len(rows))] for i in range(len(owner))])
    index = torch.tensor(owner, device=device)
    targets, mask = targets.to(device), mask.to(device)
    parts = {"dense": info_nce(q["dense"][index], p["dense"], targets, mask, config.temperature)}
    if config.uses_vocab_head:
        bow_q = torch.from_numpy(encoder.bag_of_tokens([x.question for x in batch], "query").toarray()).to(device)
        bow_p = torch.from_numpy(encoder.bag_of_tokens([corpus[r].contents for r in rows], "passage").toarray()).to(device)
        vq, vp = _normalise(q["vocab"])[index], _normalise(p["vocab"])
        parts["vocab_pp"] = info_nce(vq, vp, targets, mask, config.temperature)
        parts["vocab_ps"] = info_nce(vq, bow_p, targets, mask, 1.0)  # the first stage's own score (unnormalised doc)
        parts["vocab_sp"] = info_nce(_normalise(bow_q)[index], vp, targets, mask, config.temperature)
    loss = sum(parts.values())
    return loss, {name: float(value.detach()) for name, value in parts.items()}


def listwise_loss(retriever: R3Retriever, batch: list[Question], candidates: list[list[int]],
                  logprobs: list[np.ndarray], config: R3Config) -> "torch.Tensor":
    """Mean KL(target || retriever) over each question's candidate list (REPLUG's LM-supervised loss).

    The target is the softmax of the LLM's single-passage answer log-probs over the question's
    candidates (temperature ``listwise_temperature``); the retriever's distribution is the softmax
    of its dense scores over the same candidates (temperature ``temperature``). Unlike InfoNCE it
    uses every scored candidate, not only those past the thresholds, and it is zero exactly when
    the retriever orders and spaces the candidates as the LLM's feedback does.
    """
    import torch

    encoder = retriever.encoder
    q = encoder.encode([x.question for x in batch], "query", ("dense",))["dense"]
    flat = [r for rows in candidates for r in rows]
    p = encoder.encode([retriever.corpus[r].contents for r in flat], "passage", ("dense",))["dense"]
    total, start = q.new_zeros(()), 0
    for n, rows in enumerate(candidates):
        scores = (p[start:start + len(rows)] @ q[n]) / config.temperature
        start += len(rows)
        target = torch.softmax(torch.as_tensor(logprobs[n], dtype=torch.float32, device=q.device)
                               / config.listwise_temperature, 0)
        total = total + torch.sum(target * (torch.log(target.clamp_min(1e-12)) - torch.log_softmax(scores.float(), 0)))
    return total / max(1, len(candidates))


# --------------------------------------------------------------------------- training


@dataclass
class TrainingState:
    step: int = 0
    epoch: int = 0
    history: list = field(default_factory=list)
    seconds: float = 0.0
    llm_sequences: int = 0


def feedback_for(env, questions: Sequence[Question], rows: np.ndarray, batch_size: int = 16,
                 progress_callback: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Closed-book [n] and single-passage [n, m] log-probs, in scorer calls of ``batch_size`` questions."""
    closed, single = [], []
    for start in range(0, len(questions), batch_size):
        chunk = list(zip(questions[start:start + batch_size], rows[start:start + batch_size].tolist()))
        c, s = env.passage_feedback(chunk)
        closed.append(c)
        single.append(s)
        if progress_callback is not None:
            progress_callback(len(chunk))
    return np.concatenate(closed), np.concatenate(single)


def prepare_feedback(env, config: R3Config, retriever: R3Retriever | None = None, progress: bool = True,
                     log: Callable[[str], None] | None = None) -> dict:
    """Score every first-stage candidate of the starting retriever (fills the cache) and fix the thresholds.

    With a frozen first stage (``bm25s``, ``pyserini``, ``bm25s+dense``) every later epoch is then
    served from the cache. ``ragenv precompute --env RAGRetrieval-v0 --single-passages`` fills the
    same entries ahead of time for the env's own first stage (BM25).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    base = env.unwrapped
    retriever = retriever or R3Retriever(config, base.corpus)
    questions = list(base.questions)
    rows = retriever.candidates(questions)
    before = base.scorer.stats.scored_sequences
    started = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task(f"R3 feedback: closed-book + {rows.shape[1]} candidates per question",
                            total=len(questions))
        closed, single = feedback_for(base, questions, rows, progress_callback=lambda n: bar.advance(task, n))
    upper, lower = thresholds(closed, single, config)
    computed = base.scorer.stats.scored_sequences - before
    if log:
        log(f"feedback for {len(questions)} questions x {rows.shape[1]} candidates: {computed} LLM sequences "
            f"computed in {time.perf_counter() - started:.1f} s")
    return {"question_ids": [q.id for q in questions], "closed_book": closed.tolist(), "upper": upper.tolist(),
            "lower": lower.tolist(), "llm_sequences_computed": int(computed),
            "seconds": time.perf_counter() - started,
            "positives_per_question": float(np.mean(np.sum(single >= upper[:, None], axis=1))),
            "negatives_per_question": float(np.mean(np.sum(single <= lower[:, None], axis=1)))}


def _identity(env, config: R3Config) -> dict:
    base = env.unwrapped
    return {"config": asdict(config), "questions": base.dataset.split_fingerprint(base.split_name),
            "limit": len(base.questions), "llm": base.scorer.cache_fingerprint, "format": AGENT_FORMAT}


def train(env, config: R3Config = R3Config(), output_dir: str | Path | None = None, *, progress: bool = True,
          resume: bool = True, log: Callable[[str], None] | None = None) -> "R3Agent":
    """Train R3 on the environment's split; save to ``output_dir`` (checkpoints there while running)."""
    import random

    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ragenv.agents.r3.agent import R3Agent

    log = log or (lambda _message: None)
    base = env.unwrapped
    torch.manual_seed(config.seed)
    retriever = R3Retriever(config, base.corpus)
    output = Path(output_dir) if output_dir is not None else None
    checkpoint = _Checkpoint(output / "checkpoint", _identity(env, config)) if output is not None else None

    prepared = checkpoint.load_feedback() if (checkpoint and resume) else None
    if prepared is None:
        prepared = prepare_feedback(env, config, retriever, progress=progress, log=log)
        if checkpoint:
            checkpoint.save_feedback(prepared)
    upper = dict(zip(prepared["question_ids"], prepared["upper"]))
    lower = dict(zip(prepared["question_ids"], prepared["lower"]))

    optimizer = torch.optim.AdamW(retriever.encoder.module.parameters(), lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    state = TrainingState()
    saved = checkpoint.load() if (checkpoint and resume) else None
    if saved is not None:
        retriever.encoder.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = saved["state"]
        torch.set_rng_state(saved["torch_rng"])
        random.setstate(saved["python_rng"])
        log(f"resuming an interrupted R3 run at step {state.step} (epoch {state.epoch + 1})")

    questions = list(base.questions)
    steps_per_epoch = math.ceil(len(questions) / config.batch_size)
    total = steps_per_epoch * config.epochs
    module = retriever.encoder.module
    module.train()
    started = time.perf_counter() - state.seconds
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[status]}"))
    with Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task("R3 training", total=total, completed=state.step, status="")
        while state.step < total:
            epoch, within = divmod(state.step, steps_per_epoch)
            state.epoch = epoch
            if config.first_stage == "dense-reindex" and (
                    (config.reindex_every and state.step % config.reindex_every == 0 and state.step > 0)
                    or (not config.reindex_every and within == 0 and state.step > 0)):
                module.eval()
                retriever.reindex()
                module.train()
            order = np.random.default_rng([config.seed, epoch]).permutation(len(questions))
            batch = [questions[i] for i in order[within * config.batch_size:(within + 1) * config.batch_size]]
            rng = np.random.default_rng([config.seed, epoch, within])
            record = _train_step(retriever, base, batch, upper, lower, optimizer, rng, config)
            retriever.index_is_current = False  # the parameters moved; a full index is now stale
            state.llm_sequences += record["llm_sequences"]
            state.step += 1
            state.seconds = time.perf_counter() - started
            state.history.append({"step": state.step, "epoch": epoch + 1, **record})
            bar.update(task, completed=state.step,
                       status=f"loss {record['loss']:.3f} top-{config.k} log-prob {record['topk_logprob']:.3f}")
            if checkpoint and (state.step % config.checkpoint_every == 0 or state.step % steps_per_epoch == 0
                               or state.step == total):
                checkpoint.save(retriever, optimizer, state)
            if state.step % steps_per_epoch == 0:
                last = [h for h in state.history if h["epoch"] == epoch + 1]
                log(f"epoch {epoch + 1}/{config.epochs}: loss {np.mean([h['loss'] for h in last if h['loss'] == h['loss']]):.3f}, "
                    f"on-policy top-{config.k} answer log-prob {np.mean([h['topk_logprob'] for h in last]):.3f}, "
                    f"{sum(h['llm_sequences'] for h in last)} new LLM sequences, {state.seconds:.0f} s")
    module.eval()
    training = {"steps": state.step, "epochs": config.epochs, "questions": len(questions),
                "seconds": state.seconds, "feedback_seconds": prepared["seconds"],
                "feedback_llm_sequences": prepared["llm_sequences_computed"],
                "training_llm_sequences": state.llm_sequences, "reindexes": retriever.reindexes,
                "reindex_seconds": retriever.reindex_seconds,
                "positives_per_question": prepared["positives_per_question"],
                "negatives_per_question": prepared["negatives_per_question"],
                "dataset": base.dataset.name, "split": base.split_name, "llm": base.scorer.config.name,
                "history": state.history}
    agent = R3Agent(retriever, {"training": training}, base)
    if output is not None:
        agent.save(output)
        checkpoint.remove()
    return agent


_LIBC = None


def _return_freed_memory() -> None:
    """Hand the heap pages freed by a step back to the OS (glibc's malloc_trim; a no-op elsewhere).

    Each step's activations have other shapes, so glibc's arenas fragment and a training process's
    resident memory otherwise creeps up by about 0.5 GiB per step on CPU (measured: 3.5 -> 6.7 GiB
    over 5 steps without, flat at 1.1 GiB with it).
    """
    global _LIBC
    try:
        _LIBC = _LIBC or ctypes.CDLL("libc.so.6")
        _LIBC.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _train_step(retriever: R3Retriever, env, batch: list[Question], upper: dict, lower: dict, optimizer, rng,
                config: R3Config) -> dict:
    """One on-policy step: retrieve, get feedback, label, update. Returns its record for the history."""
    import torch

    before = env.scorer.stats.scored_sequences
    module = retriever.encoder.module
    module.eval()  # the live ranking is measured without dropout
    rows = retriever.candidates(batch)
    live = retriever.rerank_scores(batch, rows)
    module.train()
    _, logprobs = env.passage_feedback(list(zip(batch, rows.tolist())))
    order = np.argsort(-live, axis=1, kind="stable")
    top = np.take_along_axis(logprobs, order[:, : config.k], axis=1)
    chosen, positives, negatives = [], [], []
    for n, question in enumerate(batch):
        valid = rows[n] >= 0
        pos = np.flatnonzero(valid & (logprobs[n] >= upper[question.id]))
        neg = [j for j in order[n] if valid[j] and logprobs[n, j] <= lower[question.id]][: config.hard_negatives]
        if len(pos) == 0:
            continue  # no passage above T+: nothing to pull towards
        chosen.append(question)
        if config.positives == 1:  # the original single draw: runs trained before the option reproduce
            drawn = [rng.choice(pos)]
        else:
            drawn = rng.permutation(pos)[: config.positives or None]
        positives.append([int(rows[n, j]) for j in drawn])
        negatives.append([int(rows[n, j]) for j in neg])
    record = {"questions_with_positive": len(chosen), "topk_logprob": float(np.nanmean(top)),
              "llm_sequences": int(env.scorer.stats.scored_sequences - before), "loss": float("nan")}
    optimizer.zero_grad(set_to_none=True)
    loss, parts = None, {}
    if chosen:
        contrastive, parts = contrastive_loss(retriever, chosen, positives, negatives, config)
        contrastive.backward()  # before the listwise term's forward passes: one graph alive at a time
        loss = float(contrastive.detach())
    if config.listwise_weight > 0:  # every question with >= 2 scored candidates, in the live order
        ranked, lists, targets = [], [], []
        for n, question in enumerate(batch):
            kept = [j for j in order[n] if rows[n, j] >= 0 and np.isfinite(logprobs[n, j])][: config.listwise_candidates]
            if len(kept) >= 2:
                ranked.append(question)
                lists.append([int(rows[n, j]) for j in kept])
                targets.append(logprobs[n, kept])
        if ranked:  # in chunks of questions, gradients accumulated: the same gradient as one pass, less memory
            kl_sum = 0.0
            for start in range(0, len(ranked), config.listwise_chunk):
                part = slice(start, start + config.listwise_chunk)
                kl = listwise_loss(retriever, ranked[part], lists[part], targets[part], config)
                share = len(ranked[part]) / len(ranked)
                (config.listwise_weight * share * kl).backward()
                kl_sum += float(kl.detach()) * share
            parts["listwise"] = kl_sum
            loss = (loss or 0.0) + config.listwise_weight * kl_sum
    if loss is not None:
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        optimizer.step()
        record.update(loss=loss, **parts)
    _return_freed_memory()
    return record


class _Checkpoint:
    """``checkpoint/``: the feedback and thresholds (once), then weights, optimizer and progress; atomic swaps."""

    def __init__(self, folder: Path, identity: dict):
        self.folder, self.identity = folder, identity

    def _read(self, name: str):
        try:
            with open(self.folder / name, "rb") as handle:
                payload = pickle.load(handle)
        except Exception:  # noqa: BLE001 - missing or torn by a crash: not used
            return None
        return payload["data"] if payload.get("identity") == self.identity else None

    def _write(self, name: str, data) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / (name + ".tmp")
        with open(tmp, "wb") as handle:
            pickle.dump({"identity": self.identity, "data": data}, handle)
        tmp.replace(self.folder / name)

    def load_feedback(self) -> dict | None:
        return self._read("feedback.pkl")

    def save_feedback(self, prepared: dict) -> None:
        self._write("feedback.pkl", prepared)

    def load(self) -> dict | None:
        return self._read("state.pkl")

    def save(self, retriever: R3Retriever, optimizer, state: TrainingState) -> None:
        import random

        import torch

        self._write("state.pkl", {"model": retriever.encoder.state_dict(), "optimizer": optimizer.state_dict(),
                                  "state": state, "torch_rng": torch.get_rng_state(), "python_rng": random.getstate()})

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def load_config(folder: str | Path) -> R3Config:
    """The R3Config saved with a trained agent (ConfigError when the folder holds none)."""
    path = Path(folder).expanduser() / "agent.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        raise ConfigError(f"no trained R3 agent in {str(path.parent)!r} (agent.json is missing or unreadable); "
                          "train one with `ragenv train r3 --output DIR`") from None
    if meta.get("kind") != "r3" or meta.get("format") != AGENT_FORMAT:
        raise RagenvError(f"{path} is not an R3 agent of format {AGENT_FORMAT}; retrain it with `ragenv train r3`")
    return R3Config(**meta["config"])
