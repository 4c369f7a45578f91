"""PPO observation keys compared on hotpotqa TRAIN only: train on its first 200 questions, validate on its last 100.

Usage (after `ragenv precompute --env SmartRAG-v0 --dataset hotpotqa --split train`):
    RAGENV_DATA=../shared/data .venv/bin/python scripts/ppo_train_validation_split.py
Prints reward, retrievals per question and accuracy on the 100 validation questions for each
observation-key set and seed, then never-retrieve and always-retrieve on the same questions.
"""
import gymnasium as gym

import ragenv  # noqa: F401
from ragenv.agents.ppo import PPOAgent, PPOConfig
from ragenv.evaluate import run_multi_step_episodes, summarize
from ragenv.baselines.smartrag import NeverRetrieveAgent, AlwaysRetrieveAgent

KEYS = {"default": ("retrievals", "query_used", "query_scores"),
        "confidence": ("retrievals", "query_used", "query_scores", "closed_book_confidence")}
results = {}
for name, keys in KEYS.items():
    for seed in (0, 1):
        env = gym.make("SmartRAG-v0", dataset="hotpotqa", split="train", llm="gemma-3-270m", features=False)
        base = env.unwrapped
        allq = list(base.questions)
        base.questions = allq[:200]
        agent = PPOAgent.train(env, PPOConfig(observation_keys=keys, seed=seed), None, progress=False)
        base.questions = allq[200:]
        m = summarize(run_multi_step_episodes(env, agent, progress=False, precompute=False))
        results[f"{name}-seed{seed}"] = {k: round(m[k], 3) for k in ("reward", "retrievals_per_question", "accuracy")}
        print(name, seed, results[f"{name}-seed{seed}"], flush=True)
for label, a in (("never", NeverRetrieveAgent), ("always", AlwaysRetrieveAgent)):
    env = gym.make("SmartRAG-v0", dataset="hotpotqa", split="train", llm="gemma-3-270m", features=False)
    base = env.unwrapped; base.questions = list(base.questions)[200:]
    m = summarize(run_multi_step_episodes(env, a(base), progress=False, precompute=False))
    print(label, {k: round(m[k], 3) for k in ("reward", "retrievals_per_question", "accuracy")}, flush=True)
