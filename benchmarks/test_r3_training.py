"""One R3 training step: wall time and peak resident memory, InfoNCE alone and with the listwise term.

    RAGENV_DATA=../shared/data .venv/bin/python -m pytest benchmarks/test_r3_training.py -s

Workload: the 8 train questions of the small nq folder as one batch, the default ``bm25s+dense``
first stage (m = 20 from each, so up to 40 candidates re-ranked live per question), the frozen
LLM's feedback computed once outside the timings. Peak memory is the process's resident set
sampled every 5 ms during the step, above what it held before. It is reported in ``extra_info``
and printed, not asserted: it depends on passage lengths and the allocator.
"""
from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from tests.support import TEST_LLM

PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


class _PeakRSS:
    """Samples the resident set in a thread while the block runs; ``.peak`` is the rise in bytes."""

    def __enter__(self):
        self.start, self.peak, self._stop = _rss(), 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss() - self.start)
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss() - self.start)


@pytest.fixture(scope="module")
def train_env(small_dataset, tmp_path_factory):
    import gymnasium as gym

    env = gym.make("RAGRetrieval-v0", dataset=str(small_dataset), split="train", llm=TEST_LLM, features=False, k=3,
                   num_candidates=20, cache=str(tmp_path_factory.mktemp("r3-bench") / "cache.sqlite"))
    yield env
    env.close()


@pytest.mark.parametrize("listwise_weight", [0.0, 1.0], ids=["infonce", "infonce+listwise"])
def test_r3_training_step(benchmark, train_env, listwise_weight):
    import torch

    from ragenv.agents.r3 import R3Config, prepare_feedback
    from ragenv.agents.r3.training import R3Retriever, _train_step

    base = train_env.unwrapped
    config = R3Config(batch_size=8, listwise_weight=listwise_weight)
    retriever = R3Retriever(config, base.corpus)
    prepared = prepare_feedback(train_env, config, retriever, progress=False)  # the LLM's work, untimed
    upper = dict(zip(prepared["question_ids"], prepared["upper"]))
    lower = dict(zip(prepared["question_ids"], prepared["lower"]))
    optimizer = torch.optim.AdamW(retriever.encoder.module.parameters(), lr=config.learning_rate)
    batch = list(base.questions)
    peaks, records = [], []

    def step():
        with _PeakRSS() as memory:
            records.append(_train_step(retriever, base, batch, upper, lower, optimizer,
                                       np.random.default_rng(0), config))
        peaks.append(memory.peak)

    benchmark.pedantic(step, rounds=3, warmup_rounds=1)
    assert all(np.isfinite(r["loss"]) for r in records) and all(r["llm_sequences"] == 0 for r in records)
    benchmark.extra_info.update(peak_rss_gib=max(peaks) / 2**30, questions=len(batch),
                                listwise_weight=listwise_weight)
    print(f"\nR3 step, {len(batch)} questions, listwise weight {listwise_weight}: "
          f"peak RSS +{max(peaks) / 2**30:.2f} GiB, median {benchmark.stats.stats.median:.2f} s")
