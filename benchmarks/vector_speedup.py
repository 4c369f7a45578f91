"""Speed-up of the batched vector environments over gymnasium's SyncVectorEnv, reward cache COLD.

    RAGENV_DATA=../shared/data .venv/bin/python benchmarks/vector_speedup.py --llm smollm2-135m --num-envs 8

Both vectorisations run the same rollout: ``reset(seed=0)``, then ``--steps`` vector steps
with a fixed policy (RAGRetrieval-v0: each sub-environment's first-stage top-k; SmartRAG-v0:
retrieve with the question, then answer), so they draw the same questions and ask the frozen
LLM the same prompts. Every round starts from an empty reward cache file and fresh
environments (no memo); the model stays loaded (one shared scorer), so what is timed is the
frozen-LLM work and the environment, not model loading. ``SyncVectorEnv`` steps its
sub-environments one after another, each with its own LLM call; the vector environment
(``gym.make_vec(..., vectorization_mode="vector_entry_point")``) asks once per vector step.

Everything goes to a private ``RAGENV_CACHE`` (a temporary folder unless set), so the user's
caches are never read or written.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_QUESTIONS = 64


def act(env_id: str, obs) -> np.ndarray:
    """The fixed policy, from the batched observation.

    RAGRetrieval-v0: each sub-environment's first-stage top-3. SmartRAG-v0: retrieve with the
    question (action 1) before any retrieval, then answer (0).
    """
    if env_id == "RAGRetrieval-v0":
        return np.asarray(obs["candidate_ids"])[:, :3].astype(np.int64)
    return np.where(np.asarray(obs["retrievals"])[:, 0] == 0, 1, 0).astype(np.int64)


def rollout(venv, env_id: str, steps: int) -> dict:
    """``reset(seed=0)`` and ``steps`` vector steps, timed together (SmartRAG-v0's resets ask the LLM too)."""
    started = time.perf_counter()
    obs, _ = venv.reset(seed=0)
    rewards = []
    for _ in range(steps):
        obs, reward, *_ = venv.step(act(env_id, obs))
        rewards.append(np.asarray(reward, dtype=np.float64).copy())
    return {"seconds": time.perf_counter() - started, "rewards": np.stack(rewards)}


def make_cold(scorer, path) -> None:
    """Point ``scorer`` at an empty reward cache file and empty its in-process memo; the model stays loaded."""
    from ragenv.reward_cache import RewardCache

    scorer.switch_cache(RewardCache(path))


def make_vector(env_id: str, mode: str, num_envs: int, scorer, dataset, split: str, limit: int | None,
                features: bool = False):
    import gymnasium as gym

    import ragenv  # noqa: F401

    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode, dataset=dataset, split=split,
                        llm=scorer.config.name, limit=limit, features=features, scorer=scorer)


def measure(env_id: str, *, llm: str = "smollm2-135m", num_envs: int = 8, steps: int = 8, rounds: int = 2,
            dataset: str = "nq", split: str = "test", limit: int | None = DEFAULT_QUESTIONS, workdir: str | None = None,
            log=print) -> dict:
    """Seconds per cold rollout for SyncVectorEnv and the vector environment, and the speed-up."""
    from ragenv.data import load_dataset
    from ragenv.llm import FrozenLLM, LLMConfig
    from ragenv.reward_cache import RewardCache

    folder = Path(workdir or tempfile.mkdtemp(prefix="ragenv-vector-bench-"))
    data = load_dataset(dataset)  # loaded once, shared by every sub-environment of both vectorisations
    scorer = FrozenLLM(LLMConfig(llm), RewardCache(folder / "warmup.sqlite"))
    scorer.model  # load (and convert once) before timing  # noqa: B018
    times: dict[str, list[float]] = {"sync": [], "vector_entry_point": []}
    calls: dict[str, int] = {}
    rewards = {}
    for round_ in range(rounds + 1):  # round 0 warms kernels, first-stage and data paths up; it is not counted
        for mode in times:  # alternate, so a change in the machine's load hits both alike
            make_cold(scorer, folder / f"cold-{env_id}-{mode}-{round_}.sqlite")
            venv = make_vector(env_id, mode, num_envs, scorer, data, split, limit)
            before = scorer.stats.forward_passes
            result = rollout(venv, env_id, steps)
            venv.close()
            calls[mode] = scorer.stats.forward_passes - before
            rewards[mode] = result["rewards"]
            label = "warm-up" if round_ == 0 else f"round {round_}"
            log(f"  {env_id} {mode:18s} {label}: {result['seconds']:.2f} s ({calls[mode]} forward passes)")
            if round_:
                times[mode].append(result["seconds"])
    # the same prompts; the numbers differ only by the LLM's batch-dependent rounding (bf16: up to ~0.05)
    difference = float(np.max(np.abs(rewards["sync"] - rewards["vector_entry_point"])))
    sync, vector = statistics.median(times["sync"]), statistics.median(times["vector_entry_point"])
    return {"env": env_id, "llm": llm, "num_envs": num_envs, "steps": steps, "rounds": rounds,
            "sync_seconds": sync, "vector_seconds": vector, "speedup": sync / vector,
            "forward_passes": calls, "max_reward_difference": difference, "times": times}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="both", choices=["RAGRetrieval-v0", "SmartRAG-v0", "both"])
    parser.add_argument("--llm", default="smollm2-135m")
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8, help="vector steps per rollout (autoreset steps included)")
    parser.add_argument("--rounds", type=int, default=2, help="cold rollouts per vectorisation (median reported)")
    parser.add_argument("--dataset", default="nq")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=DEFAULT_QUESTIONS, help="first N questions of the split")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared machine more threads spin-wait and time "
                             "erratically)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if "RAGENV_CACHE" not in os.environ:  # private caches: never the user's
        os.environ["RAGENV_CACHE"] = tempfile.mkdtemp(prefix="ragenv-vector-bench-cache-")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    envs = ["RAGRetrieval-v0", "SmartRAG-v0"] if args.env == "both" else [args.env]
    results = []
    for env_id in envs:
        results.append(measure(env_id, llm=args.llm, num_envs=args.num_envs, steps=args.steps, rounds=args.rounds,
                               dataset=args.dataset, split=args.split, limit=args.limit))
    print(f"\ncold reward cache, {args.llm}, {args.num_envs} sub-environments, {args.steps} vector steps per rollout, "
          f"median of {args.rounds}, {torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs "
          f"(cache {os.environ['RAGENV_CACHE']})")
    print("| env | SyncVectorEnv s | vector env s | speed-up | forward passes (sync / vector) "
          "| max reward difference |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['env']} | {r['sync_seconds']:.2f} | {r['vector_seconds']:.2f} | {r['speedup']:.2f}x | "
              f"{r['forward_passes']['sync']} / {r['forward_passes']['vector_entry_point']} | "
              f"{r['max_reward_difference']:.3g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
