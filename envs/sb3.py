"""Stable-Baselines3 adapters for the batched vector environments (:mod:`ragenv.envs.vector`).

SB3 has its own ``VecEnv`` API: a finished sub-environment is reset in the same step and its
last observation goes in ``infos[i]["terminal_observation"]``. :class:`SB3VecEnv` puts a
Gymnasium vector environment behind that API, so one frozen-LLM batch per vector step serves
SB3's rollouts::

    import gymnasium as gym
    from sb3_contrib import MaskablePPO
    from ragenv.envs.sb3 import SB3VecEnv, sb3_retrieval_vec_env

    venv = SB3VecEnv(gym.make_vec("SmartRAG-v0", num_envs=8, vectorization_mode="vector_entry_point", ...))
    MaskablePPO("MultiInputPolicy", venv).learn(10_000)
    venv = sb3_retrieval_vec_env(gym.make_vec("RAGRetrieval-v0", num_envs=8, ...))  # then PPO("MultiInputPolicy", venv)

Importing this module imports SB3; ``import ragenv`` does not.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper
from gymnasium.wrappers.vector import FilterObservation
from stable_baselines3.common.vec_env import VecEnv

from ragenv.envs.wrappers import CandidateScoreVectorAction
from ragenv.errors import ConfigError

__all__ = ["SB3VecEnv", "sb3_retrieval_vec_env"]


def _info_of(infos: dict[str, Any], i: int) -> dict[str, Any]:
    """Sub-environment ``i``'s info from a vector info dict (``_key`` masks say which keys it has)."""
    out = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        present = infos.get(f"_{key}")
        if present is not None and not present[i]:
            continue
        out[key] = _info_of(value, i) if isinstance(value, dict) else value[i]
    return out


def _obs_of(observations, i: int):
    """Sub-environment ``i``'s observation from a batched one (a copy)."""
    if isinstance(observations, dict):
        return {key: _obs_of(value, i) for key, value in observations.items()}
    if isinstance(observations, tuple):
        return observations[i]
    return np.array(observations[i], copy=True)


class SB3VecEnv(VecEnv):
    """A Gymnasium vector environment behind Stable-Baselines3's ``VecEnv`` API.

    After each step the finished sub-environments are reset together
    (``reset(options={"reset_mask": done})``: one batched LLM round), their last observation in
    ``infos[i]["terminal_observation"]``. ``env_method("action_masks")`` reaches SmartRAG-v0's
    masks, so sb3-contrib's ``MaskablePPO`` works. Observations must be SB3-ready (no ``Text``:
    see :func:`sb3_retrieval_vec_env`). The vector environment must not reset in the same step
    itself (``autoreset_mode`` ``NextStep``, the default, or ``Disabled``).
    """

    def __init__(self, env: VectorEnv):
        if not isinstance(env, (VectorEnv, VectorWrapper)):
            raise ConfigError(f"SB3VecEnv wraps a gymnasium VectorEnv, got {type(env).__name__}")
        if env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP) == AutoresetMode.SAME_STEP:
            raise ConfigError("SB3VecEnv resets finished sub-environments itself: give it a NextStep or Disabled "
                              "vector environment")
        self.env = env
        self._actions = None
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)

    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, (int, np.integer)):
            return [int(indices)]
        return [int(i) for i in indices]

    def _targets(self, indices) -> list[gym.Env]:
        envs = self.env.unwrapped.envs
        return [envs[i] for i in self._indices(indices)]

    def reset(self):
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        if any(o != self._options[0] for o in self._options):
            raise ConfigError("SB3VecEnv passes one options dict to all sub-environments")
        options = self._options[0] or None
        observations, infos = self.env.reset(seed=seeds, options=options)
        self.reset_infos = [_info_of(infos, i) for i in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return observations

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        observations, rewards, terminations, truncations, infos = self.env.step(self._actions)
        dones = np.logical_or(terminations, truncations)
        info_list = [_info_of(infos, i) for i in range(self.num_envs)]
        for i in range(self.num_envs):
            info_list[i]["TimeLimit.truncated"] = bool(truncations[i] and not terminations[i])
        if dones.any():
            for i in np.flatnonzero(dones):
                info_list[i]["terminal_observation"] = _obs_of(observations, int(i))
            observations, reset_infos = self.env.reset(options={"reset_mask": dones.copy()})
            for i in np.flatnonzero(dones):
                self.reset_infos[i] = _info_of(reset_infos, int(i))
        return observations, rewards.astype(np.float32), dones, info_list

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        if attr_name == "render_mode":
            return [self.env.render_mode] * len(self._indices(indices))
        return [getattr(env, attr_name) for env in self._targets(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        for env in self._targets(indices):
            setattr(env, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        if method_name == "action_masks" and hasattr(self.env.unwrapped, "action_masks"):
            masks = self.env.unwrapped.action_masks()  # the vector env's: it knows which wait for a reset
            return [masks[i] for i in self._indices(indices)]
        return [getattr(env, method_name)(*method_args, **method_kwargs) for env in self._targets(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def get_images(self):
        return [None for _ in range(self.num_envs)]


def sb3_retrieval_vec_env(env: VectorEnv, keep: Iterable[str] | None = None) -> SB3VecEnv:
    """RAGRetrieval-v0's vector environment made ready for SB3: ``Box(m)`` score actions, no text.

    ``keep``: the observation keys to keep (default every key but ``question``).
    """
    keys = list(keep) if keep is not None else [k for k in env.single_observation_space.spaces if k != "question"]
    return SB3VecEnv(FilterObservation(CandidateScoreVectorAction(env), filter_keys=keys))
