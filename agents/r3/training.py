"""R3 training: reinforced contrastive learning on RAGRetrieval-v0's own feedback (arXiv 2510.24652).

One training step (:func:`train_step`), for a batch of questions:

1. **Retrieve** with the current parameters: the first stage (:mod:`.first_stage`) gives the
   top-``m`` candidates, then the live dense head re-ranks them.
2. **Environment feedback**: the frozen LLM's probability of the gold answer given the
   question and each single candidate (``RAGRetrievalEnv.passage_feedback``: shared scorer,
   reward cache). Misses are scored on the spot and counted in the history.
3. **Label** with the per-question thresholds fixed before training (:func:`thresholds`):
   above ``T+`` positive, below ``T-`` negative, in between unused (:func:`.losses.label_batch`).
4. **Update** with InfoNCE (:mod:`.losses`): each question's positive against its hardest
   negatives under the current ranking (on-policy) and every other passage of the batch
   (in-batch negatives), plus the optional listwise term.

:func:`train` runs the steps over shuffled batches, epoch after epoch. Checkpoints
(``DIR/checkpoint/``: weights, optimizer, step, history, generators) are written every
``checkpoint_every`` steps and at each epoch end; a killed run resumes exactly.
"""
from __future__ import annotations

import ctypes
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from ragenv.agents.r3.first_stage import FIRST_STAGES, FirstStage, make_first_stage
from ragenv.agents.r3.losses import backward_loss, label_batch, ranked_lists
from ragenv.checkpoint import Checkpoint
from ragenv.data import Question
from ragenv.errors import ConfigError, RagenvError
from ragenv.progress import progress_bar
from ragenv.spec import corpus_record

if TYPE_CHECKING:
    from ragenv.agents.r3.agent import R3Agent

AGENT_FORMAT = 1


@dataclass(frozen=True)
class R3Config:
    """Everything that determines an R3 run; the defaults produce the README's result."""

    encoder: str = "all-MiniLM-L6-v2"  # the encoder R3 starts from (the dense baseline's)
    first_stage: str = "bm25s+dense"  # bm25s, pyserini, bm25s+dense (frozen union), bag-of-tokens or dense-reindex
    num_candidates: int = 20  # m: first-stage candidates re-ranked live and scored by the LLM (bm25s+dense: m each)
    k: int = 3  # passages handed to the LLM at evaluation
    epochs: int = 2  # passes over the training questions
    batch_size: int = 16  # questions per step
    learning_rate: float = 5e-5  # AdamW; few steps (2 epochs of 200 questions), so higher than the usual 2e-5
    weight_decay: float = 0.01  # AdamW weight decay
    temperature: float = 0.05  # of the InfoNCE and retriever softmaxes
    hard_negatives: int = 3  # per question, the negatives the current model ranks highest
    positives: int = 1  # per question and step, drawn among its positives, each its own InfoNCE row (0: all)
    listwise_weight: float = 0.0  # weight of the listwise KL term (REPLUG-style) added to InfoNCE (0: off)
    listwise_candidates: int = 10  # per question, the live top-L candidates the KL term ranks
    listwise_temperature: float = 1.0  # of the LLM target softmax over those candidates' log-probs
    listwise_chunk: int = 4  # questions per backward pass of the listwise term (memory only: same gradient)
    threshold_margin: float = 0.5  # T+ >= closed-book log-prob + margin (nats per answer token)
    positive_quantile: float = 0.75  # T+ >= this quantile of the initial candidates' log-probs
    positive_window: float | None = None  # T+ >= the best initial candidate's log-prob minus this (unset: no bound)
    negative_quantile: float = 0.5  # T- <= this quantile of the initial candidates' log-probs
    vocab_head: bool | None = None  # train the vocabulary head (unset: only with the bag-of-tokens first stage)
    activation: str = "elu1p"  # of the vocabulary head: elu1p or relu_log1p
    reindex_every: int = 0  # dense-reindex ablation: steps between full re-encodes (0: once per epoch)
    max_query_tokens: int = 64  # query truncation of the encoder
    max_passage_tokens: int = 160  # passage truncation of the encoder
    checkpoint_every: int = 25  # steps between checkpoints (and at each epoch end)
    device: str = "auto"  # auto: cuda when present, else cpu
    bf16_autocast: bool = False  # opt-in bf16 autocast (about 2x on CPUs with native bf16); off: float32, canonical
    seed: int = 0  # of the question order and the positive draws

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


def thresholds(closed_book: np.ndarray, candidate_logprobs: np.ndarray,
               config: R3Config) -> tuple[np.ndarray, np.ndarray]:
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
        from ragenv.numerics import resolve_device

        self.config, self.corpus = config, corpus
        self.encoder = R3Encoder(resolve_encoder_path(config.encoder), config.activation, config.max_query_tokens,
                                 config.max_passage_tokens, resolve_device(config.device),
                                 autocast=config.bf16_autocast)
        self._first_stage: FirstStage | None = None

    @property
    def first_stage(self) -> FirstStage:
        """Built on first use (a BM25 or dense index is built once per corpus, then read from the cache)."""
        if self._first_stage is None:
            self._first_stage = make_first_stage(self.config.first_stage, self.corpus, self.encoder,
                                                 self.config.encoder, self.config.num_candidates,
                                                 reindex_every=self.config.reindex_every)
        return self._first_stage

    def candidates(self, questions: Sequence[Question]) -> np.ndarray:
        """First-stage candidate rows [n, m] ([n, 2m] for bm25s+dense) with the current parameters (-1 pads)."""
        return self.first_stage.candidates(questions)

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


# --------------------------------------------------------------------------- feedback and thresholds


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
    base = env.unwrapped
    retriever = retriever or R3Retriever(config, base.corpus)
    questions = list(base.questions)
    rows = retriever.candidates(questions)
    before = base.scorer.stats.scored_sequences
    started = time.perf_counter()
    with progress_bar(disable=not progress) as bar:
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


# --------------------------------------------------------------------------- training


@dataclass
class TrainingState:
    step: int = 0
    epoch: int = 0
    history: list = field(default_factory=list)
    seconds: float = 0.0
    llm_sequences: int = 0


def train(env, config: R3Config = R3Config(), output_dir: str | Path | None = None, *, progress: bool = True,
          resume: bool = True, log: Callable[[str], None] | None = None) -> "R3Agent":
    """Train R3 on the environment's split; save to ``output_dir`` (checkpoints there while running)."""
    import torch

    from ragenv.agents.r3.agent import R3Agent

    log = log or (lambda _message: None)
    base = env.unwrapped
    torch.manual_seed(config.seed)
    retriever = R3Retriever(config, base.corpus)
    output = Path(output_dir) if output_dir is not None else None
    checkpoint = _R3Checkpoint(output / "checkpoint", _identity(env, config)) if output is not None else None
    prepared = _prepared_feedback(env, config, retriever, checkpoint, resume, progress, log)
    optimizer = torch.optim.AdamW(retriever.encoder.module.parameters(), lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    state = (checkpoint.restore(retriever, optimizer, log) if checkpoint and resume else None) or TrainingState()
    questions = list(base.questions)
    steps_per_epoch = math.ceil(len(questions) / config.batch_size)
    total = steps_per_epoch * config.epochs
    retriever.encoder.module.train()
    started = time.perf_counter() - state.seconds
    with progress_bar("{task.fields[status]}", disable=not progress) as bar:
        task = bar.add_task("R3 training", total=total, completed=state.step, status="")
        while state.step < total:
            epoch, within = divmod(state.step, steps_per_epoch)
            state.epoch = epoch
            retriever.first_stage.before_step(state.step, within)
            batch, rng = _batch(questions, config, epoch, within)
            record = train_step(retriever, base, batch, prepared["upper"], prepared["lower"], optimizer, rng, config)
            retriever.first_stage.parameters_changed()
            state.llm_sequences += record["llm_sequences"]
            state.step += 1
            state.seconds = time.perf_counter() - started
            state.history.append({"step": state.step, "epoch": epoch + 1, **record})
            bar.update(task, completed=state.step,
                       status=f"loss {record['loss']:.3f} top-{config.k} log-prob {record['topk_logprob']:.3f}")
            epoch_done = state.step % steps_per_epoch == 0
            if checkpoint and (state.step % config.checkpoint_every == 0 or epoch_done or state.step == total):
                checkpoint.save(retriever, optimizer, state)
            if epoch_done:
                log(_epoch_summary(state, epoch, config))
    retriever.encoder.module.eval()
    agent = R3Agent(retriever, {"training": _training_record(base, config, prepared, state, retriever)}, base)
    if output is not None:
        agent.save(output)
        checkpoint.remove()
    return agent


def train_step(retriever: R3Retriever, env, batch: list[Question], upper: dict, lower: dict, optimizer,
               rng: np.random.Generator, config: R3Config) -> dict:
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
    labels = label_batch(batch, rows, logprobs, order, upper, lower, config, rng)
    record = {"questions_with_positive": len(labels.questions), "topk_logprob": float(np.nanmean(top)),
              "llm_sequences": int(env.scorer.stats.scored_sequences - before), "loss": float("nan")}
    optimizer.zero_grad(set_to_none=True)
    lists = ranked_lists(batch, rows, logprobs, order, config) if config.listwise_weight > 0 else None
    loss, parts = backward_loss(retriever, labels, lists, config)
    if loss is not None:
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        optimizer.step()
        record.update(loss=loss, **parts)
    _return_freed_memory()
    return record


def _batch(questions: list[Question], config: R3Config, epoch: int, within: int) -> tuple[list[Question],
                                                                                          np.random.Generator]:
    """Step ``within`` of ``epoch``: its questions (a fresh permutation per epoch) and its label generator."""
    order = np.random.default_rng([config.seed, epoch]).permutation(len(questions))
    batch = [questions[i] for i in order[within * config.batch_size:(within + 1) * config.batch_size]]
    return batch, np.random.default_rng([config.seed, epoch, within])


def _prepared_feedback(env, config: R3Config, retriever: R3Retriever, checkpoint: "_R3Checkpoint | None",
                       resume: bool, progress: bool, log: Callable[[str], None]) -> dict:
    """The thresholds (from the checkpoint when resuming), as ``upper``/``lower`` dicts by question id."""
    prepared = checkpoint.read("feedback.pkl") if checkpoint and resume else None
    if prepared is None:
        prepared = prepare_feedback(env, config, retriever, progress=progress, log=log)
        if checkpoint:
            checkpoint.write("feedback.pkl", prepared)
    ids = prepared["question_ids"]
    return {**prepared, "upper": dict(zip(ids, prepared["upper"])), "lower": dict(zip(ids, prepared["lower"]))}


def _epoch_summary(state: TrainingState, epoch: int, config: R3Config) -> str:
    last = [h for h in state.history if h["epoch"] == epoch + 1]
    losses = [h["loss"] for h in last if h["loss"] == h["loss"]]  # NaN: a step without a positive
    return (f"epoch {epoch + 1}/{config.epochs}: loss {np.mean(losses):.3f}, "
            f"on-policy top-{config.k} answer log-prob {np.mean([h['topk_logprob'] for h in last]):.3f}, "
            f"{sum(h['llm_sequences'] for h in last)} new LLM sequences, {state.seconds:.0f} s")


def _training_record(base, config: R3Config, prepared: dict, state: TrainingState, retriever: R3Retriever) -> dict:
    return {"steps": state.step, "epochs": config.epochs, "questions": len(base.questions),
            "seconds": state.seconds, "feedback_seconds": prepared["seconds"],
            "feedback_llm_sequences": prepared["llm_sequences_computed"],
            "training_llm_sequences": state.llm_sequences, **retriever.first_stage.record(),
            "positives_per_question": prepared["positives_per_question"],
            "negatives_per_question": prepared["negatives_per_question"],
            "dataset": base.dataset.name, **corpus_record(base.corpus), "split": base.split_name,
            "llm": base.scorer.config.name, "history": state.history}


def _identity(env, config: R3Config) -> dict:
    base = env.unwrapped
    return {"config": asdict(config), "questions": base.dataset.split_fingerprint(base.split_name),
            "limit": len(base.questions), "llm": base.scorer.cache_fingerprint, "format": AGENT_FORMAT}


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


class _R3Checkpoint(Checkpoint):
    """``checkpoint/``: the feedback and thresholds (once), then weights, optimizer, progress and generators."""

    def save(self, retriever: R3Retriever, optimizer, state: TrainingState) -> None:
        import random

        import torch

        self.write("state.pkl", {"model": retriever.encoder.state_dict(), "optimizer": optimizer.state_dict(),
                                 "state": state, "torch_rng": torch.get_rng_state(), "python_rng": random.getstate()})

    def restore(self, retriever: R3Retriever, optimizer, log: Callable[[str], None]) -> TrainingState | None:
        """Load the saved step into ``retriever`` and ``optimizer``; its TrainingState, or None."""
        import random

        import torch

        saved = self.read("state.pkl")
        if saved is None:
            return None
        retriever.encoder.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["torch_rng"])
        random.setstate(saved["python_rng"])
        state = saved["state"]
        log(f"resuming an interrupted R3 run at step {state.step} (epoch {state.epoch + 1})")
        return state


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
