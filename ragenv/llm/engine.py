"""The torch side of the frozen LLM: load, tokenize, batch by length, prefill, score, decode greedily.

The only module of :mod:`ragenv.llm` that imports torch (lazily, so a fully cached run never
does). It knows nothing of the reward cache or the requests: it takes token ids and returns
log-probabilities and answer texts, counting its work in :class:`LLMStats`.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ragenv.errors import ConfigError
from ragenv.llm.models import LLMConfig, resolved_device, resolved_dtype_name
from ragenv.numerics import configure_device_precision, resolve_dtype, slow_dtype_warning

AliasScore = tuple[float, float, int]  # (mean, sum, number of tokens) of one answer alias


@dataclass
class LLMStats:
    """What the scorer did (for info dicts and benchmarks)."""

    forward_passes: int = 0
    scored_sequences: int = 0
    generated_sequences: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    model_loads: int = 0


class Engine:
    """One frozen causal LM and its tokenizer, loaded on first use from the folder ``locate()`` returns."""

    def __init__(self, config: LLMConfig, stats: LLMStats, locate: Callable[[], str]):
        self.config = config
        self.stats = stats
        self._locate = locate  # the folder or hub id to load (a GGUF model is converted there once)
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    @property
    def device(self) -> str:
        return resolved_device(self.config)

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self.load()
        return self._tokenizer

    @property
    def model(self):
        if self._model is None:
            self.load()
        return self._model

    # ------------------------------------------------------------------ loading
    def load(self) -> None:
        """Load tokenizer and model once (GGUF: de-quantise once, then reuse the safetensors copy)."""
        with self._lock:
            if self._model is not None:
                return
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
            dtype_name = resolved_dtype_name(self.config)
            dtype = resolve_dtype(self.config.dtype, self.device)
            configure_device_precision(self.device, dtype_name)
            slow = slow_dtype_warning(dtype_name, self.device)
            if slow:
                import warnings

                warnings.warn(slow, stacklevel=4)
            source = self._locate()
            try:
                tokenizer = AutoTokenizer.from_pretrained(source)
                # Eager attention is faster than SDPA for these small models on CPU (measured: 2432 vs
                # 1326 tokens/s, Gemma 3 270M, bf16, batch 8 x 300); SDPA on GPUs.
                attn = "sdpa" if self.device.startswith("cuda") else "eager"
                model: Any = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, attn_implementation=attn)
            except OSError as exc:
                raise ConfigError(f"cannot load LLM {self.config.name!r}: {exc}".splitlines()[0]) from None
            model.to(self.device).eval()
            for param in model.parameters():
                param.requires_grad_(False)
            _fold_output_head(model)
            if tokenizer.pad_token_id is None:
                tokenizer.pad_token = tokenizer.eos_token
            tokenizer.padding_side = "left"
            self._tokenizer, self._model = tokenizer, model
            self.stats.model_loads += 1
            torch.set_grad_enabled(True)  # leave global state as found; inference uses inference_mode

    # ------------------------------------------------------------------ tokens
    def prompt_ids(self, message: str) -> list[int]:
        """Token ids of a user message: the chat template with a generation prompt, else ``message + Answer:``."""
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template([{"role": "user", "content": message}], add_generation_prompt=True,
                                          tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return list(ids)
        return tok(message + "\nAnswer:", add_special_tokens=True)["input_ids"]

    def answer_ids(self, answer: str) -> list[int]:
        return self.tokenizer(answer, add_special_tokens=False)["input_ids"]

    @property
    def context_length(self) -> int | None:
        """The most tokens (prompt plus answer) the model reads: its ``max_position_embeddings``."""
        config = self.model.config
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        value = (getattr(text_config, "max_position_embeddings", None)
                 or getattr(config, "max_position_embeddings", None))
        return int(value) if value else None

    # ------------------------------------------------------------------ batching
    def batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices grouped into length-sorted batches under the padded-token budget."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        batches: list[list[int]] = []
        current: list[int] = []
        longest = 0
        for i in order:
            longest_if_added = max(longest, lengths[i])
            if current and longest_if_added * (len(current) + 1) > self.config.max_batch_tokens:
                batches.append(current)
                current, longest_if_added = [], lengths[i]
            current.append(i)
            longest = longest_if_added
        if current:
            batches.append(current)
        return batches

    def left_pad(self, sequences: Sequence[list[int]]):
        """Token ids and attention mask, left-padded to the longest sequence, on the device."""
        import torch

        width = max(len(s) for s in sequences)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(sequences), width), pad, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, seq in enumerate(sequences):
            ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq):] = 1
        self.stats.tokens += int(mask.sum())
        self.stats.padded_tokens += ids.numel()
        return ids.to(self.device), mask.to(self.device)

    # ------------------------------------------------------------------ forward
    def forward_prompts(self, prompts: Sequence[list[int]], aliases: Sequence[Sequence[list[int]]],
                        generate: Sequence[bool]) -> tuple[list[list[AliasScore]], list[str | None]]:
        """Score every alias and greedily answer, running each prompt through the model once.

        Per length-bucketed batch: one prefill of the (left-padded) prompts fills a KV cache; the
        answer aliases are scored as continuations of a copy of that cache (rows repeated per
        alias), and the greedy answer is decoded from the cache itself, stopping at the first
        completed line. Returns per prompt the (mean, sum, n) of each alias and the answer text.
        """
        import copy

        import torch

        scores: list[list[AliasScore]] = [[] for _ in prompts]
        texts: list[str | None] = [None] * len(prompts)
        model, tok = self.model, self.tokenizer
        alias_tokens = [max((len(a) for a in al), default=0) for al in aliases]
        budget = [len(p) + max(alias_tokens[i], self.config.max_new_tokens if generate[i] else 0)
                  for i, p in enumerate(prompts)]
        with torch.inference_mode():
            for batch in self.batches(budget):
                ids, mask = self.left_pad([prompts[i] for i in batch])
                width = ids.shape[1]
                lengths = mask.sum(-1)
                out = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                            use_cache=True, logits_to_keep=1)
                self.stats.forward_passes += 1
                last_logprobs = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
                cache = _output_cache(out)
                rep = [(b, a) for b, i in enumerate(batch) for a in aliases[i] if a]
                if rep:
                    alias_cache = copy.deepcopy(cache) if any(generate[i] for i in batch) else cache
                    rows = torch.tensor([b for b, _ in rep], device=ids.device)
                    alias_cache.reorder_cache(rows)
                    span = max(len(a) for _, a in rep)
                    alias_ids = torch.full((len(rep), span), tok.pad_token_id, dtype=torch.long, device=ids.device)
                    alias_mask = torch.zeros((len(rep), span), dtype=torch.long, device=ids.device)
                    for r, (_, a) in enumerate(rep):
                        alias_ids[r, : len(a)] = torch.tensor(a, device=ids.device)
                        alias_mask[r, : len(a)] = 1
                    steps = torch.arange(span, device=ids.device)
                    cont = model(input_ids=alias_ids, attention_mask=torch.cat([mask[rows], alias_mask], dim=1),
                                 position_ids=lengths[rows, None] + steps, cache_position=width + steps,
                                 use_cache=True, **_cache_argument(model, alias_cache))
                    self.stats.forward_passes += 1
                    self.stats.tokens += int(alias_mask.sum())
                    cont_logprobs = torch.log_softmax(cont.logits.float(), dim=-1)
                    for r, (b, a) in enumerate(rep):
                        target = alias_ids[r, : len(a)]
                        first = last_logprobs[b, target[0]]
                        rest = cont_logprobs[r, : len(a) - 1].gather(-1, target[1:, None]).sum() if len(a) > 1 else 0.0
                        total = float(first + rest)
                        scores[batch[b]].append((total / len(a), total, len(a)))
                    del alias_cache
                    self.stats.scored_sequences += len(rep)
                if any(generate[i] for i in batch):
                    self.greedy(batch, last_logprobs, cache, mask, lengths, texts)
                for b, i in enumerate(batch):  # empty aliases score -inf, in their original order
                    it = iter(scores[i])
                    scores[i] = [next(it) if a else (float("-inf"), float("-inf"), 0) for a in aliases[i]]
        return scores, texts

    def greedy(self, batch, last_logprobs, cache, mask, lengths, texts) -> None:
        """Greedy decoding from a prefilled cache until every row has finished its first line."""
        import torch

        tok, model = self.tokenizer, self.model
        eos = model.generation_config.eos_token_id
        stop_ids = {tok.eos_token_id, tok.pad_token_id, *(eos if isinstance(eos, list) else [eos])} - {None}
        width = mask.shape[1]
        produced: list[list[int]] = [[] for _ in batch]
        done = [False] * len(batch)
        next_ids = last_logprobs.argmax(-1)
        for step in range(self.config.max_new_tokens):
            for b in range(len(batch)):
                if done[b]:
                    continue
                token = int(next_ids[b])
                if token in stop_ids:
                    done[b] = True
                    continue
                produced[b].append(token)
                text = tok.decode(produced[b], skip_special_tokens=True)
                if "\n" in text.lstrip():
                    done[b] = True
            if all(done) or step == self.config.max_new_tokens - 1:
                break
            mask = torch.cat([mask, torch.ones((len(batch), 1), dtype=mask.dtype, device=mask.device)], dim=1)
            out = model(input_ids=next_ids[:, None], attention_mask=mask, position_ids=(lengths + step)[:, None],
                        cache_position=torch.tensor([width + step], device=mask.device), use_cache=True,
                        **_cache_argument(model, cache))
            self.stats.forward_passes += 1
            next_ids = out.logits[:, -1].argmax(-1)
        for b, i in enumerate(batch):
            texts[i] = tok.decode(produced[b], skip_special_tokens=True).strip().split("\n")[0].strip()
        self.stats.generated_sequences += len(batch)


def _fold_output_head(model) -> None:
    """Run the output projection as one 2-D matrix product.

    With ``logits_to_keep=1`` transformers projects ``hidden[:, -1:, :]``, a strided view; torch's
    matmul then takes its batched path and materialises the vocabulary-sized weight once per row
    (Gemma 3: 262,144 x 640 copied for every prompt, 70% of a prefill on CPU). Flattening the input
    first gives one plain matrix product with identical values.
    """
    import torch.nn.functional as F

    head = model.get_output_embeddings()
    if head is None or type(head).__name__ != "Linear":
        return

    def forward(hidden):
        return F.linear(hidden.reshape(-1, hidden.shape[-1]), head.weight, head.bias).unflatten(0, hidden.shape[:-1])

    head.forward = forward


def _cache_argument(model, cache) -> dict:
    """The KV cache as the forward keyword this transformers version takes: ``cache`` (5.x), else
    ``past_key_values`` (deprecated in 5.x, removed in 5.40)."""
    import inspect

    name = getattr(model, "_ragenv_cache_argument", None)
    if name is None:
        name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        model._ragenv_cache_argument = name
    return {name: cache}


def _output_cache(output):
    """The KV cache a forward pass returned (``cache``, or ``past_key_values`` before it was renamed)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values
