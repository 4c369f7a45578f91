"""R3's labels and losses: which candidates are positives and negatives, and the loss they give.

- :func:`label_batch` (pure): the per-question thresholds turn the frozen LLM's single-passage
  log-probs into positives (above ``T+``) and hard negatives (below ``T-``, ranked highest by
  the live model: on-policy), at most ``hard_negatives`` of them;
- :func:`contrastive_loss`: InfoNCE, each positive against its question's hard negatives and
  every other passage of the batch (in-batch negatives);
- :func:`listwise_loss`: the optional REPLUG-style KL term over the live top-L candidates;
- :func:`backward_loss`: both terms' gradients, one graph alive at a time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ragenv.data import Question

if TYPE_CHECKING:
    import torch

    from ragenv.agents.r3.training import R3Config, R3Retriever


@dataclass
class Labels:
    """A batch's training targets: the questions with at least one positive, and their corpus rows."""

    questions: list[Question]
    positives: list[list[int]]  # per question, the positives drawn this step
    negatives: list[list[int]]  # per question, its hard negatives in the live order


@dataclass
class RankedLists:
    """The listwise term's input: per question, its live top-L scored candidates and their LLM log-probs."""

    questions: list[Question]
    rows: list[list[int]]
    logprobs: list[np.ndarray]


def label_batch(batch: list[Question], rows: np.ndarray, logprobs: np.ndarray, order: np.ndarray,
                upper: dict[str, float], lower: dict[str, float], config: "R3Config",
                rng: np.random.Generator) -> Labels:
    """Label each question's candidates by its thresholds (``rows``/``logprobs`` [n, m], ``order`` the live ranking).

    Positives: ``logprob >= T+``; ``positives`` of them are drawn with ``rng`` (0: all, in a random
    order). Negatives: ``logprob <= T-``, the ``hard_negatives`` the live model ranks highest.
    A question with no positive is left out: there is nothing to pull towards.
    """
    labels = Labels([], [], [])
    for n, question in enumerate(batch):
        valid = rows[n] >= 0
        pos = np.flatnonzero(valid & (logprobs[n] >= upper[question.id]))
        neg = [j for j in order[n] if valid[j] and logprobs[n, j] <= lower[question.id]][: config.hard_negatives]
        if len(pos) == 0:
            continue
        if config.positives == 1:  # the original single draw: runs trained before the option reproduce
            drawn = [rng.choice(pos)]
        else:
            drawn = rng.permutation(pos)[: config.positives or None]
        labels.questions.append(question)
        labels.positives.append([int(rows[n, j]) for j in drawn])
        labels.negatives.append([int(rows[n, j]) for j in neg])
    return labels


def ranked_lists(batch: list[Question], rows: np.ndarray, logprobs: np.ndarray, order: np.ndarray,
                 config: "R3Config") -> RankedLists:
    """Every question with at least 2 scored candidates: its live top ``listwise_candidates``."""
    lists = RankedLists([], [], [])
    for n, question in enumerate(batch):
        kept = [j for j in order[n] if rows[n, j] >= 0 and np.isfinite(logprobs[n, j])][: config.listwise_candidates]
        if len(kept) >= 2:
            lists.questions.append(question)
            lists.rows.append([int(rows[n, j]) for j in kept])
            lists.logprobs.append(logprobs[n, kept])
    return lists


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


def contrastive_loss(retriever: "R3Retriever", batch: list[Question], positives: list[list[int]],
                     negatives: list[list[int]], config: "R3Config") -> tuple["torch.Tensor", dict]:
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
        bow_p = encoder.bag_of_tokens([corpus[r].contents for r in rows], "passage").toarray()
        bow_p = torch.from_numpy(bow_p).to(device)
        vq, vp = _normalise(q["vocab"])[index], _normalise(p["vocab"])
        parts["vocab_pp"] = info_nce(vq, vp, targets, mask, config.temperature)
        parts["vocab_ps"] = info_nce(vq, bow_p, targets, mask, 1.0)  # the first stage's own score (unnormalised doc)
        parts["vocab_sp"] = info_nce(_normalise(bow_q)[index], vp, targets, mask, config.temperature)
    loss = sum(parts.values())
    return loss, {name: float(value.detach()) for name, value in parts.items()}


def listwise_loss(retriever: "R3Retriever", batch: list[Question], candidates: list[list[int]],
                  logprobs: list[np.ndarray], config: "R3Config") -> "torch.Tensor":
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


def backward_loss(retriever: "R3Retriever", labels: Labels, lists: RankedLists | None,
                  config: "R3Config") -> tuple[float | None, dict]:
    """Accumulate the gradients of InfoNCE plus ``listwise_weight`` x KL; returns the loss value and its parts.

    InfoNCE's backward runs before the listwise term's forward passes, and the listwise term
    runs in chunks of ``listwise_chunk`` questions: one graph is alive at a time, the gradient is
    the same as one pass. The loss is None when no term applied (no positive, no list).
    """
    loss, parts = None, {}
    if labels.questions:
        contrastive, parts = contrastive_loss(retriever, labels.questions, labels.positives, labels.negatives, config)
        contrastive.backward()
        loss = float(contrastive.detach())
    if lists is not None and lists.questions:
        kl_sum = 0.0
        for start in range(0, len(lists.questions), config.listwise_chunk):
            part = slice(start, start + config.listwise_chunk)
            kl = listwise_loss(retriever, lists.questions[part], lists.rows[part], lists.logprobs[part], config)
            share = len(lists.questions[part]) / len(lists.questions)
            (config.listwise_weight * share * kl).backward()
            kl_sum += float(kl.detach()) * share
        parts["listwise"] = kl_sum
        loss = (loss or 0.0) + config.listwise_weight * kl_sum
    return loss, parts
