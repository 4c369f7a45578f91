"""``ragenv bench``: how fast ragenv runs on this machine, measured in one run.

What it measures (every figure in the JSON under ``results``; the machine under ``machine``):

- ``matmul_peak_flops``: a large square matrix product in the scorer's dtype (float32, the
  canonical setting, unless ``--dtype`` says otherwise), best of several repeats: the ceiling
  the scorer's matrix products can reach.
- ``matmul_model_shape_flops``: the same at the scored model's own shapes (mean prompt tokens x
  hidden x MLP width): what its linear layers can reach, against which to read the scoring figure.
- ``scoring_batched_tokens_per_s`` / ``scoring_single_tokens_per_s``: :meth:`FrozenLLM.run
  <ragenv.llm.FrozenLLM.run>` with the cache off (``use_cache=False``) on realistic RAG prompts
  (a question of the dataset and its 3 BM25 passages from the real corpus, scoring the gold
  answers), all prompts in one call (length-bucketed batches) or one prompt per call.
  Tokens are the real (unpadded) prompt and answer tokens the model read.
- ``scoring_flops``: the model FLOPs those tokens need divided by the batched time, with
  (see :func:`scoring_flops`)::

      FLOPs = 2 * P * T                                  (P: parameters without the token embedding
                                                          and output head; T: prompt + answer tokens)
            + sum over tokens and layers of 4 * H * D * C  (attention scores and weighted sum; H heads
                                                          of width D; C: the positions the token attends
                                                          to, capped at the sliding window on sliding layers)
            + 2 * d * V * L                               (the output head, d x V, over the L positions
                                                          whose logits are computed: the prompt's last
                                                          token and every answer token)

  Padding is not counted: this is useful work (MFU-style), not what the hardware executed.
- warm and cold steps per second of ``RAGRetrieval-v0`` and ``SmartRAG-v0`` (one environment,
  resets included): cold runs the episodes over an empty reward cache (the LLM computes every
  result), warm replays the same episodes afterwards, when every LLM result is cached.
- queries per second of BM25 (pyserini/Lucene, bm25s as ragenv runs it, and rank_bm25 over the
  same analysed text) and of dense search (query encoding plus exact inner product), one query
  per call and, where the backend batches, all at once.
- peak memory: the process's maximum resident set size, and ``torch.cuda.max_memory_allocated``
  on a GPU.

``corpus`` (``--corpus``): every workload runs over that corpus store instead of the dataset's own
corpus (the questions' gold passages are matched as in ``gym.make(..., corpus=)``), so search and
environment figures are those of the bigger corpus; its indexes are built first where they are not
yet (``ragenv index build NAME --corpus STORE`` builds them ahead). rank_bm25 is left out over a store: it holds
every passage's tokens in Python lists.

The reward cache is private to the run (a temporary folder, removed at the end), so the bench
never reads or writes the user's results; converted models and built indexes are reused from
(or added to) the usual cache.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ragenv.data import Dataset
from ragenv.llm import FrozenLLM, LLMConfig, PromptRequest
from ragenv.spec import RunSpec

# The targets, reported as pass/fail beside the figures.
TARGET_BATCHED_OVER_SINGLE = 3.0
TARGET_FRACTION_OF_PEAK = 0.5
TARGET_WARM_STEPS_PER_S = 5000.0


UNREAD = ("env", "limit", "env_options")  # run-spec fields bench does not read (nor report)


@dataclass(frozen=True)
class BenchConfig(RunSpec):
    """What ``ragenv bench`` runs: the data (``corpus``: over a corpus store), LLM and numeric setting of the
    run spec (it measures both environments, on its own question counts, so ``env``, ``limit`` and
    ``env_options`` are not read); ``quick`` shrinks every workload (a smoke run, noisier figures)."""

    quick: bool = False

    @property
    def sizes(self) -> dict:
        if self.quick:
            return {"scoring_prompts": 8, "env_questions": 4, "retrieval_episodes_per_question": 2,
                    "smartrag_episodes": 8, "warm_steps": 1000, "bm25_queries": 50, "rank_bm25_queries": 5,
                    "dense_queries": 50, "matmul_n": 1024, "rounds": 2}
        return {"scoring_prompts": 32, "env_questions": 16, "retrieval_episodes_per_question": 2,
                "smartrag_episodes": 32, "warm_steps": 5000, "bm25_queries": 200, "rank_bm25_queries": 20,
                "dense_queries": 200, "matmul_n": 2048, "rounds": 3}


# --------------------------------------------------------------------------- the machine


def machine_info(device: str, dtype) -> dict:
    """CPU model, cores, torch version, device and the dtype the scorer computes in."""
    import torch
    import transformers

    from ragenv.numerics import cpu_has_fast_bf16, cpu_isa

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_native_bf16": cpu_has_fast_bf16(),
        "cpu_isa": cpu_isa(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": device,
        "dtype": str(dtype).replace("torch.", ""),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def matmul_peak_flops(device: str, dtype, n: int = 2048, repeats: int = 5,
                      shape: tuple[int, int, int] | None = None) -> dict:
    """FLOP/s of an n x n x n matrix product in ``dtype`` (or an m x k x n ``shape``), best of ``repeats``."""
    import torch

    m, k, n = shape or (n, n, n)
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=generator).to(device=device, dtype=dtype)
    b = torch.randn(k, n, generator=generator).to(device=device, dtype=dtype)
    inner = 1 if not device.startswith("cuda") else 20
    best = float("inf")
    with torch.inference_mode():
        torch.matmul(a, b)
        _sync(device)
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(inner):
                torch.matmul(a, b)
            _sync(device)
            best = min(best, (time.perf_counter() - start) / inner)
    return {"flops": 2 * m * k * n / best, "shape": [m, k, n], "seconds": best,
            "dtype": str(dtype).replace("torch.", "")}


# --------------------------------------------------------------------------- scoring workload


def bench_dataset(config: BenchConfig) -> Dataset:
    """The questions the workloads read, over the config's corpus store when it names one."""
    from ragenv.data import load_dataset, open_corpus

    dataset = load_dataset(config.dataset, config.data_dir)
    return dataset.with_corpus(open_corpus(config.corpus)) if config.corpus is not None else dataset


def rag_requests(dataset: Dataset, split: str, n: int, index=None, k: int = 3) -> list[PromptRequest]:
    """The first ``n`` questions of a split, each with its top-``k`` BM25 (bm25s) passages, scoring the gold answers."""
    if index is None:
        from ragenv.index import make_index

        index = make_index("bm25s", dataset.corpus)
    questions = dataset.split(split)[:n]
    rows, _ = index.search([q.question for q in questions], k)
    return [PromptRequest(question=q, passages=tuple(dataset.corpus[int(r)] for r in row if r >= 0))
            for q, row in zip(questions, rows)]


def model_shape(model) -> dict:
    """The sizes the FLOP estimate needs, read from a loaded transformers causal LM."""
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    embed, head = model.get_input_embeddings(), model.get_output_embeddings()
    skip = {id(embed.weight)} | ({id(head.weight)} if head is not None else set())
    heads = int(text.num_attention_heads)
    layers = int(text.num_hidden_layers)
    layer_types = list(getattr(text, "layer_types", None) or ["full_attention"] * layers)
    return {
        "non_embedding_params": int(sum(p.numel() for p in model.parameters() if id(p) not in skip)),
        "hidden": int(text.hidden_size),
        "intermediate": int(getattr(text, "intermediate_size", None) or 4 * text.hidden_size),
        "vocab": int(head.weight.shape[0]) if head is not None else int(text.vocab_size),
        "layers": layers,
        "heads": heads,
        "head_dim": int(getattr(text, "head_dim", None) or text.hidden_size // heads),
        "sliding_window": getattr(text, "sliding_window", None),
        "sliding_layers": sum(t == "sliding_attention" for t in layer_types),
    }


def sequence_flops(shape: dict, prompt_tokens: int, answers: Sequence[int]) -> float:
    """Model FLOPs to read one prompt and score answers of the given token lengths after it (see module doc)."""
    full_layers = shape["layers"] - shape["sliding_layers"]
    window = shape["sliding_window"] or 0
    per_context = 4 * shape["heads"] * shape["head_dim"]

    def attention(positions: np.ndarray) -> float:  # positions: 1-based lengths of the attended context
        total = full_layers * positions.sum()
        if shape["sliding_layers"]:
            total += shape["sliding_layers"] * np.minimum(positions, window if window else positions).sum()
        return float(per_context * total)

    tokens = prompt_tokens + sum(answers)
    flops = 2.0 * shape["non_embedding_params"] * tokens
    flops += attention(np.arange(1, prompt_tokens + 1, dtype=np.float64))
    for length in answers:
        flops += attention(np.arange(prompt_tokens + 1, prompt_tokens + length + 1, dtype=np.float64))
    flops += 2.0 * shape["hidden"] * shape["vocab"] * (1 + sum(answers))
    return flops


def scoring_flops(llm: FrozenLLM, requests: Sequence[PromptRequest]) -> float:
    """Model FLOPs of ``llm.run(requests)`` with nothing cached (scoring every gold alias)."""
    shape = model_shape(llm.model)
    total = 0.0
    for r in requests:
        prompt = llm.prompt_ids(r.question.question, r.passages, r.task)
        answers = [len(llm.answer_ids(a)) for a in (r.question.answers if r.answers is None else r.answers)]
        total += sequence_flops(shape, len(prompt), [a for a in answers if a])
    return total


def time_scoring(llm: FrozenLLM, requests: Sequence[PromptRequest], batched: bool, rounds: int = 1) -> dict:
    """Best time of ``rounds`` to score every request: in one ``run`` call, or one call per request."""
    best, tokens, passes = float("inf"), 0, 0
    for _ in range(rounds):
        before_tokens, before_passes = llm.stats.tokens, llm.stats.forward_passes
        start = time.perf_counter()
        if batched:
            llm.run(requests)
        else:
            for request in requests:
                llm.run([request])
        _sync(llm.device)
        best = min(best, time.perf_counter() - start)
        tokens, passes = llm.stats.tokens - before_tokens, llm.stats.forward_passes - before_passes
    return {"seconds": best, "tokens": tokens, "forward_passes": passes, "tokens_per_s": tokens / best}


# --------------------------------------------------------------------------- environment steps


def retrieval_episodes(env, episodes_per_question: int, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """(question id, action) pairs: every question of the env, each with random picks of 3 of its candidates."""
    base = env.unwrapped
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(episodes_per_question):
        for q in base.questions:
            rows, _ = base.candidates(q)
            rows = rows[rows >= 0]
            out.append((q.id, rng.choice(rows, size=min(base.k, len(rows)), replace=False)))
    return out


def run_retrieval_episodes(env, episodes: Sequence[tuple[str, np.ndarray]], steps: int | None = None) -> int:
    """Reset and step through ``episodes`` (cycled up to ``steps`` steps); returns the steps taken."""
    steps = len(episodes) if steps is None else steps
    for n in range(steps):
        question_id, action = episodes[n % len(episodes)]
        env.reset(options={"question_id": question_id})
        env.step(action)
    return steps


def run_smartrag_episodes(env, episodes: int, seed: int = 0) -> int:
    """``episodes`` SmartRAG episodes with seeded uniformly random legal actions; returns the steps taken."""
    rng = np.random.default_rng(seed)
    steps = 0
    for _ in range(episodes):
        _, info = env.reset(seed=int(rng.integers(1 << 30)))
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step(int(rng.choice(np.flatnonzero(info["action_mask"]))))
            steps += 1
            done = terminated or truncated
    return steps


def _best_rate(work: Callable[[], int], rounds: int) -> tuple[float, float]:
    """Best rate of ``rounds`` runs of ``work`` (returns units done): per wall-clock second and per CPU second.

    The CPU-time rate counts only this process's own CPU time: on a machine shared with other jobs
    it is what the work would reach alone (for single-threaded work; equal to the wall rate when idle).
    """
    best, best_cpu = 0.0, 0.0
    for _ in range(rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        done = work()
        best = max(best, done / (time.perf_counter() - start))
        best_cpu = max(best_cpu, done / max(time.process_time() - start_cpu, 1e-9))
    return best, best_cpu


# --------------------------------------------------------------------------- search


def _qps(search: Callable[[list[str]], object], queries: list[str], batched: bool) -> float:
    start = time.perf_counter()
    if batched:
        search(queries)
    else:
        for q in queries:
            search([q])
    return len(queries) / (time.perf_counter() - start)


class RankBM25Index:
    """rank_bm25's BM25Okapi over the same analysis as ragenv's BM25 (k1=0.9, b=0.4): a reference point."""

    def __init__(self, corpus, k1: float = 0.9, b: float = 0.4):
        from rank_bm25 import BM25Okapi

        from ragenv.index.bm25 import LuceneAnalyzer

        self._analyze = LuceneAnalyzer()
        self.model = BM25Okapi([self._analyze(text) for text in corpus.contents], k1=k1, b=b)

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        scores = np.zeros((len(queries), k), dtype=np.float32)
        for i, query in enumerate(queries):
            s = self.model.get_scores(self._analyze(query))
            top = np.argsort(-s, kind="stable")[:k]
            rows[i, : len(top)], scores[i, : len(top)] = top, s[top]
        return rows, scores


# --------------------------------------------------------------------------- the run


def peak_memory(device: str) -> dict:
    out = {"max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # KiB on Linux
    if device.startswith("cuda"):
        import torch

        out["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return out


def run_bench(config: BenchConfig = BenchConfig(), log: Callable[[str], None] = print) -> dict:
    """Every figure of ``ragenv bench`` (see the module docstring) as a JSON-ready dict."""
    import gymnasium as gym
    import torch

    import ragenv  # noqa: F401  (registers the environments)
    from ragenv.index import make_index
    from ragenv.llm import resolve_device, resolve_dtype
    from ragenv.reward_cache import RewardCache

    sizes = config.sizes
    dataset = bench_dataset(config)  # first: a bad dataset or corpus fails before any measurement
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    llm_config = LLMConfig(name=config.llm, device=config.device, dtype=config.dtype)
    results: dict = {}
    errors: dict = {}
    started = time.perf_counter()
    private = Path(tempfile.mkdtemp(prefix="ragenv-bench-"))
    try:
        log(f"matmul peak ({sizes['matmul_n']}^3, {str(dtype).replace('torch.', '')}) ...")
        peak = matmul_peak_flops(device, dtype, sizes["matmul_n"])
        results["matmul_peak_flops"] = peak["flops"]

        log(f"BM25 index ({config.dataset}{'' if config.corpus is None else ' over corpus ' + config.corpus}) ...")
        bm25s_index = make_index("bm25s", dataset.corpus)

        log(f"scoring with {config.llm}: {sizes['scoring_prompts']} prompts, batched and one at a time ...")
        scorer = FrozenLLM(llm_config, use_cache=False)
        requests = rag_requests(dataset, config.split, sizes["scoring_prompts"], bm25s_index)
        scorer.run(requests[:2])  # load the model and warm up outside the timings
        flops = scoring_flops(scorer, requests)
        batched = time_scoring(scorer, requests, batched=True, rounds=sizes["rounds"])
        single = time_scoring(scorer, requests, batched=False, rounds=1)
        results.update(
            scoring_batched_tokens_per_s=batched["tokens_per_s"],
            scoring_single_tokens_per_s=single["tokens_per_s"],
            scoring_batched_over_single=batched["tokens_per_s"] / single["tokens_per_s"],
            scoring_flops=flops / batched["seconds"],
            scoring_single_flops=flops / single["seconds"],
            scoring_fraction_of_peak=flops / batched["seconds"] / peak["flops"],
            scoring_tokens=batched["tokens"],
            scoring_model_flops_per_run=flops,
            scoring_forward_passes_batched=batched["forward_passes"],
            scoring_forward_passes_single=single["forward_passes"],
            scoring_model=model_shape(scorer.model),
        )
        # The same product at the model's own shapes (a prompt's tokens x hidden x MLP width): how much of
        # the peak the model's linear layers can reach at all, so the scoring gap can be read against it.
        shape = (batched["tokens"] // len(requests), results["scoring_model"]["hidden"],
                 results["scoring_model"]["intermediate"])
        results["matmul_model_shape_flops"] = matmul_peak_flops(device, dtype, shape=shape)["flops"]
        results["matmul_model_shape"] = list(shape)
        del scorer

        env_scorer = FrozenLLM(llm_config, RewardCache(private / "reward_cache.sqlite"))
        common = {"dataset": dataset, "split": config.split, "llm": llm_config, "limit": sizes["env_questions"],
                  "scorer": env_scorer, "features": True}
        log(f"RAGRetrieval-v0 steps ({sizes['env_questions']} questions; cold, then warm) ...")
        env = gym.make("RAGRetrieval-v0", **common)
        episodes = retrieval_episodes(env, sizes["retrieval_episodes_per_question"])
        passes = env_scorer.stats.forward_passes
        results["retrieval_env_cold_steps_per_s"], results["retrieval_env_cold_steps_per_cpu_s"] = _best_rate(
            lambda: run_retrieval_episodes(env, episodes), 1)
        results["retrieval_env_cold_forward_passes"] = env_scorer.stats.forward_passes - passes
        passes = env_scorer.stats.forward_passes
        results["retrieval_env_warm_steps_per_s"], results["retrieval_env_warm_steps_per_cpu_s"] = _best_rate(
            lambda: run_retrieval_episodes(env, episodes, sizes["warm_steps"]), sizes["rounds"])
        results["retrieval_env_warm_forward_passes"] = env_scorer.stats.forward_passes - passes
        env.close()

        log(f"SmartRAG-v0 steps ({sizes['smartrag_episodes']} episodes; cold, then warm) ...")
        env = gym.make("SmartRAG-v0", **common)
        passes = env_scorer.stats.forward_passes
        results["smartrag_env_cold_steps_per_s"], results["smartrag_env_cold_steps_per_cpu_s"] = _best_rate(
            lambda: run_smartrag_episodes(env, sizes["smartrag_episodes"]), 1)
        results["smartrag_env_cold_forward_passes"] = env_scorer.stats.forward_passes - passes
        passes = env_scorer.stats.forward_passes
        repeats = max(1, sizes["warm_steps"] // (2 * sizes["smartrag_episodes"]))
        results["smartrag_env_warm_steps_per_s"], results["smartrag_env_warm_steps_per_cpu_s"] = _best_rate(
            lambda: sum(run_smartrag_episodes(env, sizes["smartrag_episodes"]) for _ in range(repeats)),
            sizes["rounds"])
        results["smartrag_env_warm_forward_passes"] = env_scorer.stats.forward_passes - passes
        env.close()
        del env_scorer

        queries = [q.question for q in dataset.split(config.split)]
        bm25_queries = (queries * 10)[: sizes["bm25_queries"]]
        log(f"BM25 search: {len(bm25_queries)} queries (bm25s, pyserini), {sizes['rank_bm25_queries']} (rank_bm25) ...")
        results["bm25s_single_qps"] = _qps(lambda q: bm25s_index.search(q, 20), bm25_queries, batched=False)
        results["bm25s_batched_qps"] = _qps(lambda q: bm25s_index.search(q, 20), bm25_queries, batched=True)
        try:
            pyserini_index = make_index("pyserini", dataset.corpus)
            pyserini_index.search(bm25_queries[:2], 20)  # warm up the JVM
            results["pyserini_single_qps"] = _qps(lambda q: pyserini_index.search(q, 20), bm25_queries, batched=False)
            results["pyserini_batched_qps"] = _qps(lambda q: pyserini_index.search(q, 20), bm25_queries, batched=True)
        except Exception as exc:  # noqa: BLE001 - a missing Java must not sink the other figures
            errors["pyserini"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if dataset.corpus.store is not None:
            errors["rank_bm25"] = "not run over a corpus store (holds all tokens in memory)"
        else:
            start = time.perf_counter()
            rank_index = RankBM25Index(dataset.corpus)
            results["rank_bm25_build_s"] = time.perf_counter() - start
            results["rank_bm25_single_qps"] = _qps(lambda q: rank_index.search(q, 20),
                                                   bm25_queries[: sizes["rank_bm25_queries"]], batched=False)

        dense_queries = (queries * 10)[: sizes["dense_queries"]]
        log(f"dense search: {len(dense_queries)} queries ...")
        dense_index = make_index("dense", dataset.corpus)
        dense_index.search(dense_queries[:2], 20)  # load the encoder
        results["dense_single_qps"] = _qps(lambda q: dense_index.search(q, 20), dense_queries, batched=False)
        results["dense_batched_qps"] = _qps(lambda q: dense_index.search(q, 20), dense_queries, batched=True)

        results["peak_memory"] = peak_memory(device)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    from ragenv.numerics import numeric_setting
    from ragenv.provenance import provenance

    return {
        "machine": machine_info(device, dtype),
        "provenance": provenance(numeric_setting(str(dtype).replace("torch.", ""), device)),
        "config": {**{k: v for k, v in asdict(config).items() if k not in UNREAD}, "sizes": sizes,
                   "torch_threads": torch.get_num_threads()},
        "results": results,
        "errors": errors,
        "targets": {
            "scoring_batched_over_single": {
                "target": TARGET_BATCHED_OVER_SINGLE,
                "pass": results.get("scoring_batched_over_single", 0) >= TARGET_BATCHED_OVER_SINGLE},
            "scoring_fraction_of_peak": {"target": TARGET_FRACTION_OF_PEAK,
                                         "pass": results.get("scoring_fraction_of_peak", 0) >= TARGET_FRACTION_OF_PEAK},
            "retrieval_env_warm_steps_per_s": {
                "target": TARGET_WARM_STEPS_PER_S,
                "pass": results.get("retrieval_env_warm_steps_per_s", 0) >= TARGET_WARM_STEPS_PER_S},
            "smartrag_env_warm_steps_per_s": {
                "target": TARGET_WARM_STEPS_PER_S,
                "pass": results.get("smartrag_env_warm_steps_per_s", 0) >= TARGET_WARM_STEPS_PER_S},
        },
        "seconds": time.perf_counter() - started,
    }


# --------------------------------------------------------------------------- output

_ROWS = (
    ("matmul_peak_flops", "matmul peak", "FLOP/s"),
    ("matmul_model_shape_flops", "matmul at the model's shapes", "FLOP/s"),
    ("scoring_flops", "scoring (batched) model FLOPs", "FLOP/s"),
    ("scoring_fraction_of_peak", "scoring FLOPs / matmul peak", ""),
    ("scoring_batched_tokens_per_s", "scoring, batched", "tokens/s"),
    ("scoring_single_tokens_per_s", "scoring, one prompt per call", "tokens/s"),
    ("scoring_batched_over_single", "ratio batched / single", ""),
    ("retrieval_env_warm_steps_per_s", "RAGRetrieval-v0 warm", "steps/s"),
    ("retrieval_env_warm_steps_per_cpu_s", "RAGRetrieval-v0 warm, per CPU second", "steps/s"),
    ("retrieval_env_cold_steps_per_s", "RAGRetrieval-v0 cold", "steps/s"),
    ("smartrag_env_warm_steps_per_s", "SmartRAG-v0 warm", "steps/s"),
    ("smartrag_env_warm_steps_per_cpu_s", "SmartRAG-v0 warm, per CPU second", "steps/s"),
    ("smartrag_env_cold_steps_per_s", "SmartRAG-v0 cold", "steps/s"),
    ("pyserini_single_qps", "BM25 pyserini, one query per call", "queries/s"),
    ("pyserini_batched_qps", "BM25 pyserini, batched (2 threads)", "queries/s"),
    ("bm25s_single_qps", "BM25 bm25s, one query per call", "queries/s"),
    ("bm25s_batched_qps", "BM25 bm25s, batched", "queries/s"),
    ("rank_bm25_single_qps", "BM25 rank_bm25, one query per call", "queries/s"),
    ("dense_single_qps", "dense, one query per call", "queries/s"),
    ("dense_batched_qps", "dense, batched", "queries/s"),
)


def _number(value: float, unit: str) -> str:
    if unit == "FLOP/s":
        return f"{value / 1e9:,.1f} G"
    if unit == "":
        return f"{value:.2f}" if value < 10 else f"{value:,.0f}"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def results_table(report: dict):
    """A rich table of the figures, with the issue's targets as pass/fail."""
    from rich.table import Table

    m = report["machine"]
    corpus = report["config"].get("corpus")
    table = Table(title=f"ragenv bench | {report['config']['llm']}{'' if not corpus else ' | corpus ' + corpus} | "
                        f"{m['cpu']}, {m['cores']} cores | "
                        f"{m['device']} {m['dtype']} | torch {m['torch']}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("unit")
    table.add_column("target", justify="right")
    table.add_column("pass")
    results, targets = report["results"], report["targets"]
    for key, label, unit in _ROWS:
        if key not in results:
            continue
        target = targets.get(key)
        mark = "" if target is None else ("[green]pass[/green]" if target["pass"] else "[red]fail[/red]")
        shown = "" if target is None else f">= {target['target']:g}"
        table.add_row(label, _number(results[key], unit), unit, shown, mark)
    memory = results.get("peak_memory", {})
    if memory:
        table.add_row("peak memory (max RSS)", f"{memory['max_rss_mib']:,.0f}", "MiB", "", "")
        if "cuda_max_allocated_mib" in memory:
            table.add_row("peak CUDA memory", f"{memory['cuda_max_allocated_mib']:,.0f}", "MiB", "", "")
    for name, error in report.get("errors", {}).items():
        table.add_row(f"{name} (skipped)", error[:60], "", "", "")
    return table


def write_json(report: dict, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")


__all__ = [
    "BenchConfig",
    "RankBM25Index",
    "bench_dataset",
    "machine_info",
    "matmul_peak_flops",
    "model_shape",
    "rag_requests",
    "results_table",
    "retrieval_episodes",
    "run_bench",
    "run_retrieval_episodes",
    "run_smartrag_episodes",
    "scoring_flops",
    "sequence_flops",
    "write_json",
]
