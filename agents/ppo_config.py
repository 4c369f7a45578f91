"""What determines a PPO run on SmartRAG-v0 (no torch: the CLI builds its options from it at start-up).

The agent itself (training, saving, acting) is :mod:`ragenv.agents.ppo`.
"""
from __future__ import annotations

from dataclasses import dataclass

from ragenv.errors import ConfigError

EMBEDDING_KEYS = ("question_embedding", "context_embedding")


@dataclass(frozen=True)
class PPOConfig:
    """MaskablePPO settings. The defaults produce the README's SmartRAG-v0 figures."""

    total_timesteps: int = 100_000  # environment steps to train for
    learning_rate: float = 1e-3  # Adam learning rate
    n_steps: int = 512  # environment steps per rollout (one environment)
    batch_size: int = 256  # minibatch size of each PPO update
    n_epochs: int = 4  # passes over each rollout
    gamma: float = 1.0  # discount; episodes are at most max_retrievals + 1 steps, the reward comes at the end
    gae_lambda: float = 0.95  # GAE's bias-variance trade-off
    clip_range: float = 0.2  # PPO's policy-ratio clip
    ent_coef: float = 0.01  # entropy bonus weight
    vf_coef: float = 0.5  # value-loss weight
    net_arch: tuple[int, ...] = (16,)  # hidden layer sizes of the policy and value networks
    observation_keys: tuple[str, ...] = ("retrievals", "query_used", "query_scores")  # SmartRAG-v0 keys read
    normalize_observations: bool = True  # running mean/variance normalisation (VecNormalize), frozen after training
    seed: int = 0  # of the policy and of the question draws
    device: str = "cpu"  # where the policy trains (the frozen LLM's device is separate)

    def __post_init__(self):
        if self.total_timesteps < 1 or self.n_steps < 2 or self.batch_size < 2:
            raise ConfigError("PPO needs total_timesteps >= 1, n_steps >= 2 and batch_size >= 2")
        if not self.observation_keys:
            raise ConfigError("PPO needs at least one observation key")

    @property
    def needs_features(self) -> bool:
        """Whether the policy reads encoder embeddings (the environment must be made with features=True)."""
        return any(key in EMBEDDING_KEYS for key in self.observation_keys)
