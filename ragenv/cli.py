"""The ``ragenv`` command line (typer + rich). Errors print as one line and exit non-zero."""
from __future__ import annotations

import math
import os
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Optional, cast

import typer
from rich.console import Console
from rich.table import Table

from ragenv.agents.ppo_config import PPOConfig
from ragenv.agents.r3.training import R3Config
from ragenv.cli_config import config_options
from ragenv.errors import RagenvError
from ragenv.provenance import provenance_line

if TYPE_CHECKING:
    from ragenv.envs import RAGRetrievalEnv, SmartRAGEnv
    from ragenv.spec import RunSpec

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Gymnasium environments for RL on retrieval-augmented generation.")
data_app = typer.Typer(no_args_is_help=True, help="Datasets: counts and checks.")
cache_app = typer.Typer(no_args_is_help=True, help="The reward cache: where it is, how big, whether it is sound.")
leaderboard_app = typer.Typer(no_args_is_help=True,
                              help="Leaderboard: replay-score submissions, the schema, entries, the page.")
app.add_typer(data_app, name="data")
app.add_typer(cache_app, name="cache")
app.add_typer(leaderboard_app, name="leaderboard")
train_app = typer.Typer(no_args_is_help=True, help="Train reference agents.")
smartrag_app = typer.Typer(no_args_is_help=True, help="SmartRAG-v0 experiments.")
app.add_typer(train_app, name="train")
app.add_typer(smartrag_app, name="smartrag")
corpus_app = typer.Typer(no_args_is_help=True,
                         help="Corpus stores on disk (up to full Wikipedia): ingest passage files, add synthetic "
                              "distractors, inspect.")
app.add_typer(corpus_app, name="corpus")
console = Console()
err_console = Console(stderr=True)

DEMO_AGENTS = ("oracle", "bm25", "dense", "closed-book", "random")


def dtype_option(default: str | None = "float32"):
    """``--dtype``: the frozen LLM's precision (float32 is the canonical setting every version is defined in)."""
    return typer.Option(default, help="The frozen LLM's precision: float32 (canonical, the default) or "
                                      "bfloat16/float16 (opt-in, faster on CPUs with native bf16; results are marked "
                                      "non-canonical).")


def llm_option(what: str = "The frozen LLM"):
    """``--llm``: the frozen LLM (the run spec's default, :data:`ragenv.spec.DEFAULT_LLM`)."""
    from ragenv.spec import DEFAULT_LLM

    return typer.Option(DEFAULT_LLM, help=f"{what}: gemma-3-270m, smollm2-135m, a .gguf file, a model folder or a "
                                          "Hugging Face id.")


def dataset_option():
    """``--dataset``: a question set by name, or a user folder."""
    from ragenv.spec import DEFAULT_DATASET

    return typer.Option(DEFAULT_DATASET, help="nq, hotpotqa, squad, or a folder with corpus.jsonl and questions.jsonl.")


def split_option(default: str, what: str = "The split"):
    """``--split``."""
    return typer.Option(default, help=f"{what}: train, dev, test, or all.")


def limit_option(default: int | None = None, what: str = "Only the first N questions of the split"):
    """``--limit``: the first N questions (None: all)."""
    return typer.Option(default, help=f"{what}.")


def data_dir_option():
    """``--data-dir``: where the data files are."""
    return typer.Option(None, help="Data folder (default: RAGENV_DATA, else download).")


def corpus_option():
    """``--corpus``: serve the questions over a corpus store instead of their own corpus."""
    return typer.Option(None, help="A corpus store (name or folder, see `ragenv corpus`) to serve the questions "
                                   "over instead of their own corpus; gold passages are matched by id or by text.")


def k_option():
    """``--k``: RAGRetrieval-v0's passages per question."""
    return typer.Option(None, help="RAGRetrieval-v0: passages per question (default 3).")


def top_n_option():
    """``--top-n``: SmartRAG-v0's passages per retrieval."""
    return typer.Option(None, help="SmartRAG-v0: passages per retrieval (default 3).")


def device_option():
    """``--device``: where the frozen LLM runs."""
    return typer.Option("auto", help="auto (a CUDA GPU when present), cpu, cuda or cuda:N.")


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def _results_table(title: str, results: list[dict], k: int) -> Table:
    """Metrics as rows and agents as columns, so that several agents fit a terminal (rows: metrics present)."""
    table = Table(title=title)
    table.add_column("metric")
    for result in results:
        table.add_column(result["agent"], justify="right")
    for metric in ("reward", "answer_logprob", "logprob_gain", "em", "f1", "accuracy", f"hit@{k}",
                   "retrievals_per_question", "answered_without_retrieval", "cache_hit_rate", "seconds"):
        if any(metric in r["metrics"] for r in results):
            table.add_row(metric, *[_fmt(r["metrics"].get(metric, float("nan"))) for r in results])
    return table


def _corpus_title(corpus: Optional[str]) -> str:
    """`` | corpus NAME`` for a title when the run is served over a corpus store (nothing over the dataset's own)."""
    return f" | corpus {corpus}" if corpus else ""


def _print_without_gold(result: dict) -> None:
    """Say how many questions have no gold passage in the run's corpus (a corpus store may lack some)."""
    without_gold = result["metrics"].get("questions_without_gold")
    if without_gold:
        console.print(f"{without_gold} of {result['n']} questions have no gold passage in this corpus: hit@k, "
                      f"recall@k and ndcg@k are over the other {result['n'] - without_gold}", highlight=False)


def _evaluate_hint(spec: RunSpec, agent: str, *extra: str) -> str:
    """The ``ragenv evaluate`` command for an agent trained on ``spec``: the test split, same data, corpus and LLM."""
    corpus = ("--corpus", spec.corpus) if spec.corpus else ()
    return " ".join(("ragenv evaluate --env", spec.env, "--agent", agent, "--dataset", spec.dataset,
                     "--split test --llm", spec.llm, *corpus, *extra))


@app.command()
def evaluate(
    agent: str = typer.Option("bm25", help="Agent name (see `ragenv agents`)."),
    env: str = typer.Option("RAGRetrieval-v0", help="Environment id."),
    dataset: str = dataset_option(),
    split: str = split_option("test"),
    limit: Optional[int] = limit_option(),
    llm: str = llm_option(),
    k: Optional[int] = k_option(),
    top_n: Optional[int] = top_n_option(),
    reward: Optional[str] = typer.Option(None, help="RAGRetrieval-v0: logprob, logprob_gain (default), em, f1, "
                                                    "accuracy; SmartRAG-v0: em_f1 (default) or accuracy."),
    cost_per_passage: Optional[float] = typer.Option(
        None, help="RAGRetrieval-v0: reward cost per passage used (default 0.02)."),
    alpha: Optional[float] = typer.Option(None, help="SmartRAG-v0: reward cost per retrieval (default 0.2)."),
    max_retrievals: Optional[int] = typer.Option(None, help="SmartRAG-v0: retrieval quota per question (default 1)."),
    seed: int = typer.Option(0, help="Seed for stochastic agents."),
    output: Optional[str] = typer.Option(None, help="Write the result JSON here."),
    data_dir: Optional[str] = data_dir_option(),
    corpus: Optional[str] = corpus_option(),
    submission: Optional[str] = typer.Option(None, help="Also write a leaderboard submission (the actions) here."),
    name: Optional[str] = typer.Option(None, help="Submission: display name (default: the agent name)."),
    authors: Optional[str] = typer.Option(None, help="Submission: comma-separated authors."),
    description: Optional[str] = typer.Option(None, help="Submission: what the agent does."),
    url: Optional[str] = typer.Option(None, help="Submission: paper or code URL (shown as text)."),
    batch_size: int = typer.Option(16, min=1, help="Questions per frozen-LLM batch; each finished batch is journaled, "
                                                   "so a killed run resumes from there."),
    dtype: str = dtype_option(),
    device: str = device_option(),
    texts: bool = typer.Option(False, "--texts", help="Copy each question's text and gold answers into the "
                                                      "per-question records of --output, for local error analysis "
                                                      "(by default records name questions by id only, so a shared "
                                                      "result file does not copy the dataset)."),
):
    """Run an agent on every question of a split and report reward, answer and IR metrics.

    A killed run resumes: rerun the same command and it reuses what the first attempt finished.
    """
    from ragenv.evaluate import EvalConfig, env_options_for, write_json
    from ragenv.evaluate import evaluate as run

    options = env_options_for(env, k=k, top_n=top_n, reward=reward, cost_per_passage=cost_per_passage, alpha=alpha,
                              max_retrievals=max_retrievals)
    config = EvalConfig(env=env, agent=agent, dataset=dataset, split=split, limit=limit, llm=llm, seed=seed,
                        data_dir=data_dir, corpus=corpus, dtype=dtype, device=device, env_options=options)
    metadata = None
    if submission:  # checked before the run, so bad metadata costs nothing
        from ragenv.leaderboard.submission import check_submittable, default_metadata

        if corpus:
            raise RagenvError("--submission: the leaderboard replays each question set over its own corpus; "
                              "drop --corpus to make a submission")
        check_submittable(env)
        metadata = default_metadata(agent, env, dataset=dataset, split=split, name=name, description=description,
                                    url=url, authors=[a.strip() for a in authors.split(",")] if authors else None)
    result = run(config, log=console.print, batch_size=batch_size, texts=texts)
    console.print(_results_table(f"{env} | {dataset}/{split} | n={result['n']} | {llm}{_corpus_title(corpus)}",
                                 [result], result["env_options"].get("k", 3)))
    _print_without_gold(result)
    console.print(f"[dim]{provenance_line(result['provenance'])}[/dim]", highlight=False)
    if output:
        write_json(result, output)
        console.print(f"wrote {output}")
    if submission:
        from ragenv.leaderboard.submission import submission_from_result, write_submission

        write_submission(submission_from_result(result, metadata), submission)
        console.print(f"wrote submission {submission}")


@app.command()
def demo(
    limit: int = typer.Option(20, help="Questions of nq test to use."),
    llm: str = llm_option(),
    agents: Optional[str] = typer.Option(None, help=f"Comma-separated agents [default: {','.join(DEMO_AGENTS)}]."),
    data_dir: Optional[str] = data_dir_option(),
    corpus: Optional[str] = corpus_option(),
    dtype: str = dtype_option(),
    device: str = device_option(),
    output_dir: Optional[str] = typer.Option(
        None, help="Also write each agent's result JSON (AGENT.json) into this folder."),
):
    """Compare the baselines on a slice of nq test with the default LLM (--corpus: over a corpus store).

    The dense baseline needs a one-time embedding of all 16k passages (several minutes on
    a laptop CPU; a corpus store's own index takes longer); by default the demo includes it
    only once the index of the corpus it runs over exists. Name it in --agents to build it.
    """
    from pathlib import Path

    from ragenv.encoder import Encoder
    from ragenv.evaluate import EvalConfig, make_env, write_json
    from ragenv.evaluate import evaluate as run
    from ragenv.index.dense import DenseIndex
    from ragenv.registry import check_agent_name

    names = [a.strip() for a in (agents or ",".join(DEMO_AGENTS)).split(",") if a.strip()]
    for name in names:
        check_agent_name(name, "RAGRetrieval-v0")
    config = EvalConfig(dataset="nq", split="test", limit=limit, llm=llm, data_dir=data_dir, corpus=corpus,
                        dtype=dtype, device=device)
    environment = make_env(config)
    base = cast("RAGRetrievalEnv", environment.unwrapped)  # the demo runs RAGRetrieval-v0
    dense_path = DenseIndex.cache_path(base.corpus, Encoder())  # the corpus served: the store's with --corpus
    if agents is None and not (dense_path / "manifest.json").exists():
        names.remove("dense")
        console.print("[dim]dense skipped: its index is not built yet; `ragenv demo --agents "
                      + ",".join(DEMO_AGENTS) + (f" --corpus {corpus}" if corpus else "")
                      + "` builds it once (several minutes)[/dim]", highlight=False)
    results = []
    for name in names:
        console.print(f"[bold]{name}[/bold] ...")
        results.append(run(replace(config, agent=name), env=environment))
        if output_dir:
            write_json(results[-1], Path(output_dir) / f"{name}.json")
    console.print(_results_table(f"RAGRetrieval-v0 | nq/test first {limit} | {llm}{_corpus_title(corpus)}", results,
                                 base.k))
    _print_without_gold(results[0])  # the same questions and corpus for every agent
    console.print(f"[dim]{provenance_line(results[0]['provenance'])}[/dim]", highlight=False)


@app.command()
def precompute(
    env: str = typer.Option("SmartRAG-v0", help="Environment id (SmartRAG-v0 or RAGRetrieval-v0)."),
    dataset: str = dataset_option(),
    split: str = split_option("train"),
    limit: Optional[int] = limit_option(),
    llm: str = llm_option(),
    k: Optional[int] = k_option(),
    top_n: Optional[int] = top_n_option(),
    max_retrievals: Optional[int] = typer.Option(
        None, help="Retrieval quota per question (default 1): states to cover."),
    batch_size: int = typer.Option(16, min=1, help="Questions per batch (each batch is saved as it finishes)."),
    data_dir: Optional[str] = data_dir_option(),
    corpus: Optional[str] = corpus_option(),
    ray: bool = typer.Option(False, "--ray", help="Compute shards of the questions as Ray tasks, each into a private "
                                                  "cache, and merge them into the cache (pip install 'ragenv[ray]')."),
    ray_address: Optional[str] = typer.Option(None, help="With --ray: the cluster to join (`ray start --head` prints "
                                                         "it; 'auto' finds a local one). Default: a private local Ray "
                                                         "instance."),
    workers: Optional[int] = typer.Option(None, min=1, help="With --ray: shards to cut (default: the cluster's CPUs)."),
    single_passages: bool = typer.Option(False, "--single-passages", help="RAGRetrieval-v0: also score each of the 20 "
                                         "BM25 candidates alone: R3's feedback for its bm25s first stage (the "
                                         "bm25s+dense default scores its dense half itself in `ragenv train r3`)."),
    dtype: str = dtype_option(),
    device: str = device_option(),
):
    """Fill the reward cache in batches: every frozen-LLM result SmartRAG-v0 episodes can reach, or
    RAGRetrieval-v0's closed-book baseline and first-stage top-k choice per question.

    --ray spreads the questions over a Ray cluster (README: Speed, Ray precompute).
    """
    import time

    from ragenv.distributed import PrecomputeJob, ray_precompute, run_precompute
    from ragenv.evaluate import env_options_for

    if workers is not None and not (ray or ray_address):
        raise RagenvError("--workers sets the Ray shards: add --ray")
    options = env_options_for(env, k=k, top_n=top_n, max_retrievals=max_retrievals)
    job = PrecomputeJob(env=env, dataset=dataset, split=split, limit=limit, llm=llm, dtype=dtype, device=device,
                        data_dir=data_dir, corpus=corpus, env_options=options, batch_size=batch_size,
                        single_passages=single_passages)
    started = time.perf_counter()
    if ray or ray_address:
        report = ray_precompute(job, address=ray_address, workers=workers, log=console.print)
        console.print(f"precomputed {report['questions']} questions x {report['states_per_question']} states of {env} "
                      f"({dataset}/{split}, {llm}) in {report['shards']} Ray shards: "
                      f"{report['llm_sequences_computed']} LLM sequences computed, "
                      f"{report['entries_added']} new cache entries merged, "
                      f"{time.perf_counter() - started:.1f} s; cache {report['cache']}")
        return
    report = run_precompute(job, progress=True, log=console.print)
    console.print(f"precomputed {report['questions']} questions x {report['states_per_question']} states of {env} "
                  f"({dataset}/{split}, {llm}): {report['llm_sequences_computed']} LLM sequences computed, "
                  f"{report['model_loads']} model loads, {time.perf_counter() - started:.1f} s; "
                  f"cache {report['cache']}")


@train_app.command("ppo")
@config_options(PPOConfig, skip=("device",), aliases={"total_timesteps": ("--steps",)})
def train_ppo(
    output: str = typer.Option(..., help="Folder for the trained agent and its TensorBoard logs."),
    env: str = typer.Option("SmartRAG-v0", help="Environment id (SmartRAG-v0)."),
    dataset: str = dataset_option(),
    split: str = split_option("train", "Split to train on"),
    limit: Optional[int] = limit_option(),
    llm: str = llm_option(),
    alpha: float = typer.Option(0.2, help="Reward cost per retrieval."),
    max_retrievals: int = typer.Option(1, help="Retrieval quota per question."),
    overwrite: bool = typer.Option(False, help="Replace a trained agent already in --output."),
    data_dir: Optional[str] = data_dir_option(),
    corpus: Optional[str] = corpus_option(),
    dtype: str = dtype_option(),
    device: str = device_option(),
    config_overrides: Optional[dict] = None,
):
    """Train the MaskablePPO policy on SmartRAG-v0 (the cache is filled first); evaluate it with --agent ppo:DIR.

    Every PPOConfig field is an option (--steps, --observation-keys, --net-arch, ...).
    """
    from pathlib import Path

    import gymnasium as gym

    import ragenv  # noqa: F401
    from ragenv.agents.ppo import PPOAgent, observation_shapes
    from ragenv.registry import env_family
    from ragenv.spec import RunSpec

    if env_family(env) != "smartrag":
        raise RagenvError(f"the PPO agent trains on SmartRAG-v0, not {env}")
    if (Path(output) / "model.zip").exists() and not overwrite:
        raise RagenvError(f"{output} already holds a trained agent; pass --overwrite or choose another --output")
    config = PPOConfig(**(config_overrides or {}))
    spec = RunSpec(env=env, dataset=dataset, split=split, limit=limit, llm=llm, dtype=dtype, device=device,
                   data_dir=data_dir, corpus=corpus, env_options={"alpha": alpha, "max_retrievals": max_retrievals})
    environment = gym.make(env, **spec.make_kwargs(features=config.needs_features))
    base = cast("SmartRAGEnv", environment.unwrapped)  # the smartrag family (checked above): SmartRAG-v0
    observation_shapes(base.observation_space, config.observation_keys)  # an unknown key fails before any LLM work
    report = base.precompute(progress=True)
    console.print(f"cache ready: {report['questions']} questions, "
                  f"{report['llm_sequences_computed']} LLM sequences computed")
    agent = PPOAgent.train(environment, config, output, progress=True, resume=not overwrite, log=console.print)
    info = agent.metadata["training"]
    console.print(f"trained {info['timesteps']} steps ({info['episodes']} episodes) in {info['seconds']:.1f} s, "
                  f"{info['steps_per_second']:.0f} steps/s; "
                  f"mean return of the last fifth {info['mean_return_last_fifth']:.3f}")
    console.print(f"saved {output} (TensorBoard: tensorboard --logdir {output}); evaluate with: "
                  + _evaluate_hint(spec, f"ppo:{output}", f"--alpha {alpha:g}"), highlight=False)


@train_app.command("r3")
@config_options(R3Config, skip=("device",))
def train_r3(
    output: str = typer.Option(..., help="Folder for the trained retriever (evaluate it with --agent r3:DIR)."),
    dataset: str = dataset_option(),
    split: str = split_option("train", "Split to train on"),
    limit: Optional[int] = limit_option(200, "Only the first N questions of the split (default 200; 0 = all)"),
    llm: str = llm_option("The frozen LLM whose feedback trains the retriever"),
    overwrite: bool = typer.Option(False, help="Replace a trained agent already in --output."),
    data_dir: Optional[str] = data_dir_option(),
    corpus: Optional[str] = corpus_option(),
    dtype: str = dtype_option(),
    device: str = device_option(),
    config_overrides: Optional[dict] = None,
):
    """Train the R3 retriever on RAGRetrieval-v0's feedback (scores the first-stage candidates first; resumable).

    Every R3Config field is an option (--first-stage, --epochs, --listwise-weight, ...).
    """
    from pathlib import Path

    import gymnasium as gym

    import ragenv  # noqa: F401
    from ragenv.agents.r3 import train
    from ragenv.spec import RunSpec

    if (Path(output) / "model.pt").exists() and not overwrite:
        raise RagenvError(f"{output} already holds a trained agent; pass --overwrite or choose another --output")
    config = R3Config(**(config_overrides or {}))
    spec = RunSpec(env="RAGRetrieval-v0", dataset=dataset, split=split, limit=limit or None, llm=llm, dtype=dtype,
                   device=device, data_dir=data_dir, corpus=corpus,
                   env_options={"k": config.k, "num_candidates": config.num_candidates})
    environment = gym.make(spec.env, **spec.make_kwargs(features=False))
    agent = train(environment, config, output, progress=True, resume=not overwrite, log=console.print)
    info = agent.metadata["training"]
    console.print(f"trained {info['steps']} steps over {info['questions']} questions in {info['seconds']:.1f} s "
                  f"(feedback {info['feedback_seconds']:.1f} s, {info['feedback_llm_sequences']} LLM sequences; "
                  f"{info['training_llm_sequences']} more during training; {info['reindexes']} re-indexes, "
                  f"{info['reindex_seconds']:.1f} s)")
    console.print(f"saved {output}; evaluate with: " + _evaluate_hint(spec, f"r3:{output}"), highlight=False)


@smartrag_app.command("alpha-sweep")
def smartrag_alpha_sweep(
    output: str = typer.Option(..., help="The PNG to write (its numbers go next to it as .json)."),
    dataset: str = dataset_option(),
    split: str = split_option("train", "Split to train on"),
    eval_split: str = split_option("test", "Split to evaluate on"),
    limit: Optional[int] = limit_option(None, "Only the first N training questions"),
    eval_limit: Optional[int] = limit_option(None, "Only the first N evaluation questions"),
    llm: str = llm_option(),
    steps: Optional[int] = typer.Option(None, help="PPO steps per alpha (default: PPOConfig.total_timesteps)."),
    alphas: str = typer.Option("0,0.1,0.2,0.5", help="Comma-separated retrieval costs."),
    workdir: Optional[str] = typer.Option(
        None, help="Folder for the agents and evaluations (default: next to the PNG)."),
    seed: int = typer.Option(0, help="Seed of each policy."),
    data_dir: Optional[str] = data_dir_option(),
    corpus: Optional[str] = corpus_option(),
    dtype: str = dtype_option(),
    device: str = device_option(),
):
    """Train and evaluate one PPO agent per alpha; plot reward and retrieval rate against alpha (PNG)."""
    from pathlib import Path

    from ragenv.agents.ppo import PPOConfig, alpha_sweep

    try:
        values = [float(a) for a in alphas.split(",") if a.strip()]
    except ValueError:
        raise RagenvError(f"--alphas must be comma-separated numbers, got {alphas!r}") from None
    if not values or any(not math.isfinite(a) for a in values):
        raise RagenvError(f"--alphas must be comma-separated finite numbers, got {alphas!r}")
    if not output.lower().endswith(".png"):
        raise RagenvError(f"--output must be a .png file, got {output!r}")
    config = PPOConfig(seed=seed) if steps is None else PPOConfig(total_timesteps=steps, seed=seed)
    folder = Path(workdir) if workdir else Path(output).with_suffix("")
    summary = alpha_sweep(values, dataset=dataset, split=split, eval_split=eval_split, llm=llm, config=config,
                          limit=limit, eval_limit=eval_limit, workdir=folder, output=output, data_dir=data_dir,
                          corpus=corpus, log=console.print, dtype=dtype, device=device)
    table = Table(title=f"PPO on SmartRAG-v0 | {dataset}/{eval_split} | {llm}{_corpus_title(corpus)}")
    for column in ("alpha", "reward", "EM", "F1", "retrievals/question"):
        table.add_column(column, justify="right")
    for row in summary["results"]:
        table.add_row(f"{row['alpha']:g}", _fmt(row["reward"]), _fmt(row["em"]), _fmt(row["f1"]),
                      _fmt(row["retrievals_per_question"]))
    console.print(table)
    console.print(f"wrote {output} and {Path(output).with_suffix('.json')}")


@app.command()
def compare(
    files: list[str] = typer.Argument(
        ..., help="Result JSON files written by `ragenv evaluate --output`, or leaderboard entries."),
    markdown: bool = typer.Option(False, help="Print a Markdown table (as in the README) instead of a rich one."),
    baseline: Optional[str] = typer.Option(None, help="Agent to compare with: adds each agent's mean reward difference "
                                                      "and its paired bootstrap 95% confidence interval."),
):
    """Put the metrics of several evaluation results side by side."""
    import json
    from pathlib import Path

    from ragenv.metrics import paired_bootstrap

    results = []
    for name in files:
        try:
            results.append(json.loads(Path(name).read_text()))
        except (OSError, ValueError) as exc:
            raise RagenvError(f"cannot read result file {name}: {exc}") from None
        document = results[-1]
        if "agent" not in document and isinstance(document.get("metadata"), dict):  # a leaderboard entry
            document.update(agent=document["metadata"].get("name"), env=document.get("env_id", ""))
        if "metrics" not in document or "agent" not in document:
            raise RagenvError(f"{name} is neither a result of `ragenv evaluate --output` nor a leaderboard entry "
                              "(no 'metrics' or 'agent')")
        served_over = (document.get("config") or {}).get("corpus")
        if served_over:  # a result over a corpus store is labelled with it (the same agent over two corpora)
            document["agent"] = f"{document['agent']} over {served_over}"
    k = results[0].get("env_options", {}).get("k", 3)
    differences = {}
    if baseline is not None:
        reference = next((r for r in results if r["agent"] == baseline), None)
        if reference is None:
            raise RagenvError(f"--baseline {baseline!r} is none of the results' agents: "
                              f"{', '.join(r['agent'] for r in results)}")
        rewards = lambda result: {q["question_id"]: q["reward"] for q in result.get("per_question", [])}  # noqa: E731
        for result in results:
            if result is not reference:
                mean, low, high = paired_bootstrap(rewards(result), rewards(reference))
                differences[result["agent"]] = f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"
    if not markdown:
        console.print(_results_table("comparison", results, k))
        for agent, text in differences.items():
            console.print(f"{agent} - {baseline}: reward {text} (paired bootstrap 95% CI)")
        return
    if any(r.get("env", "").startswith("SmartRAG") for r in results):
        metrics = ["reward", "em", "f1", "accuracy", "retrievals_per_question", "answered_without_retrieval"]
    else:
        metrics = ["reward", "answer_logprob", "logprob_gain", "em", "f1", "accuracy", f"hit@{k}",
                   "retrievals_per_question"]
    extra = [f"reward − {baseline} (95% CI)"] if baseline is not None else []
    print("| agent | " + " | ".join(metrics + extra) + " |")
    print("|---" * (len(metrics) + len(extra) + 1) + "|")
    for result in results:
        cells = [_fmt(result["metrics"].get(m, float("nan"))) for m in metrics]
        if baseline is not None:
            cells.append(differences.get(result["agent"], "—"))
        print(f"| {result['agent']} | " + " | ".join(cells) + " |")


@app.command()
def agents(env: str = typer.Option("RAGRetrieval-v0", help="Environment id.")):
    """List the agents available for an environment."""
    from ragenv.registry import agent_names

    table = Table(title=f"agents for {env}")
    table.add_column("name")
    table.add_column("what it does")
    for name, text in agent_names(env).items():
        table.add_row(name, text)
    console.print(table)


@app.command()
def doctor(lock: Optional[str] = typer.Option(
        None, help="Lock file to compare with (default: the checkout's requirements.lock).")):
    """Check this install against the lock file, and show the machine's numeric path (exit 1 on a mismatch)."""
    from pathlib import Path

    from ragenv.doctor import check_environment, render
    from ragenv.numerics import CANONICAL_DTYPE, cpu_has_fast_bf16, cpu_isa, cpu_model
    from ragenv.provenance import provenance

    report = check_environment(Path(lock) if lock else None)
    for line in render(report):
        console.print(line, highlight=False, soft_wrap=True)
    record = provenance()
    console.print(f"ragenv {record['ragenv']} @ {record['git_commit'] or 'no git checkout'}; torch {record['torch']}, "
                  f"transformers {record['transformers']}, numpy {record['numpy']}", highlight=False)
    bf16 = ("native bf16: the opt-in --dtype bfloat16 is about 2x faster here" if cpu_has_fast_bf16()
            else "no native bf16: keep float32 (bfloat16 is about 100x slower here)")
    console.print(f"CPU {cpu_model()}, kernels {cpu_isa()}; {bf16}; canonical setting {CANONICAL_DTYPE}",
                  highlight=False)
    if not report.ok:
        differ = len(report.mismatches) + len(report.missing)
        raise RagenvError(f"{differ} installed package(s) differ from {report.lock_path}: run scripts/setup.sh")


@data_app.command("info")
def data_info(data_dir: Optional[str] = data_dir_option()):
    """Passage and question counts of the named data."""
    from ragenv.data import ATTRIBUTION, data_summary

    summary = data_summary(data_dir)
    table = Table(title=f"corpus {summary['corpus']}: {summary['passages']:,} passages")
    for column in ("question set", "train", "dev", "test", "all"):
        table.add_column(column, justify="right" if column != "question set" else "left")
    for name, counts in summary["question_sets"].items():
        table.add_row(name, *[f"{counts[s]:,}" for s in ("train", "dev", "test", "all")])
    console.print(table)
    console.print(f"corpus fingerprint {summary['fingerprint'][:16]}", style="dim")
    console.print(ATTRIBUTION, style="dim")


@cache_app.command("info")
def cache_info():
    """Where the reward cache is and how big it is."""
    from ragenv.reward_cache import RewardCache

    info = RewardCache().info()
    console.print(f"reward cache: {info['path']}\nentries: {info['entries']:,}\nsize: {info['bytes'] / 1e6:.1f} MB")


@cache_app.command("check")
def cache_check():
    """Verify the reward cache's integrity and print entry counts."""
    from ragenv.reward_cache import RewardCache

    report = RewardCache().check()
    console.print(f"reward cache: {report['path']}\nintegrity: {report['integrity']}\nentries: {report['entries']:,}")
    for name, count in report["by_kind_and_model"].items():
        console.print(f"  {name}: {count:,}")
    if report["integrity"] != "ok" or report["unreadable_values"]:
        raise RagenvError(f"reward cache is damaged ({report['integrity']}, "
                          f"{report['unreadable_values']} unreadable values)")


@leaderboard_app.command("evaluate")
def leaderboard_evaluate(
    file: str = typer.Argument(..., help="The submission JSON file."),
    output: Optional[str] = typer.Option(None, help="Write the scored entry JSON here."),
    allow_local: bool = typer.Option(
        False, help="Accept a local dataset folder or model file named by the submission."),
    data_dir: Optional[str] = data_dir_option(),
    dtype: Optional[str] = dtype_option(None),
    device: str = device_option(),
):
    """Validate a submission and score it by replaying its actions (reported scores are ignored).

    The replay runs in the canonical setting (float32) on any machine, whatever setting the
    submission was made in; --dtype replays in another on purpose (the entry says so).
    """
    from ragenv.evaluate import write_json
    from ragenv.leaderboard.replay import score_file

    scored = score_file(file, allow_local=allow_local, data_dir=data_dir, dtype=dtype, device=device)
    from rich.markup import escape

    row = {"agent": escape(scored["metadata"]["name"]),
           "metrics": {**scored["metrics"], "seconds": scored["replay"]["seconds"]}}
    d = scored["dataset"]
    console.print(_results_table(f"replayed {scored['env_id']} | {d['name']}/{d['split']} | n={scored['n']} | "
                                 f"{scored['llm']['name']}", [row], scored["env_options"].get("k", 3)))
    console.print(f"replayed under {provenance_line(scored['provenance'])}", highlight=False)
    if output:
        write_json(scored, output)
        console.print(f"wrote {output}")


@leaderboard_app.command("schema")
def leaderboard_schema(
    out: Optional[str] = typer.Option(
        None, help="Where to write it (default: leaderboard/schema/submission.schema.json)."),
    check: bool = typer.Option(False, help="Only check that the file is current; exit 1 if not."),
):
    """Write the submission JSON Schema generated from the pydantic models."""
    from pathlib import Path

    from ragenv.leaderboard.submission import SCHEMA_PATH, schema_text, write_schema

    path = Path(out) if out else SCHEMA_PATH
    if check:
        if not path.is_file() or path.read_text(encoding="utf-8") != schema_text():
            raise RagenvError(f"{path} is not the schema the models generate; run `ragenv leaderboard schema`")
        console.print(f"{path} is current")
        return
    console.print(f"wrote {write_schema(path)}")


@leaderboard_app.command("regenerate")
def leaderboard_regenerate(
    env: str = typer.Option("RAGRetrieval-v0", help="Environment id (RAGRetrieval-v0 or SmartRAG-v0)."),
    agents: Optional[str] = typer.Option(
        None, help="Comma-separated agents (default: the environment's baselines, see `ragenv agents --env ENV`)."),
    dataset: str = dataset_option(),
    split: str = split_option("test", "Split to evaluate"),
    limit: Optional[int] = limit_option(100, "First N questions of the split (0: all)"),
    llm: str = llm_option(),
    out: Optional[str] = typer.Option(
        None, help="Folder for submissions/ and entries/ (default: the leaderboard package)."),
    site: Optional[str] = typer.Option(None, help="Folder for the page (default: <out>/site)."),
    allow_local: bool = typer.Option(False, help="Allow a local dataset folder or model file."),
    data_dir: Optional[str] = data_dir_option(),
    dtype: Optional[str] = dtype_option(None),
    device: str = device_option(),
):
    """Evaluate each agent, write its submission, replay-score it into an entry, and rebuild the page."""
    from ragenv.leaderboard.entries import BASELINES, LEADERBOARD_DIR, regenerate

    names = [a.strip() for a in agents.split(",") if a.strip()] if agents else BASELINES.get(env, ())
    regenerate(names, env=env, dataset=dataset, split=split, limit=limit or None,
               llm=llm, dtype=dtype, device=device, out_dir=out or LEADERBOARD_DIR, site_dir=site, data_dir=data_dir,
               allow_local=allow_local,
               log=lambda message: console.print(message, soft_wrap=True, highlight=False))


@leaderboard_app.command("build")
def leaderboard_build(
    out: str = typer.Option(..., help="Folder to write index.html into."),
    entries: Optional[str] = typer.Option(None, help="Entries folder (default: leaderboard/entries)."),
):
    """Write the static, self-contained leaderboard page from the scored entries."""
    from ragenv.leaderboard.entries import ENTRIES_DIR
    from ragenv.leaderboard.site import build_site

    console.print(f"wrote {build_site(entries or ENTRIES_DIR, out)}")


@app.command()
def bench(
    llm: str = llm_option("The frozen LLM to measure"),
    output: Optional[str] = typer.Option(
        None, help="Also write the figures and the machine's description as JSON here."),
    quick: bool = typer.Option(
        False, "--quick", help="Small workloads: a smoke run in about a minute, noisier figures."),
    dataset: str = dataset_option(),
    split: str = split_option("test", "The split the workloads' questions come from"),
    device: str = device_option(),
    dtype: str = dtype_option(),
    data_dir: Optional[str] = data_dir_option(),
    corpus: Optional[str] = corpus_option(),
):
    """Measure this machine: scoring throughput and FLOPs against matmul peak, env steps/s, search queries/s, memory.

    Uses a private, temporary reward cache (never yours); converted models and indexes are reused.
    Formulas and workloads: `python -c "import ragenv.bench as b; help(b)"`.
    """
    from ragenv.bench import BenchConfig, results_table, run_bench, write_json

    report = run_bench(BenchConfig(llm=llm, dataset=dataset, split=split, data_dir=data_dir, corpus=corpus,
                                   device=device, dtype=dtype, quick=quick),
                       log=lambda message: console.print(f"[dim]{message}[/dim]"))
    console.print(results_table(report))
    if output:
        write_json(report, output)
        console.print(f"wrote {output}")


def _corpus_folder(name: str, out: Optional[str]):
    """The folder of store ``name``: under ``--out``, else under the ragenv cache's ``corpora/``."""
    from pathlib import Path

    from ragenv.corpus import corpora_dir

    if not name or name != Path(name).name or name.startswith("."):
        raise RagenvError(f"--name must be a plain folder name (no '/', not hidden), got {name!r}")
    return (Path(out).expanduser() if out else corpora_dir()) / name


def _print_store(store) -> None:
    console.print(f"corpus store {store.name}: {len(store):,} passages, {store.disk_bytes() / 2**20:,.1f} MiB on disk"
                  f"\npath {store.path}\nfingerprint {store.fingerprint}", highlight=False)


@corpus_app.command("ingest")
def corpus_ingest(
    sources: list[str] = typer.Argument(..., help="Passage files, read in this order (gzipped ones too)."),
    name: str = typer.Option(..., help="The store's name: its folder under --out."),
    out: Optional[str] = typer.Option(None, help="Folder holding the store (default: corpora/ in the ragenv cache)."),
    fmt: str = typer.Option("auto", "--format", help="auto (from the file name), dpr-tsv (id, text, title), "
                                                     "jsonl ({id, title, text}) or flashrag ({id, contents})."),
    overwrite: bool = typer.Option(False, help="Replace an existing store of this name."),
):
    """Stream passage files into an on-disk corpus store; rerun the same command after a crash to resume."""
    from ragenv.corpus.ingest import ingest

    _print_store(ingest(sources, _corpus_folder(name, out), name, fmt=fmt, overwrite=overwrite))


@corpus_app.command("synth")
def corpus_synth(
    n: int = typer.Option(..., "--n", help="How many synthetic passages to write."),
    name: str = typer.Option(..., help="The store's name: its folder under --out."),
    base: str = typer.Option("wiki-mini", help="Corpus the sentences come from: wiki-mini, or a store name or "
                                               "folder."),
    seed: int = typer.Option(0, help="Same seed, same passages."),
    with_base: bool = typer.Option(True, "--with-base/--without-base",
                                   help="Write the base corpus's passages first (its rows keep their numbers)."),
    out: Optional[str] = typer.Option(None, help="Folder holding the store (default: corpora/ in the ragenv cache)."),
    overwrite: bool = typer.Option(False, help="Replace an existing store of this name."),
    data_dir: Optional[str] = data_dir_option(),
):
    """Synthetic distractors recombined from real sentences, for measuring cost (not retrieval difficulty)."""
    from ragenv.corpus import CorpusStore
    from ragenv.corpus.synth import synthesize
    from ragenv.data import CORPORA, load_dataset

    source = load_dataset("nq", data_dir).corpus if base in CORPORA else CorpusStore.open(base)
    _print_store(synthesize(source, n, _corpus_folder(name, out), seed, with_base=with_base, name=name,
                            overwrite=overwrite))


@corpus_app.command("info")
def corpus_info(
    store: str = typer.Argument(..., help="A store name (under corpora/ in the ragenv cache) or folder."),
    verify: bool = typer.Option(False, help="Re-hash the passages against the fingerprint (reads the whole store)."),
):
    """Count, fingerprint, disk size and source of a corpus store."""
    import json

    from ragenv.corpus import CorpusStore

    opened = CorpusStore.open(store)
    _print_store(opened)
    console.print(f"source {json.dumps(opened.manifest['source'], ensure_ascii=False)}", highlight=False,
                  style="dim")
    if verify:
        opened.verify()
        console.print("verified: passages.bin matches the fingerprint")


index_app = typer.Typer(no_args_is_help=True, help="First-stage indexes: build one ahead of time (dense: in resumable "
                                                   "shards, optionally on Ray, searched exactly or with FAISS).")
app.add_typer(index_app, name="index")


@index_app.command("build")
def index_build(
    name: str = typer.Argument(..., help="An index name: dense (exact), dense:flat, dense:ivfpq, dense:hnsw or "
                                         "dense:faiss (FAISS), bm25s, pyserini."),
    corpus: str = typer.Option("wiki-mini", help="A corpus store (name or folder, see `ragenv corpus`), or wiki-mini."),
    ray: bool = typer.Option(False, help="Dense: compute the embedding shards as Ray tasks."),
    ray_address: Optional[str] = typer.Option(None, help="Dense with --ray: a running Ray cluster ('auto', "
                                                         "'ray://HOST:10001'); default: a private local one."),
    workers: Optional[int] = typer.Option(None, help="Dense with --ray: Ray workers (default: the cluster's CPUs)."),
    shard_rows: Optional[int] = typer.Option(None, help="Dense: passages per shard (a multiple of 64; default "
                                                        "16384); a rerun resumes at the first missing shard."),
    data_dir: Optional[str] = data_dir_option(),
):
    """Build an index of a corpus (or find it already built) and print where it is and what it took."""
    import time
    from pathlib import Path

    from ragenv.data import CORPORA, load_dataset, open_corpus
    from ragenv.index import check_index_name, make_index

    name = check_index_name(name)
    options: dict = {"ray": ray, "ray_address": ray_address, "workers": workers, "shard_rows": shard_rows}
    options = {key: value for key, value in options.items() if value not in (None, False)}
    if options and not name.startswith("dense"):
        raise RagenvError(f"--ray, --ray-address, --workers and --shard-rows are for dense indexes, not {name!r}")
    if ray_address and not ray:
        raise RagenvError("--ray-address needs --ray")
    started = time.perf_counter()
    opened = load_dataset("nq", data_dir).corpus if corpus in CORPORA else open_corpus(corpus)
    index = make_index(name, opened, **options)
    folders = [Path(folder) for folder in (getattr(index, "path", None), getattr(getattr(index, "faiss", None),
                                                                                 "folder", None)) if folder]
    console.print(f"index {name} of {opened.name} ({len(opened):,} passages) ready in "
                  f"{time.perf_counter() - started:,.1f} s", highlight=False)
    for folder in folders:
        if folder.is_dir():
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
            console.print(f"{folder} ({size / 2**20:,.1f} MiB)", highlight=False)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 1 (set RAGENV_DEBUG=1 for tracebacks)."""
    from rich.markup import escape  # messages may quote user input (e.g. a submission): never markup

    try:
        app(standalone_mode=False)
    except RagenvError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        if os.environ.get("RAGENV_DEBUG"):
            raise
        err_console.print(f"[red]error:[/red] {type(exc).__name__}: {escape(str(exc))} "
                          "(set RAGENV_DEBUG=1 for the traceback)", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
