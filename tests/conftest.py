"""Shared fixtures: real data (RAGENV_DATA, default ../shared/data), a small real subset, a private cache.

Two tiers. ``@pytest.mark.unit`` tests are model-free (no LLM, encoder or Java VM): ``pytest -m unit``
runs them in under a minute after any change, and a unit test that loads one fails (see
:func:`unit_tests_load_no_model`). Everything else uses real models on small real subsets.

The suite runs in parallel (pytest-xdist, ``-n auto --maxprocesses 4 --dist loadgroup`` in pyproject.toml;
``-n 0`` runs it in one process). Each test module is one group, so its module fixtures are built once, on
one worker; the modules that start a local Ray cluster share a group, so two clusters never run at once.
Workers share the converted models and the indexes (their writes are atomic and locked), each has its
own reward cache, and each runs torch (and the commands it starts) on its share of the cores.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.support import REPO, TEST_LLM, private_cache

# Test modules that start a local Ray cluster: one xdist group, so they never run at the same time.
RAY_MODULES = ("test_distributed", "test_dense_scale")


def pytest_configure(config):
    import tempfile

    os.environ.setdefault("RAGENV_DATA", str((REPO.parent / "shared" / "data").resolve()))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if "PYTEST_XDIST_WORKER" in os.environ and workers > 1:
        # A share of the cores for this worker's torch and for the commands its tests start (set before torch loads).
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, threads)
    # One private cache for the whole session (models convert once), never the user's.
    if "RAGENV_TEST_CACHE" in os.environ:
        os.environ["RAGENV_CACHE"] = os.environ["RAGENV_TEST_CACHE"]
        return
    folder = Path(tempfile.mkdtemp(prefix="ragenv-test-cache-"))
    if "PYTEST_XDIST_WORKER" in os.environ:  # RAGENV_CACHE is still the controller's: share its models and indexes
        os.environ["RAGENV_CACHE"] = private_cache(folder)["RAGENV_CACHE"]
    else:  # the controller (or a plain run): the workers it starts inherit this RAGENV_CACHE
        os.environ["RAGENV_CACHE"] = str(folder)
    config._ragenv_temp_cache = os.environ["RAGENV_CACHE"]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """One xdist group per test module (the Ray modules share one): see the module docstring."""
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module is not None else item.nodeid
        item.add_marker(pytest.mark.xdist_group("ray" if module in RAY_MODULES else module))


# Modules that only a model (or the Java VM behind pyserini) brings in: a unit test must not import them.
MODEL_MODULES = ("transformers.modeling_utils", "sentence_transformers", "jnius", "pyserini.search")


@pytest.fixture(autouse=True)
def unit_tests_load_no_model(request):
    """Fail a ``unit`` test that imported a model library: it belongs to the model tier (unmark it)."""
    if request.node.get_closest_marker("unit") is None:
        yield
        return
    before = {name for name in MODEL_MODULES if name in sys.modules}
    yield
    loaded = [name for name in MODEL_MODULES if name in sys.modules and name not in before]
    if loaded:
        pytest.fail(f"a unit test must be model-free, but it imported {', '.join(loaded)}: remove its unit mark")


def pytest_unconfigure(config):
    """Remove the session's private cache (converted models are large)."""
    import shutil

    folder = getattr(config, "_ragenv_temp_cache", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return Path(os.environ["RAGENV_DATA"])


@pytest.fixture(scope="session")
def nq():
    from ragenv.data import load_dataset

    return load_dataset("nq")


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory, nq) -> Path:
    """A user-format folder: 24 real nq questions (16 test, 8 train), their gold passages and 300 others."""
    folder = tmp_path_factory.mktemp("small-nq")
    questions = nq.split("test")[:16] + nq.split("train")[:8]
    gold = {pid for q in questions for pid in q.gold_passage_ids}
    passages = [nq.corpus[nq.corpus.row(pid)] for pid in sorted(gold)]
    passages += [p for p in nq.corpus.passages[2000:2400] if p.id not in gold][:300]
    with open(folder / "corpus.jsonl", "w") as handle:
        for p in passages:
            handle.write(json.dumps({"id": p.id, "title": p.title, "text": p.text}) + "\n")
    with open(folder / "questions.jsonl", "w") as handle:
        for q in questions:
            handle.write(json.dumps({"id": q.id, "question": q.question, "answers": list(q.answers),
                                     "gold_passage_ids": list(q.gold_passage_ids), "split": q.split}) + "\n")
    return folder


@pytest.fixture(scope="session")
def small_env(small_dataset):
    """RAGRetrieval-v0 on the small folder with SmolLM2 (shared by tests that only read it)."""
    import gymnasium as gym

    import ragenv  # noqa: F401

    env = gym.make("RAGRetrieval-v0", dataset=str(small_dataset), split="test", llm=TEST_LLM)
    yield env
    env.close()


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``).

    On a shared 2-core machine one thread is several times faster than two (no spin-waiting).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def truncated_dataset(small_dataset, tmp_path_factory):
    """A factory: ``truncated_dataset(words)`` is small_dataset with every passage cut to its first ``words``
    words (same ids, questions and splits); short prompts keep SmolLM2 fast on a small CPU. Made once per size."""
    made: dict[int, Path] = {}

    def make(words: int) -> Path:
        if words not in made:
            folder = tmp_path_factory.mktemp(f"small-nq-{words}-words")
            with open(small_dataset / "corpus.jsonl") as src, open(folder / "corpus.jsonl", "w") as dst:
                for line in src:
                    row = json.loads(line)
                    row["text"] = " ".join(row["text"].split()[:words])
                    dst.write(json.dumps(row) + "\n")
            (folder / "questions.jsonl").write_text((small_dataset / "questions.jsonl").read_text())
            made[words] = folder
        return made[words]

    return make


@pytest.fixture(scope="session")
def short_dataset(truncated_dataset) -> Path:
    """small_dataset with every passage cut to its first 40 words (the SmartRAG and vector-env tests' data)."""
    return truncated_dataset(40)


@pytest.fixture
def forbid_materialising(monkeypatch):
    """Make ``passages`` and ``contents`` of a store-backed corpus fail: a build must read it row by row."""
    from ragenv.data import Corpus

    for name in ("passages", "contents"):
        original = getattr(Corpus, name)

        def guarded(self, _original=original, _name=name):
            if self.store is not None:
                raise AssertionError(f"the store-backed corpus was materialised through Corpus.{_name}")
            return _original.__get__(self, Corpus)

        monkeypatch.setattr(Corpus, name, property(guarded))
