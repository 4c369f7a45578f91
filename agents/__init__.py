"""Reference agents trained on the environments (R3 retriever, PPO policy).

Imported lazily: ``from ragenv.agents.ppo import PPOAgent, PPOConfig``.
"""
