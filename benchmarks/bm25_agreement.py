"""Do the two BM25 backends agree, and how fast are they?

    python benchmarks/bm25_agreement.py --dataset nq --split dev

Builds both indexes of the dataset's full corpus in a fresh temporary cache (or in
``--cache-dir``), then searches every question of the split with each and prints:
build and cached-load times, queries per second (one batch of all questions, and
one question at a time), the mean top-k overlap between the backends (the share of
common passages; 1.0 = same sets), how many top-k lists are identical in order, and
each backend's gold-passage hit rate at k.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import asdict


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="nq", help="question set name or user dataset folder")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="timed batch searches (the best is reported)")
    parser.add_argument("--cache-dir", help="index cache to use (default: a fresh temporary one, so builds are timed)")
    args = parser.parse_args(argv)
    if args.cache_dir:
        os.environ["RAGENV_CACHE"] = args.cache_dir
        return run(args)
    with tempfile.TemporaryDirectory(prefix="ragenv-bm25-bench-") as cache:
        os.environ["RAGENV_CACHE"] = cache
        return run(args)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ragenv.data import load_dataset
    from ragenv.index import bm25

    dataset = load_dataset(args.dataset)
    corpus, questions = dataset.corpus, dataset.split(args.split)
    queries = [q.question for q in questions]
    config = bm25.BM25Config()
    print(f"{args.dataset}/{args.split}: {len(queries)} questions over {corpus.name} ({len(corpus)} passages), "
          f"k={args.k}, {asdict(config)}, {os.cpu_count()} CPU cores")

    _, jvm_s = _timed(bm25._import_pyserini)
    print(f"pyserini import with the JVM start: {jvm_s:.1f} s (once per process)")
    results = {}
    for name, cls in (("bm25s", bm25.Bm25sIndex), ("pyserini", bm25.PyseriniIndex)):
        index, build_s = _timed(lambda: cls(corpus, config))
        _, load_s = _timed(lambda: cls(corpus, config))
        index.search(queries[:8], args.k)  # warm-up (JIT, caches)
        batch_s = min(_timed(lambda: index.search(queries, args.k))[1] for _ in range(args.repeat))
        _, single_s = _timed(lambda: [index.search_one(q, args.k) for q in queries])
        rows, scores = index.search(queries, args.k)
        hits = [any(corpus.row(g) in rows[i] for g in q.gold_passage_ids if g in corpus)
                for i, q in enumerate(questions)]
        results[name] = rows, scores
        print(f"{name:>8}: build {build_s:5.1f} s, load from cache {load_s:5.2f} s, "
              f"{len(queries) / batch_s:7.0f} queries/s in one batch, "
              f"{len(queries) / single_s:6.0f} queries/s one by one, "
              f"gold hit@{args.k} {np.mean(hits):.3f}")

    (rows_s, scores_s), (rows_p, scores_p) = results["bm25s"], results["pyserini"]
    overlaps = []
    for a, b in zip(rows_s, rows_p):
        first, second = set(a[a >= 0].tolist()), set(b[b >= 0].tolist())
        overlaps.append(1.0 if not first and not second else len(first & second) / max(len(first), len(second)))
    identical = np.mean([(a == b).all() for a, b in zip(rows_s, rows_p)])
    same = rows_s == rows_p
    max_diff = float(np.abs(scores_s[same] - scores_p[same]).max()) if same.any() else float("nan")
    print(f"mean top-{args.k} overlap bm25s vs pyserini: {np.mean(overlaps):.4f} "
          f"(min {np.min(overlaps):.2f}); identical lists: {identical:.4f}; "
          f"max score difference on shared ranks: {max_diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
