"""The scale ladder: what RAGRetrieval-v0 costs as its corpus grows (issue #22, docs/scale.md).

One run measures one corpus store and one first stage, in a fresh process (so memory figures are
this run's own), and writes one JSON row::

    python benchmarks/scale_ladder.py run --corpus wiki-mini-100k --first-stage pyserini \
        --out docs/results/scale/wiki-mini-100k-pyserini.json
    python benchmarks/scale_ladder.py plot docs/results/scale/*.json --out docs/results/scale/ladder.png

What ``run`` measures:

- the store: passages, bytes on disk; private (RssAnon) and file-backed (RssFile) memory after
  opening it;
- ``env_make_s``: ``gym.make("RAGRetrieval-v0", corpus=..., first_stage=...)`` with its first-stage
  index already built (the build is timed apart: ``index_build_s``, on the first run only);
- ``step_ms``: p50/p99 of one ``reset`` + ``step`` per question in a second, fresh environment
  (no per-question memos), with the frozen LLM's results already in the reward cache (the first
  environment's pass filled it): the environment's own overhead, i.e. first-stage search,
  observation, the cache lookup and the reward; ``features=False``;
- ``search_in_step_ms`` and ``overhead_ms``: of each reset + step, the time inside the first stage's
  search, and the rest (the bar of issue #22: the environment's own overhead, at most 5 ms);
- ``query_ms``: p50/p99 of the first stage's ``search_one`` (k = 20) on the next ``questions``
  questions of the split, which this process has not searched before;
- memory after the steps (RssAnon, RssFile) and the peak RSS of the process.

The LLM is SmolLM2 (the tests' model): it only fills the cache, its speed is not measured.

``index`` measures the other two first stages of the ladder on one store, also one JSON row per run:

- ``--kind bag-of-tokens``: R3's first stage (SiDR's posting lists, ``agents/r3/model.py``): build time,
  disk, the peak private memory of the build, open time and memory, and search p50/p99 with the
  untrained ``elu1p`` query head, exact (``max_query_terms=None``, on ``--exact-questions`` questions:
  it reads every posting list) and with the 16 heaviest query terms;
- ``--kind faiss``: FAISS over the store's dense vectors, built with ``--faiss`` (``ivfpq`` or
  ``flat`` ...), its build and train time, size, search p50/p99 (real MiniLM query vectors) and
  recall@20 against exact inner-product search over the same vectors. Embedding 10^6 passages takes
  hours on 2 cores, so only wiki-mini's own rows carry real embeddings (its dense index); each
  synthetic row gets a *derived* vector, the normalised sum of the real vectors of 3 random wiki-mini
  passages (seeded by the row number), as a synthetic passage is sentences of a few real passages.
  Derived vectors measure FAISS's cost and its recall on vectors of this geometry, not retrieval quality.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def _memory() -> dict:
    """RssAnon and RssFile of this process, in MiB (/proc/self/status)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) / 1024
    return {"rss_anon_mib": round(fields.get("RssAnon", float("nan")), 1),
            "rss_file_mib": round(fields.get("RssFile", float("nan")), 1)}


def _percentiles(seconds: list[float]) -> dict:
    values = np.asarray(seconds) * 1000.0
    return {"p50": round(float(np.percentile(values, 50)), 3), "p99": round(float(np.percentile(values, 99)), 3),
            "n": len(values)}


def _cpu() -> str:
    from ragenv.numerics import cpu_isa, cpu_model

    return f"{cpu_model()} ({cpu_isa()}), {os.cpu_count()} cores"


def run(corpus: str, first_stage: str, questions: int, dataset: str, split: str, out: Path) -> dict:
    import gymnasium as gym

    import ragenv  # noqa: F401  (registers the environments)
    from ragenv.corpus import CorpusStore
    from ragenv.data import Corpus, load_dataset
    from ragenv.index import make_index

    started = _memory()
    store = CorpusStore.open(corpus)
    opened = _memory()
    row = {"corpus": store.name, "passages": len(store), "disk_mib": round(store.disk_bytes() / 2**20, 1),
           "first_stage": first_stage, "cpu": _cpu(), "load_average": round(os.getloadavg()[0], 1),
           "memory_before_open": started, "memory_after_open": opened}

    with _index_timing(row, out):
        index = make_index(first_stage, Corpus.from_store(store))  # built once into the cache, then reused
    row["index_mib"] = round(_folder_bytes(index.path) / 2**20, 1)
    del index

    data = load_dataset(dataset)
    made = time.perf_counter()
    kwargs = dict(dataset=data, split=split, corpus=corpus, first_stage=first_stage, llm="smollm2-135m",
                  features=False, limit=questions)
    cold = gym.make("RAGRetrieval-v0", **kwargs)
    row["env_make_s"] = round(time.perf_counter() - made, 3)

    def episode(env, qid: str) -> float:
        tic = time.perf_counter()
        observation, _ = env.reset(options={"question_id": qid})
        env.step(observation["candidate_ids"][:env.unwrapped.k])
        return time.perf_counter() - tic

    ids = [q.id for q in cold.unwrapped.questions]
    for qid in ids:  # the frozen LLM scores each episode once, into the reward cache (not measured)
        episode(cold, qid)
    env = gym.make("RAGRetrieval-v0", scorer=cold.unwrapped.scorer, **kwargs)  # fresh memos, warm cache
    base = env.unwrapped
    searching = []  # seconds inside the first stage's search, per episode
    search = base.first_stage.search

    def timed_search(*args, **kw):
        tic = time.perf_counter()
        try:
            return search(*args, **kw)
        finally:
            searching.append(time.perf_counter() - tic)

    base.first_stage.search = timed_search
    steps = [episode(env, qid) for qid in ids]
    base.first_stage.search = search
    assert len(searching) == len(steps), "one first-stage search per episode"
    row["step_ms"] = _percentiles(steps)
    row["search_in_step_ms"] = _percentiles(searching)
    row["overhead_ms"] = _percentiles([s - q for s, q in zip(steps, searching)])
    # query latency on questions this process has not searched yet (a repeated query is faster in Lucene)
    unseen = data.split(split)[questions:2 * questions]
    _, row["query_ms"] = _timed(lambda q: base.first_stage.search_one(q.question, base.num_candidates), unseen)
    row["questions_without_gold"] = sum(1 for q in base.questions if not q.gold_passage_ids)
    row["memory_after_steps"] = _memory()
    row["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(row, indent=1) + "\n")
    return row


def _previous(out: Path) -> dict:
    """The row an earlier run wrote to ``out`` (empty if none)."""
    return json.loads(out.read_text()) if out.exists() else {}


@contextmanager
def _index_timing(row: dict, out: Path):
    """Time the block that builds or opens a cached index: ``index_build_s`` when it built one (a new folder
    appeared in the index cache), else ``index_open_s``, with the build time an earlier run wrote to ``out``
    carried over (``index_build_s``, ``index_build_cpu_load``: a rerun on a quieter machine keeps the build)."""
    from ragenv import settings

    folder = settings.cache_subdir("indexes")
    before = {p.name for p in folder.iterdir() if p.is_dir()}
    load = os.getloadavg()[0]
    tic = time.perf_counter()
    yield
    took = round(time.perf_counter() - tic, 2)
    if {p.name for p in folder.iterdir() if p.is_dir()} - before:  # (not a lock file made on open)
        row["index_build_s"], row["index_build_cpu_load"] = took, round(load, 1)
        return
    row["index_open_s"] = took
    previous = _previous(out)
    for key in ("index_build_s", "index_build_cpu_load"):
        if key in previous:
            row[key] = previous[key]


class _PeakMemory:
    """The peak RssAnon/RssFile of this process while the block runs (sampled every 20 ms)."""

    def __enter__(self):
        import threading

        self.peak = _memory()
        self._done = threading.Event()

        def sample():
            while not self._done.wait(0.02):
                now = _memory()
                self.peak = {key: max(self.peak[key], now[key]) for key in now}

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()


def _timed(function, items) -> tuple[list, dict]:
    """``function`` on each item, with p50/p99 of one call in ms."""
    out, seconds = [], []
    for item in items:
        tic = time.perf_counter()
        out.append(function(item))
        seconds.append(time.perf_counter() - tic)
    return out, _percentiles(seconds)


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


def derived_vectors(store, out: Path, base_rows: int, base_vectors: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """The store's vectors for the FAISS rungs: the real ones for its first ``base_rows`` rows (the base
    corpus, unchanged by ``corpus synth``), a derived one for each synthetic row (module docstring). Written
    once to ``out`` (float32 .npy) and returned memory-mapped."""
    count, dim = len(store), base_vectors.shape[1]
    if out.exists():
        vectors = np.load(out, mmap_mode="r")
        if vectors.shape == (count, dim):
            return vectors
    partial = out.with_suffix(".partial.npy")
    out.parent.mkdir(parents=True, exist_ok=True)
    vectors = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(count, dim))
    vectors[:base_rows] = base_vectors
    for start in range(base_rows, count, chunk):
        stop = min(count, start + chunk)
        rng = np.random.default_rng(start)
        mixed = base_vectors[rng.integers(0, base_rows, size=(stop - start, 3))].sum(axis=1)
        vectors[start:stop] = mixed / np.linalg.norm(mixed, axis=1, keepdims=True)
    vectors.flush()
    del vectors
    partial.rename(out)
    return np.load(out, mmap_mode="r")


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, k: int, chunk: int = 1 << 18) -> np.ndarray:
    """Exact inner-product top-k rows of each query over memory-mapped ``vectors``, read in chunks."""
    best_rows = np.zeros((len(queries), 0), dtype=np.int64)
    best_scores = np.zeros((len(queries), 0), dtype=np.float32)
    for start in range(0, len(vectors), chunk):
        scores = queries @ np.asarray(vectors[start:start + chunk], dtype=np.float32).T
        top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        best_rows = np.concatenate([best_rows, top + start], axis=1)
        best_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, axis=1)], axis=1)
        keep = np.argsort(-best_scores, axis=1, kind="stable")[:, :k]
        best_rows = np.take_along_axis(best_rows, keep, axis=1)
        best_scores = np.take_along_axis(best_scores, keep, axis=1)
    return best_rows


def index_run(corpus: str, kind: str, faiss_kind: str, questions: int, exact_questions: int, dataset: str,
              split: str, vectors_dir: Path, out: Path, search_options: dict | None = None) -> dict:
    from ragenv.corpus import CorpusStore
    from ragenv.data import Corpus, load_dataset

    store = CorpusStore.open(corpus)
    opened = Corpus.from_store(store)
    texts = [q.question for q in load_dataset(dataset).split(split)[:questions]]
    row: dict = {"corpus": store.name, "passages": len(store), "disk_mib": round(store.disk_bytes() / 2**20, 1),
                 "kind": kind, "cpu": _cpu(), "load_average": round(os.getloadavg()[0], 1), "questions": len(texts),
                 "memory_before": _memory()}
    if kind == "bag-of-tokens":
        from ragenv.agents.r3.model import BagOfTokensIndex, R3Encoder
        from ragenv.encoder import resolve_encoder_path

        encoder = R3Encoder(resolve_encoder_path("all-MiniLM-L6-v2"))  # untrained, elu1p: R3's start
        row["memory_with_encoder"] = _memory()
        with _PeakMemory() as peak, _index_timing(row, out):
            index = BagOfTokensIndex(opened, encoder, "all-MiniLM-L6-v2")  # built once, then opened
        if "index_open_s" not in row:
            row["peak_memory_during_build"] = peak.peak
        else:  # carried over with the build time
            row["peak_memory_during_build"] = _previous(out).get("peak_memory_during_build")
        row["index_mib"] = round(_folder_bytes(index.path) / 2**20, 1)
        row["entries"] = int(len(index.rows))
        tic = time.perf_counter()
        index = BagOfTokensIndex(opened, encoder, "all-MiniLM-L6-v2")
        row["open_ms"] = round((time.perf_counter() - tic) * 1000, 2)
        row["memory_after_open"] = _memory()
        weights = encoder.encode_numpy(texts, "query", ("vocab",))["vocab"]
        for terms, count in ((16, len(texts)), (None, exact_questions)):
            index.max_query_terms = terms
            index.search_vectors(weights[:1], 20)  # warm-up
            _, timing = _timed(lambda w: index.search_vectors(w[None], 20), weights[:count])
            row[f"query_ms_{'exact' if terms is None else f'top{terms}'}"] = timing
            row[f"memory_after_{'exact' if terms is None else f'top{terms}'}"] = _memory()
    elif kind == "faiss":
        from ragenv.encoder import Encoder
        from ragenv.index.dense import DenseIndex
        from ragenv.index.faiss_index import FaissConfig, FaissSearcher, build_faiss

        base = load_dataset(dataset).corpus  # wiki-mini: real embeddings from its dense index
        encoder = Encoder()
        base_vectors = np.load(DenseIndex.cache_path(base, encoder) / "embeddings.npy", mmap_mode="r")
        tic = time.perf_counter()
        vectors = derived_vectors(store, vectors_dir / f"{store.name}-{store.fingerprint[:16]}.npy", len(base),
                                  np.asarray(base_vectors))
        row["vectors"] = "real" if len(store) == len(base) else f"real for {len(base):,} rows, derived for the rest"
        row["vectors_s"] = round(time.perf_counter() - tic, 2)
        config = FaissConfig(kind=faiss_kind, **(search_options or {}))
        row["faiss"] = config.build_options(len(vectors))
        row["faiss_search"] = {"nprobe": config.nprobe, "rerank": config.rerank, "ef_search": config.ef_search}
        folder = vectors_dir / f"{store.name}-{store.fingerprint[:16]}-faiss-{faiss_kind}"
        if not (folder / "faiss.json").exists():
            folder.mkdir(parents=True, exist_ok=True)
            with _PeakMemory() as peak:
                report = build_faiss(vectors, config, folder)
            row["peak_memory_during_build"] = peak.peak
        else:
            report = json.loads((folder / "faiss.json").read_text())
        row["build_s"], row["train_s"] = round(report["seconds"], 2), round(report["train_seconds"], 2)
        row["index_mib"] = round(report["bytes"] / 2**20, 1)
        row["vectors_mib"] = round(vectors.nbytes / 2**20, 1)
        query_vectors = np.asarray(encoder.encode(texts), dtype=np.float32)
        before = _memory()
        tic = time.perf_counter()
        searcher = FaissSearcher(folder, config, vectors)
        row["open_ms"] = round((time.perf_counter() - tic) * 1000, 2)
        row["memory_open"] = {"before": before, "after": _memory()}
        searcher.search(query_vectors[:1], 20)  # warm-up
        found, row["query_ms"] = _timed(lambda q: searcher.search(q[None], 20)[0][0], query_vectors)
        row["memory_after_queries"] = _memory()
        exact = exact_top_k(vectors, query_vectors, 20)
        row["recall_at_20_vs_exact"] = round(float(np.mean([len(set(a.tolist()) & set(b.tolist())) / 20
                                                            for a, b in zip(found, exact)])), 4)
    else:
        raise SystemExit(f"unknown kind {kind!r}: bag-of-tokens or faiss")
    row["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(row, indent=1) + "\n")
    return row


def _pair(timing: dict) -> str:
    return f"{timing['p50']:,.2f} / {timing['p99']:,.2f}"


def _mib(memory: dict) -> str:
    return f"{memory['rss_anon_mib']:,.0f} / {memory['rss_file_mib']:,.0f}"


def _build(row: dict) -> str:
    if "index_build_s" in row:
        return f"{row['index_build_s']:,.1f}"
    return f"({row['index_open_s']:,.2f} open)" if "index_open_s" in row else "?"


def table(files: list[Path]) -> list[str]:
    """The markdown table of result files of one kind (env ladder, bag-of-tokens or FAISS), by size and stage."""
    rows = sorted((json.loads(f.read_text()) for f in files),
                  key=lambda r: (r["passages"], r.get("first_stage", ""), r.get("faiss", {}).get("kind", "")))
    kinds = {"env" if "first_stage" in r else r["kind"] for r in rows}
    if len(kinds) != 1:
        raise SystemExit(f"one kind of result file per table, got {sorted(kinds)}")
    kind = kinds.pop()
    if kind == "env":
        lines = ["| store | passages | first stage | store on disk MiB | index build s | index MiB | env make s | "
                 "reset+step ms "
                 "p50 / p99 | of which search, p50 | env overhead ms p50 / p99 | search, new questions, ms p50 / p99 "
                 "| RssAnon / RssFile after the steps MiB | peak RSS MiB |",
                 "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['corpus']} | {r['passages']:,} | {r['first_stage']} | {r['disk_mib']:,.1f} | "
                         f"{_build(r)} | {r['index_mib']:,.1f} | {r['env_make_s']:.2f} | {_pair(r['step_ms'])} | "
                         f"{r['search_in_step_ms']['p50']:,.2f} | {_pair(r['overhead_ms'])} | {_pair(r['query_ms'])} | "
                         f"{_mib(r['memory_after_steps'])} | {r['peak_rss_mib']:,.0f} |")
    elif kind == "bag-of-tokens":
        lines = ["| store | passages | posting entries | index MiB | build s | peak RssAnon of the build MiB | "
                 "open ms | search top-16 terms ms p50 / p99 | exact search ms p50 / p99 (questions) | "
                 "RssAnon / RssFile after the searches MiB |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            peak = r.get("peak_memory_during_build") or {}
            lines.append(f"| {r['corpus']} | {r['passages']:,} | {r['entries']:,} | {r['index_mib']:,.1f} | "
                         f"{_build(r)} | {peak.get('rss_anon_mib', float('nan')):,.0f} | {r['open_ms']:.2f} | "
                         f"{_pair(r['query_ms_top16'])} | {_pair(r['query_ms_exact'])} ({r['query_ms_exact']['n']}) | "
                         f"{_mib(r['memory_after_exact'])} |")
    else:
        lines = ["| store | passages | vectors | FAISS index | vectors MiB | index MiB | train s | build s | "
                 "search ms p50 / p99 | recall@20 vs exact | RssAnon / RssFile after the searches MiB |",
                 "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            options = r["faiss"]
            name = options["kind"] + (f" (nlist {options['nlist']:,}, {options['pq_m']} B codes, nprobe "
                                      f"{r['faiss_search']['nprobe']}, rerank {r['faiss_search']['rerank']})"
                                      if options["kind"] == "ivfpq" else "")
            lines.append(f"| {r['corpus']} | {r['passages']:,} | {'real' if r['vectors'] == 'real' else 'derived'} | "
                         f"{name} | {r['vectors_mib']:,.0f} | {r['index_mib']:,.1f} | {r['train_s']:,.1f} | "
                         f"{r['build_s']:,.1f} | {_pair(r['query_ms'])} | {r['recall_at_20_vs_exact']:.3f} | "
                         f"{_mib(r['memory_after_queries'])} |")
    return lines


DPR_WIKIPEDIA = 21_015_324  # passages of psgs_w100.tsv (wiki-2018)


def extrapolate(files: list[Path], passages: int = DPR_WIKIPEDIA) -> list[str]:
    """A markdown table: each figure of the env runs with one first stage at ``passages``, from a least-squares
    line a + b N through the rungs of 10^5 passages and more (what grows with the corpus; the constant part
    is the LLM, Python and the JVM)."""
    rows = [json.loads(f.read_text()) for f in files]
    stages = {r["first_stage"] for r in rows if "first_stage" in r}
    figures = {"store on disk, GiB": lambda r: r["disk_mib"] / 1024,
               "index on disk, GiB": lambda r: r["index_mib"] / 1024,
               "RssAnon after the steps, GiB": lambda r: r["memory_after_steps"]["rss_anon_mib"] / 1024,
               "RssFile after the steps, GiB": lambda r: r["memory_after_steps"]["rss_file_mib"] / 1024,
               "search p50, ms": lambda r: r["query_ms"]["p50"],
               "env overhead p50, ms": lambda r: r["overhead_ms"]["p50"]}
    lines = ["| first stage | figure | rungs (passages: value) | per 10^6 passages | at 21,015,324 passages |",
             "|---|---|---|---:|---:|"]
    for stage in sorted(stages):
        mine = sorted((r for r in rows if r.get("first_stage") == stage and r["passages"] >= 100_000),
                      key=lambda r: r["passages"])
        if len(mine) < 2:
            continue
        sizes = np.array([r["passages"] for r in mine], dtype=float)
        for name, figure in figures.items():
            values = np.array([figure(r) for r in mine])
            slope, intercept = np.polyfit(sizes, values, 1)
            rungs = ", ".join(f"{int(n):,}: {v:,.2f}" for n, v in zip(sizes, values))
            lines.append(f"| {stage} | {name} | {rungs} | {slope * 1e6:,.3f} | {intercept + slope * passages:,.2f} |")
    return lines


def plot(files: list[Path], out: Path) -> None:
    """Memory and latency against corpus size: one line per first stage of the env runs, plus the search
    latency of the bag-of-tokens (top-16 terms) and FAISS runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in (json.loads(f.read_text()) for f in files) if "first_stage" in row or "kind" in row]
    figure, (memory, latency) = plt.subplots(1, 2, figsize=(12, 4.5))
    lines: dict[str, list[tuple[int, dict]]] = {}
    for r in rows:
        if "first_stage" in r:
            name = f"env + {r['first_stage']}"
        elif r["kind"] == "faiss":
            search = r["faiss_search"]
            name = f"FAISS {r['faiss']['kind']}" + (f" nprobe {search['nprobe']}" if r["faiss"]["kind"] == "ivfpq"
                                                      else "")
        else:
            name = "bag-of-tokens"
        lines.setdefault(name, []).append((r["passages"], r))
    for name, points in sorted(lines.items()):
        points.sort(key=lambda point: point[0])
        sizes = [size for size, _ in points]
        mine = [r for _, r in points]
        if name.startswith("env"):
            memory.plot(sizes, [r["memory_after_steps"]["rss_anon_mib"] for r in mine], "o-", label=f"{name}: RssAnon")
            memory.plot(sizes, [r["memory_after_steps"]["rss_file_mib"] for r in mine], "o--", label=f"{name}: RssFile")
            latency.plot(sizes, [r["overhead_ms"]["p50"] for r in mine], "^:", label=f"{name}: env overhead p50")
            latency.plot(sizes, [r["query_ms"]["p50"] for r in mine], "s-", label=f"{name[6:]}: search p50")
        elif name == "bag-of-tokens":
            latency.plot(sizes, [r["query_ms_top16"]["p50"] for r in mine], "d-", label=f"{name} (top 16 terms) p50")
        else:
            latency.plot(sizes, [r["query_ms"]["p50"] for r in mine], "v-", label=f"{name} p50")
    memory.axhline(3 * 1024, color="grey", lw=0.8, ls="-.", label="3 GiB")
    latency.axhline(5, color="grey", lw=0.8, ls="-.", label="5 ms")
    latency.axhline(50, color="grey", lw=0.8, ls="--", label="50 ms")
    for axis, label in ((memory, "MiB after the steps"), (latency, "ms (log)")):
        axis.set_xscale("log")
        axis.set_xlabel("passages in the corpus")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    latency.set_yscale("log")
    memory.set_title("memory of a RAGRetrieval-v0 process")
    latency.set_title("latency per query (LLM results cached)")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("run", help="measure one corpus store with one first stage")
    one.add_argument("--corpus", required=True)
    one.add_argument("--first-stage", default="pyserini")
    one.add_argument("--questions", type=int, default=100)
    one.add_argument("--dataset", default="nq")
    one.add_argument("--split", default="test")
    one.add_argument("--out", type=Path, required=True)
    other = commands.add_parser("index", help="measure the bag-of-tokens or FAISS first stage on one store")
    other.add_argument("--corpus", required=True)
    other.add_argument("--kind", choices=("bag-of-tokens", "faiss"), required=True)
    other.add_argument("--faiss", default="ivfpq", help="FAISS kind (flat, ivfpq, hnsw, auto)")
    other.add_argument("--questions", type=int, default=100)
    other.add_argument("--exact-questions", type=int, default=20, help="bag-of-tokens: questions searched exactly")
    other.add_argument("--dataset", default="nq")
    other.add_argument("--split", default="test")
    other.add_argument("--vectors-dir", type=Path, default=Path(os.environ.get("RAGENV_CACHE", Path.home() /
                                                                                 ".cache/ragenv")) / "bench-vectors")
    other.add_argument("--nprobe", type=int, help="FAISS IVF cells visited (default: FaissConfig's)")
    other.add_argument("--rerank", type=int, help="FAISS IVF-PQ: re-score rerank * k candidates")
    other.add_argument("--out", type=Path, required=True)
    tabling = commands.add_parser("table", help="print the markdown table of result files of one kind")
    tabling.add_argument("files", nargs="+", type=Path)
    extrapolating = commands.add_parser("extrapolate", help="the env runs' figures extrapolated to 21M passages")
    extrapolating.add_argument("files", nargs="+", type=Path)
    drawing = commands.add_parser("plot", help="draw memory and latency against corpus size (any result files)")
    drawing.add_argument("files", nargs="+", type=Path)
    drawing.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "run":
        print(json.dumps(run(args.corpus, args.first_stage, args.questions, args.dataset, args.split, args.out),
                         indent=1))
    elif args.command == "index":
        print(json.dumps(index_run(args.corpus, args.kind, args.faiss, args.questions, args.exact_questions,
                                   args.dataset, args.split, args.vectors_dir, args.out,
                                   {key: value for key, value in (("nprobe", args.nprobe), ("rerank", args.rerank))
                                    if value is not None}), indent=1))
    elif args.command == "extrapolate":
        print("\n".join(extrapolate(args.files)))
    elif args.command == "table":
        print("\n".join(table(args.files)))
    else:
        plot(args.files, args.out)


if __name__ == "__main__":
    main()
