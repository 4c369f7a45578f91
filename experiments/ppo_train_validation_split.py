"""PPO observation keys compared on a TRAINING split only: train on its first questions, validate on the rest.

Usage (after `ragenv precompute --env SmartRAG-v0 --dataset DATASET --split train [--limit N]`):
    RAGENV_DATA=../shared/data .venv/bin/python experiments/ppo_train_validation_split.py hotpotqa \\
        --train 200 --validate 100
    RAGENV_DATA=../shared/data .venv/bin/python experiments/ppo_train_validation_split.py nq --train 400 --validate 100
Prints reward, retrievals per question and accuracy on the validation questions for each
observation-key set and seed, then never-retrieve and always-retrieve on the same questions.
No LLM call is made on a warm cache; test splits are refused.
"""
import argparse

import gymnasium as gym
import numpy as np

import ragenv  # noqa: F401
from ragenv.agents.ppo import PPOAgent, PPOConfig
from ragenv.baselines.smartrag import AlwaysRetrieveAgent, NeverRetrieveAgent
from ragenv.evaluate import run_multi_step_episodes, summarize

STATE = ("retrievals", "query_used")
KEYS = {
    "scores (default)": PPOConfig().observation_keys,
    "scores + confidence": STATE + ("query_scores", "closed_book_confidence"),
    "scores + per-word scores + guess support": STATE + ("query_scores", "query_scores_per_word",
                                                          "closed_book_support"),
}
METRICS = ("reward", "retrievals_per_question", "accuracy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--split", default="train")
    parser.add_argument("--train", type=int, default=200, help="first questions to train on")
    parser.add_argument("--validate", type=int, default=100, help="the next questions to score on")
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    if args.split == "test":
        parser.error("choose features on a training split, never on test")

    def env_on(start: int, stop: int):
        env = gym.make("SmartRAG-v0", dataset=args.dataset, split=args.split, llm="gemma-3-270m", features=False,
                       limit=args.train + args.validate)
        env.unwrapped.questions = list(env.unwrapped.questions)[start:stop]
        return env

    def score(env, agent) -> dict:
        m = summarize(run_multi_step_episodes(env, agent, progress=False, precompute=False))
        return {k: round(m[k], 3) for k in METRICS}

    for name, keys in KEYS.items():
        rewards = []
        for seed in range(args.seeds):
            agent = PPOAgent.train(env_on(0, args.train), PPOConfig(observation_keys=keys, seed=seed), None,
                                   progress=False)
            result = score(env_on(args.train, args.train + args.validate), agent)
            rewards.append(result["reward"])
            print(f"{name}, seed {seed}: {result}", flush=True)
        print(f"{name}: mean reward {np.mean(rewards):.3f}", flush=True)
    for label, make in (("never-retrieve", NeverRetrieveAgent), ("always-retrieve", AlwaysRetrieveAgent)):
        env = env_on(args.train, args.train + args.validate)
        print(f"{label}: {score(env, make(env.unwrapped))}", flush=True)


if __name__ == "__main__":
    main()
