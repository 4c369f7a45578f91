"""The ``ragenv`` command line (typer + rich). Errors print as one line and exit non-zero."""
from __future__ import annotations

import math
import os
import sys
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ragenv.errors import RagenvError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Gymnasium environments for RL on retrieval-augmented generation.")
data_app = typer.Typer(no_args_is_help=True, help="Datasets: counts and checks.")
cache_app = typer.Typer(no_args_is_help=True, help="The reward cache: where it is, how big, whether it is sound.")
app.add_typer(data_app, name="data")
app.add_typer(cache_app, name="cache")
console = Console()
err_console = Console(stderr=True)

DEMO_AGENTS = ("oracle", "bm25", "dense", "closed-book", "random")


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def _results_table(title: str, results: list[dict], k: int) -> Table:
    table = Table(title=title)
    columns = ["reward", "answer_logprob", "logprob_gain", "em", "f1", "accuracy", f"hit@{k}",
               "retrievals_per_question", "seconds"]
    table.add_column("agent")
    for column in columns:
        table.add_column(column.replace("_per_question", "/q"), justify="right")
    for result in results:
        table.add_row(result["agent"], *[_fmt(result["metrics"].get(c, float("nan"))) for c in columns])
    return table


@app.command()
def evaluate(
    agent: str = typer.Option("bm25", help="Agent name (see `ragenv agents`)."),
    env: str = typer.Option("RAGRetrieval-v0", help="Environment id."),
    dataset: str = typer.Option("nq", help="nq, hotpotqa, squad, or a folder with corpus.jsonl and questions.jsonl."),
    split: str = typer.Option("test", help="train, dev, test, or all."),
    limit: Optional[int] = typer.Option(None, help="Only the first N questions of the split."),
    llm: str = typer.Option("gemma-3-270m", help="gemma-3-270m, smollm2-135m, a .gguf file, a model folder or a HF id."),
    k: int = typer.Option(3, help="Passages per question."),
    reward: str = typer.Option("logprob_gain", help="logprob, logprob_gain, em, f1 or accuracy."),
    cost_per_passage: float = typer.Option(0.02, help="Reward cost per passage used."),
    seed: int = typer.Option(0, help="Seed for stochastic agents."),
    output: Optional[str] = typer.Option(None, help="Write the result JSON here."),
    data_dir: Optional[str] = typer.Option(None, help="Data folder (default: RAGENV_DATA, else download)."),
):
    """Run an agent on every question of a split and report reward, answer and IR metrics."""
    from ragenv.evaluate import EvalConfig, evaluate as run, write_json

    config = EvalConfig(env=env, agent=agent, dataset=dataset, split=split, limit=limit, llm=llm, seed=seed,
                        data_dir=data_dir, env_options={"k": k, "reward": reward, "cost_per_passage": cost_per_passage})
    result = run(config)
    console.print(_results_table(f"{env} | {dataset}/{split} | n={result['n']} | {llm}", [result], k))
    if output:
        write_json(result, output)
        console.print(f"wrote {output}")


@app.command()
def demo(
    limit: int = typer.Option(20, help="Questions of nq test to use."),
    llm: str = typer.Option("gemma-3-270m", help="The frozen LLM."),
    agents: str = typer.Option(",".join(DEMO_AGENTS), help="Comma-separated agents to compare."),
    data_dir: Optional[str] = typer.Option(None, help="Data folder (default: RAGENV_DATA, else download)."),
):
    """Compare the baselines on a slice of nq test with the default LLM."""
    from ragenv.evaluate import EvalConfig, evaluate as run, make_env

    names = [a.strip() for a in agents.split(",") if a.strip()]
    config = EvalConfig(dataset="nq", split="test", limit=limit, llm=llm, data_dir=data_dir)
    environment = make_env(config)
    results = []
    for name in names:
        console.print(f"[bold]{name}[/bold] ...")
        results.append(run(EvalConfig(**{**config.__dict__, "agent": name}), env=environment))
    console.print(_results_table(f"RAGRetrieval-v0 | nq/test first {limit} | {llm}", results, environment.unwrapped.k))


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


@data_app.command("info")
def data_info(data_dir: Optional[str] = typer.Option(None, help="Data folder (default: RAGENV_DATA, else download).")):
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
        raise RagenvError(f"reward cache is damaged ({report['integrity']}, {report['unreadable_values']} unreadable values)")


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 1 (set RAGENV_DEBUG=1 for tracebacks)."""
    try:
        app(standalone_mode=False)
    except RagenvError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
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
        err_console.print(f"[red]error:[/red] {type(exc).__name__}: {exc} (set RAGENV_DEBUG=1 for the traceback)", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
