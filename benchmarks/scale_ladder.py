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
- ``query_ms``: p50/p99 of the first stage's ``search_one`` on the questions (k = 20);
- memory after the steps (RssAnon, RssFile) and the peak RSS of the process.

The LLM is SmolLM2 (the tests' model): it only fills the cache, its speed is not measured.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
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
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line for line in info.splitlines() if line.startswith("flags")), "")
    isa = "AVX512+bf16" if "avx512_bf16" in flags else "AVX-512" if "avx512f" in flags else "AVX2"
    return f"{name} ({isa}), {os.cpu_count()} cores"


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
           "first_stage": first_stage, "cpu": _cpu(), "memory_before_open": started, "memory_after_open": opened}

    build = time.perf_counter()
    index = make_index(first_stage, Corpus.from_store(store))  # built once into the cache, then reused
    row["index_build_or_open_s"] = round(time.perf_counter() - build, 2)
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
    row["step_ms"] = _percentiles([episode(env, qid) for qid in ids])
    search = []
    for q in base.questions:
        tic = time.perf_counter()
        base.first_stage.search_one(q.question, base.num_candidates)
        search.append(time.perf_counter() - tic)
    row["query_ms"] = _percentiles(search)
    row["questions_without_gold"] = sum(1 for q in base.questions if not q.gold_passage_ids)
    row["memory_after_steps"] = _memory()
    row["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(row, indent=1) + "\n")
    return row


def plot(files: list[Path], out: Path) -> None:
    """Memory and latency against corpus size, one line per first stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(f.read_text()) for f in files]
    figure, (memory, latency) = plt.subplots(1, 2, figsize=(11, 4))
    for stage in sorted({r["first_stage"] for r in rows}):
        mine = sorted((r for r in rows if r["first_stage"] == stage), key=lambda r: r["passages"])
        sizes = [r["passages"] for r in mine]
        memory.plot(sizes, [r["memory_after_steps"]["rss_anon_mib"] for r in mine], "o-", label=f"{stage}: RssAnon")
        memory.plot(sizes, [r["memory_after_steps"]["rss_file_mib"] for r in mine], "o--", label=f"{stage}: RssFile")
        latency.plot(sizes, [r["step_ms"]["p50"] for r in mine], "o-", label=f"{stage}: reset+step p50")
        latency.plot(sizes, [r["query_ms"]["p50"] for r in mine], "s--", label=f"{stage}: search p50")
    for axis, label in ((memory, "MiB after the steps"), (latency, "ms")):
        axis.set_xscale("log")
        axis.set_xlabel("passages in the corpus")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    memory.set_title("memory of a RAGRetrieval-v0 process")
    latency.set_title("latency (LLM results cached)")
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
    drawing = commands.add_parser("plot", help="draw memory and latency against corpus size")
    drawing.add_argument("files", nargs="+", type=Path)
    drawing.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "run":
        print(json.dumps(run(args.corpus, args.first_stage, args.questions, args.dataset, args.split, args.out),
                         indent=1))
    else:
        plot(args.files, args.out)


if __name__ == "__main__":
    main()
