"""Replay every committed leaderboard submission in one numeric setting, and compare settings.

The agreement table of the README ("Numerics") comes from this script:

    # 1. replay each submission from an empty reward cache, in this process's setting
    RAGENV_CACHE=/tmp/c-native python scripts/numerics_agreement.py replay docs/results/numerics/native-float32
    env ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 RAGENV_CPU_ISA=avx2 \\
        RAGENV_CACHE=/tmp/c-avx2 python scripts/numerics_agreement.py replay docs/results/numerics/avx2-float32
    RAGENV_CACHE=/tmp/c-bf16 python scripts/numerics_agreement.py replay docs/results/numerics/native-bfloat16 \\
        --dtype bfloat16
    # 2. compare two of them, or one with the committed entries
    python scripts/numerics_agreement.py compare leaderboard/entries docs/results/numerics/avx2-float32

    # 3. speed of each setting (tokens per second; scoring and greedy answer, cache off)
    python scripts/numerics_agreement.py speed --dtype float32

``replay`` writes one compact JSON per submission (metrics, per-question reward, accuracy
and answer, the replay's wall time and provenance). ``compare`` prints, per submission,
the largest metric difference, the largest per-question reward difference and the number
of questions whose greedy answer differs, as a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

KEPT = ("reward", "answer_logprob", "accuracy", "em", "f1", "generated_answer")


def replay_all(out: Path, dtype: str | None, limit_files: int | None, skip_existing: bool = False,
               match: str = "*") -> None:
    from ragenv.leaderboard.entries import SUBMISSIONS_DIR
    from ragenv.leaderboard.replay import score_file

    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(SUBMISSIONS_DIR.glob(f"{match}.json"))[:limit_files]:
        if skip_existing and (out / path.name).exists():
            continue
        started = time.perf_counter()
        scored = score_file(path, dtype=dtype, progress=False)
        seconds = time.perf_counter() - started
        compact = {"submission": path.name, "metrics": scored["metrics"], "numerics": scored["numerics"],
                   "provenance": scored["provenance"], "seconds": seconds, "llm_work": scored["replay"]["llm_work"],
                   "per_question": [{"question_id": r["question_id"], **{k: r.get(k) for k in KEPT}}
                                    for r in scored["per_question"]]}
        (out / path.name).write_text(json.dumps(compact, indent=1, ensure_ascii=False))
        print(f"{path.name}: {seconds:.1f} s, reward {scored['metrics']['reward']:.4f}, "
              f"accuracy {scored['metrics']['accuracy']:.3f} ({scored['numerics']['dtype']}, "
              f"{scored['numerics']['hardware']})", flush=True)


def speed(dtype: str, prompts: int, llm_name: str, append: Path | None) -> None:
    """Prompt tokens per second of the frozen LLM on nq test prompts (question + gold passage), cache off."""
    from ragenv.data import load_dataset
    from ragenv.llm import FrozenLLM, LLMConfig, PromptRequest

    nq = load_dataset("nq")
    requests = [PromptRequest(question=q, passages=tuple(nq.corpus[nq.corpus.row(pid)] for pid in q.gold_passage_ids),
                              generate=True)
                for q in nq.split("test")[:prompts]]
    llm = FrozenLLM(LLMConfig(llm_name, dtype=dtype), use_cache=False)
    llm.run(requests[:1])  # load and warm up
    tokens = llm.stats.tokens
    started = time.perf_counter()
    llm.run(requests)
    seconds = time.perf_counter() - started
    record = {"llm": llm_name, "dtype": dtype, "hardware": llm.numerics.hardware, "prompts": prompts,
              "seconds": round(seconds, 2), "tokens_per_s": round((llm.stats.tokens - tokens) / seconds, 1)}
    print(json.dumps(record))
    if append is not None:
        with open(append, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


def speed_table(path: Path) -> None:
    """The speed records of ``speed --append`` as a Markdown table."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    print("| LLM | dtype | kernels | prompts | seconds | seconds per prompt | prompt tokens/s |")
    print("|---|---|---|---|---|---|---|")
    for r in records:
        print(f"| {r['llm']} | {r['dtype']} | {r['hardware']} | {r['prompts']} | {r['seconds']:.1f} | "
              f"{r['seconds'] / r['prompts']:.1f} | {r['tokens_per_s']:,.0f} |")


def _load(folder: Path) -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def compare(a: Path, b: Path) -> None:
    left, right = _load(a), _load(b)
    names = sorted(set(left) & set(right))
    if not names:
        sys.exit(f"no common result files in {a} and {b}")
    print(f"| submission | reward ({a.name}) | reward ({b.name}) | largest metric difference | largest per-question "
          f"reward difference | answers that differ | accuracy equal | seconds ({a.name} / {b.name}) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        x, y = left[name], right[name]
        metrics = [k for k in x["metrics"] if isinstance(x["metrics"][k], (int, float)) and k in y["metrics"]]
        metric_diff = max(abs(x["metrics"][k] - y["metrics"][k]) for k in metrics)
        by_id = {r["question_id"]: r for r in y["per_question"]}
        pairs = [(r, by_id[r["question_id"]]) for r in x["per_question"]]
        reward_diff = max(abs(p["reward"] - q["reward"]) for p, q in pairs)
        answers = sum(p.get("generated_answer") != q.get("generated_answer") for p, q in pairs)
        seconds = "/".join(f"{d['seconds']:.0f}" if "seconds" in d else "–" for d in (x, y))
        print(f"| {name.removesuffix('.json')} | {x['metrics']['reward']:.4f} | {y['metrics']['reward']:.4f} | "
              f"{metric_diff:.1e} | {reward_diff:.1e} | {answers} of {len(pairs)} | "
              f"{'yes' if x['metrics']['accuracy'] == y['metrics']['accuracy'] else 'no'} | {seconds} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("replay", help="replay every committed submission into a folder")
    run.add_argument("out", type=Path)
    run.add_argument("--dtype", default=None, help="replay in this dtype (default: the canonical float32)")
    run.add_argument("--limit-files", type=int, default=None, help="only the first N submissions")
    run.add_argument("--skip-existing", action="store_true", help="leave out submissions already replayed into OUT")
    run.add_argument("--match", default="*", help="only submissions whose file name (without .json) matches this glob, "
                     "so two processes can share the work")
    fast = sub.add_parser("speed", help="tokens per second of the frozen LLM in a dtype (scoring + greedy answer)")
    fast.add_argument("--dtype", default="float32")
    fast.add_argument("--prompts", type=int, default=8)
    fast.add_argument("--llm", default="gemma-3-270m")
    fast.add_argument("--append", type=Path, default=None, help="also append the record to this JSON-lines file")
    table = sub.add_parser("speed-table", help="the records of speed --append as a Markdown table")
    table.add_argument("file", type=Path)
    cmp = sub.add_parser("compare", help="compare two folders of results (or one with leaderboard/entries)")
    cmp.add_argument("a", type=Path)
    cmp.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.command == "replay":
        replay_all(args.out, args.dtype, args.limit_files, args.skip_existing, args.match)
    elif args.command == "speed":
        speed(args.dtype, args.prompts, args.llm, args.append)
    elif args.command == "speed-table":
        speed_table(args.file)
    else:
        compare(args.a, args.b)


if __name__ == "__main__":
    main()
