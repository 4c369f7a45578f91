"""What reading a corpus store costs: open time, memory after open, row and id lookup latency.

    .venv/bin/python benchmarks/corpus_store.py STORE [--lookups 10000] [--seed 0]

STORE is a store folder or a store name under the ragenv cache's ``corpora/`` (build one with
``ragenv corpus ingest`` or ``ragenv corpus synth``). Prints one JSON object:

- ``open_ms``: ``CorpusStore.open`` plus ``Corpus.from_store`` (reads manifest.json, maps the files);
- ``rss_anon_mib`` / ``rss_file_mib``: the process's private resident memory and its resident mapped
  file pages (page cache, shared and reclaimable), right after open and after the lookups;
  ``rss_anon_growth_after_open_mib``: the private memory that opening added;
- ``row_lookup_us`` / ``id_lookup_us``: median and p99 of ``corpus[row]`` (a Passage: one offsets read,
  three UTF-8 decodes) and of ``corpus.row(pid)`` (hash, binary search of ids.hash, id comparison)
  over ``--lookups`` uniformly random rows, each call timed on its own with ``perf_counter_ns``.

The store's pages may already be in the page cache (a warm read, as right after building it); drop
the cache (``echo 3 > /proc/sys/vm/drop_caches``, as root) beforehand for cold figures.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time


def _rss_mib() -> dict[str, float]:
    fields = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(("RssAnon:", "RssFile:")):
                key, value = line.split(":")
                fields[key] = int(value.split()[0]) / 1024
    return {"rss_anon_mib": round(fields["RssAnon"], 1), "rss_file_mib": round(fields["RssFile"], 1)}


def _quantiles(nanoseconds: list[int]) -> dict[str, float]:
    ordered = sorted(nanoseconds)
    return {"median": round(statistics.median(ordered) / 1000, 2),
            "p99": round(ordered[int(0.99 * (len(ordered) - 1))] / 1000, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--lookups", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from ragenv.corpus import CorpusStore
    from ragenv.data import Corpus

    before = _rss_mib()
    start = time.perf_counter()
    corpus = Corpus.from_store(CorpusStore.open(args.store))
    open_ms = (time.perf_counter() - start) * 1000
    opened = _rss_mib()
    draw = random.Random(args.seed)
    rows = [draw.randrange(len(corpus)) for _ in range(args.lookups)]
    row_ns, ids = [], []
    for row in rows:
        tick = time.perf_counter_ns()
        passage = corpus[row]
        row_ns.append(time.perf_counter_ns() - tick)
        ids.append(passage.id)
    id_ns = []
    for pid, row in zip(ids, rows):
        tick = time.perf_counter_ns()
        found = corpus.row(pid)
        id_ns.append(time.perf_counter_ns() - tick)
        assert found == row
    after = _rss_mib()
    store = corpus.store
    assert store is not None
    print(json.dumps({
        "store": str(store.path), "passages": len(corpus), "disk_mib": round(store.disk_bytes() / 2**20, 1),
        "open_ms": round(open_ms, 2), "lookups": args.lookups,
        "after_open": opened, "after_lookups": after,
        "rss_anon_growth_after_open_mib": round(opened["rss_anon_mib"] - before["rss_anon_mib"], 1),
        "row_lookup_us": _quantiles(row_ns), "id_lookup_us": _quantiles(id_ns),
    }, indent=1))


if __name__ == "__main__":
    main()
