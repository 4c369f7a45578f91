"""Parallel precomputation of the reward cache with Ray (``ragenv precompute --ray``).

The questions are cut into shards. Each shard is one Ray task: in a fresh process (on any
machine of the Ray cluster) it builds the environment with a *private* reward cache file and
runs the single-process code path on its questions (``SmartRAGEnv.precompute`` or
``RAGRetrievalEnv.precompute``), then returns that SQLite file's bytes. The driver merges
each returned file into the main cache with :meth:`RewardCache.merge_from` (one transaction per
shard) as the shards finish, so an interrupted run keeps the shards already merged.

Shards are whole multiples of ``batch_size`` questions, taken in order, so every LLM batch a
task runs is a batch the single process runs: the merged cache holds exactly the keys and
values of ``ragenv precompute`` without ``--ray`` (``tests/test_distributed.py``).

Every Ray node needs ragenv installed and the data (``RAGENV_DATA`` or the checked download);
a node converts the GGUF model once into its own ``RAGENV_CACHE``. Only the results travel.
Questions already in the main cache are recomputed by the tasks (they cannot read the
driver's file); the merge keeps the entries already there.

Ray is an optional dependency: ``pip install 'ragenv[ray]'``.
"""
from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ragenv.errors import ConfigError, RagenvError
from ragenv.reward_cache import RewardCache
from ragenv.spec import RunSpec

SUPPORTED = ("RAGRetrieval-v0", "SmartRAG-v0")
_PASSED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "XDG_CACHE_HOME")


@contextmanager
def ray_cluster(address: str | None, workers: int | None) -> Iterator[Any]:
    """The ``ray`` module, connected: to ``address`` if given, else to the running instance, else to a private
    local one of ``workers`` CPUs (default all) that this block shuts down again.

    A private instance's workers get this process's ``RAGENV_*`` and Hugging Face variables, so they read the
    same data and model caches.
    """
    try:
        import ray
    except ImportError:
        raise ConfigError("Ray is not installed: pip install 'ragenv[ray]' (or pip install ray)") from None
    if ray.is_initialized():
        yield ray
        return
    if address:
        kwargs: dict[str, Any] = {"address": address}
    else:
        env_vars = {k: v for k, v in os.environ.items() if k.startswith("RAGENV_") or k in _PASSED_ENV}
        kwargs = {"num_cpus": workers or os.cpu_count(), "include_dashboard": False,
                  "runtime_env": {"env_vars": env_vars}}
    ray.init(log_to_driver=False, configure_logging=False, **kwargs)
    try:
        yield ray
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class PrecomputeJob(RunSpec):
    """What to precompute: the run spec (SmartRAG-v0 on a training split by default) and the batching."""

    env: str = "SmartRAG-v0"
    split: str = "train"
    batch_size: int = 16
    single_passages: bool = False  # RAGRetrieval-v0: also each first-stage candidate alone (R3's feedback)

    @property
    def precompute_options(self) -> dict:
        """Keyword arguments of the environment's ``precompute`` beyond the batching."""
        return {"single_passages": True} if self.single_passages else {}

    def __post_init__(self):
        super().__post_init__()
        if self.single_passages and not self.env.startswith("RAGRetrieval"):
            raise ConfigError("single-passage feedback (--single-passages) is a RAGRetrieval-v0 precompute")
        if self.env not in SUPPORTED:
            raise ConfigError(f"precompute fills the reward cache of {' and '.join(SUPPORTED)}, not {self.env!r}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size!r}")


def make_env(job: PrecomputeJob, cache: RewardCache | str | os.PathLike | None = None):
    """The environment of ``job`` (no encoder features: precompute needs none), over ``cache``."""
    import gymnasium as gym

    import ragenv  # noqa: F401 (registers the environments)

    if cache is not None and not isinstance(cache, RewardCache):
        cache = RewardCache(cache)
    env = gym.make(job.env, **job.make_kwargs(features=False, cache=cache))
    return env.unwrapped


def run_precompute(job: PrecomputeJob, *, progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """The single-process precompute of ``job``, resumable: each finished batch is journaled.

    A rerun after a kill skips the questions the journal lists (and says so through ``log``);
    the journal is removed when the job completes. Returns the environment's precompute report
    plus ``model_loads`` and ``cache`` (the reward cache's path).
    """
    from ragenv.journal import RunJournal

    base = make_env(job)
    journal = RunJournal("precompute", {"env": job.env, "options": {**base.env_options, **job.precompute_options},
                                        "llm_fingerprint": base.scorer.cache_fingerprint,
                                        "dataset_fingerprint": base.dataset.split_fingerprint(job.split),
                                        "limit": job.limit, "cache": str(base.scorer.cache.path)})
    finished = {qid for r in journal.load() for qid in r["precomputed"]}
    journal.start([{"precomputed": sorted(finished)}] if finished else [])
    remaining = [q for q in base.questions if q.id not in finished]
    if finished:
        log(f"resuming an interrupted precompute: {len(base.questions) - len(remaining)} of "
            f"{len(base.questions)} questions were already done ({journal.path})")
    report = base.precompute(remaining, batch_size=job.batch_size, progress=progress, **job.precompute_options,
                             on_batch=lambda chunk: journal.append([{"precomputed": [q.id for q in chunk]}]))
    journal.finish()
    return {**report, "model_loads": base.scorer.stats.model_loads, "cache": str(base.scorer.cache.path)}


def question_ids(job: PrecomputeJob) -> list[str]:
    """The ids of the questions ``job`` covers, in order (the environment's split and limit)."""
    from ragenv.data import load_dataset

    questions = load_dataset(job.dataset, job.data_dir).split(job.split)
    return [q.id for q in (questions if job.limit is None else questions[: job.limit])]


def shard_questions(question_ids: Sequence[str], shards: int, batch_size: int) -> list[list[str]]:
    """At most ``shards`` contiguous shards of whole ``batch_size`` batches, as even as batches allow.

    Only the last batch may be short, exactly as in the single-process run.
    """
    if shards < 1 or batch_size < 1:
        raise ConfigError("shards and batch_size must be at least 1")
    ids = list(question_ids)
    batches = [ids[i:i + batch_size] for i in range(0, len(ids), batch_size)]
    shards = min(shards, len(batches))
    out, start = [], 0
    for n in range(shards):
        count = len(batches) // shards + (1 if n < len(batches) % shards else 0)
        out.append([q for batch in batches[start:start + count] for q in batch])
        start += count
    return out


def compute_shard(job: PrecomputeJob, question_ids: Sequence[str], cache_path: str | os.PathLike) -> dict:
    """Fill the (private) cache file ``cache_path`` for ``question_ids`` with the single-process code path."""
    cache = RewardCache(cache_path)
    try:
        base = make_env(job, cache)
        questions = [base.question_by_id(q) for q in question_ids]
        started = time.perf_counter()
        report = base.precompute(questions, batch_size=job.batch_size, progress=False, **job.precompute_options)
        report.update(seconds=time.perf_counter() - started, model_loads=base.scorer.stats.model_loads,
                      host=os.uname().nodename, pid=os.getpid())
        cache.checkpoint()  # everything in the main file: the task ships the file alone
        return report
    finally:
        cache.close()


def _shard_task(job_fields: dict, question_ids: list[str]) -> tuple[bytes, dict]:
    """A Ray task: compute one shard into a temporary private cache and return the file's bytes."""
    job = PrecomputeJob(**job_fields)
    with tempfile.TemporaryDirectory(prefix="ragenv-shard-") as folder:
        path = Path(folder) / "shard.sqlite"
        report = compute_shard(job, question_ids, path)
        return path.read_bytes(), report


def ray_precompute(job: PrecomputeJob, *, address: str | None = None, workers: int | None = None,
                   cpus_per_task: float = 1.0, cache: RewardCache | None = None,
                   log: Callable[[str], None] | None = None, progress: bool = True) -> dict:
    """Precompute ``job`` with Ray tasks and merge every shard into ``cache`` (default: the main cache).

    ``address``: a running cluster (``ray start --head`` prints it; ``"auto"`` finds a local
    one); None starts a private local Ray instance. ``workers``: shards to cut (default: the
    cluster's CPUs / ``cpus_per_task``). Each task reserves ``cpus_per_task`` CPUs, and Ray sets
    the task's torch threads to match.
    """
    log = log or (lambda message: None)
    ids = question_ids(job)
    cache = RewardCache() if cache is None else cache  # (an empty cache is falsy: it has __len__)
    with ray_cluster(address, workers) as ray:
        cpus = ray.cluster_resources().get("CPU", 1.0)
        shards = shard_questions(ids, workers or max(1, int(cpus // cpus_per_task)), job.batch_size)
        log(f"{len(ids)} questions in {len(shards)} Ray shards ({cpus:g} CPUs in the cluster, "
            f"{cpus_per_task:g} per task) -> {cache.path}")
        task = ray.remote(num_cpus=cpus_per_task, max_retries=2)(_shard_task)
        fields = asdict(job)
        pending = {task.remote(fields, shard): n for n, shard in enumerate(shards)}
        reports, merged, clock = [], 0, time.perf_counter()
        from ragenv.progress import progress_bar

        with progress_bar(disable=not progress, elapsed=True) as bar:
            bar_task = bar.add_task(f"{job.env} precompute on Ray (shards)", total=len(shards))
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                shard = pending.pop(done[0])
                try:
                    blob, report = ray.get(done[0])
                except ray.exceptions.RayError as exc:
                    raise RagenvError(f"Ray shard {shard} failed: {str(exc).splitlines()[0]}") from None
                with tempfile.TemporaryDirectory(prefix="ragenv-merge-") as folder:
                    path = Path(folder) / "shard.sqlite"
                    path.write_bytes(blob)
                    added = cache.merge_from(path)
                merged += added
                reports.append({**report, "shard": shard, "entries_added": added})
                bar.advance(bar_task)
        return {"questions": len(ids), "shards": len(shards), "states_per_question": reports[0]["states_per_question"]
                if reports else 0, "llm_sequences_computed": sum(r["llm_sequences_computed"] for r in reports),
                "entries_added": merged, "seconds": time.perf_counter() - clock, "cache": str(cache.path),
                "per_shard": sorted(reports, key=lambda r: r["shard"])}


# --------------------------------------------------------------------------- dense embedding pass on Ray
# The shards of a dense index's embedding pass (ragenv.index.dense.EmbeddingPass) as Ray actor calls: each
# worker opens the corpus by its store path (a CorpusStore pickles as its path) and loads the encoder once;
# a corpus held in memory sends each shard's texts instead. Every shard is the single process's shard, made
# of the same encoder batches, so the embeddings are the same bytes (tests/test_dense_scale.py). The driver
# writes each returned shard atomically as it arrives: a killed run resumes at the shards still missing.


class EmbedWorker:
    """A Ray actor: one corpus store and one encoder, embedding shard after shard."""

    def __init__(self, store: Any, encoder: Any):
        from ragenv.data import Corpus
        from ragenv.encoder import Encoder

        self.corpus = Corpus.from_store(store) if store is not None else None
        self.encoder = Encoder(encoder)

    def embed(self, shard: int, rows: Any, texts: list[str] | None) -> tuple[int, Any, dict]:
        """The vectors of one shard (its ``texts``, else its ``rows`` read from the store), with timings."""
        from ragenv.index.dense import encode_texts, truncation_summary

        started = time.perf_counter()
        if texts is None:
            assert self.corpus is not None
            texts = [self.corpus[int(row)].contents for row in rows]
        with truncation_summary(self.encoder):
            vectors = encode_texts(self.encoder, texts)
        return shard, vectors, {"seconds": time.perf_counter() - started, "host": os.uname().nodename,
                                "pid": os.getpid()}


def ray_embed(run: Any, *, address: str | None = None, workers: int | None = None, cpus_per_task: float = 1.0,
              progress: bool = True, log: Callable[[str], None] | None = None) -> dict:
    """Compute the missing shards of ``run`` (a prepared ``EmbeddingPass``) with Ray actors and save each one.

    ``address``, ``workers`` and ``cpus_per_task`` as in :func:`ray_precompute` (``workers``: actors, each
    holding one encoder; default the cluster's CPUs / ``cpus_per_task``). Returns shards done, seconds
    and per-shard timings.
    """
    from ragenv.progress import progress_bar

    log = log or (lambda message: None)
    todo = run.missing()
    if not todo:
        return {"shards": 0, "seconds": 0.0, "per_shard": []}
    store = run.corpus.store
    with ray_cluster(address, workers) as ray:
        cpus = ray.cluster_resources().get("CPU", 1.0)
        count = min(len(todo), workers or max(1, int(cpus // cpus_per_task)))
        actor = ray.remote(num_cpus=cpus_per_task, max_restarts=1, max_task_retries=1)(EmbedWorker)
        pool = [actor.remote(store, run.encoder.config) for _ in range(count)]
        log(f"{len(todo)} shards of {run.shard_rows} passages on {count} Ray workers ({cpus:g} CPUs in the cluster)")
        queue, pending, reports, clock = list(todo), {}, [], time.perf_counter()

        def submit(worker) -> None:
            shard = queue.pop(0)
            texts = None if store is not None else run.texts(shard)
            pending[worker.embed.remote(shard, run.rows(shard), texts)] = worker

        with progress_bar(disable=not progress, elapsed=True) as bar:
            task = bar.add_task("dense index: embedding shards on Ray", total=len(todo))
            for worker in pool[:len(queue)]:
                submit(worker)
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                worker = pending.pop(done[0])
                try:
                    shard, vectors, report = ray.get(done[0])
                except ray.exceptions.RayError as exc:
                    raise RagenvError(f"Ray embedding shard failed: {str(exc).splitlines()[0]}") from None
                run.save(shard, vectors)
                reports.append({**report, "shard": shard})
                bar.advance(task)
                if queue:
                    submit(worker)
        return {"shards": len(todo), "workers": count, "seconds": time.perf_counter() - clock,
                "per_shard": sorted(reports, key=lambda r: r["shard"])}
