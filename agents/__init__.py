"""Reference agents trained on the environments (R3 retriever, PPO policy)."""
