"""Vector versions of RAGRetrieval-v0 and SmartRAG-v0 that batch the frozen LLM across sub-environments.

``gym.make_vec("RAGRetrieval-v0", num_envs=8, vectorization_mode="vector_entry_point", ...)``
(or ``"SmartRAG-v0"``) builds :class:`RAGRetrievalVectorEnv` / :class:`SmartRAGVectorEnv`: ``num_envs``
sub-environments of the single environment's own class that share the data, indexes, scorer and
memos (:meth:`sibling`), stepped together. Where :class:`gymnasium.vector.SyncVectorEnv` asks
the frozen LLM once per sub-environment, a vector step here gathers the LLM work of all of them
and asks once:

- RAGRetrieval-v0: one ``FrozenLLM.run`` per vector step (``RAGRetrievalEnv.outcomes`` of every
  stepping sub-environment, their closed-book baselines included).
- SmartRAG-v0: one ``SmartRAGEnv.resolve`` per vector step: one ``FrozenLLM.run`` for every
  answering sub-environment and every new question of a (auto)reset sub-environment, plus a
  second one, only when there are new questions, that scores their closed-book guesses (it
  needs the guesses the first one wrote). With a warm memo or reward cache there is none.

Rewards, observations and infos come from the single environment's own code (``plan_step``,
``outcomes``/``resolve``, ``finish_step``), so a sub-environment gives exactly what the single
environment gives for the same question and action. Outputs have SyncVectorEnv's layout
(observations batched with ``gymnasium.vector.utils``, infos as a dict of arrays with ``_key``
masks), seeds too (``reset(seed=s)`` seeds sub-environment ``i`` with ``s + i``), so the two
vectorisations draw the same questions.

Autoreset: next-step by default (Gymnasium's documented default, ``metadata["autoreset_mode"]``):
after a sub-environment's episode ends, its next ``step`` resets it, ignores its action and
returns reward 0. ``autoreset_mode="SameStep"`` and ``"Disabled"`` are supported too;
``reset(options={"reset_mask": mask})`` resets some sub-environments only.

Stable-Baselines3 has its own VecEnv API (same-step reset, ``terminal_observation``): wrap a
vector environment in :class:`ragenv.envs.sb3.SB3VecEnv`. SmartRAG-v0 gives ``action_masks()``
for sb3-contrib's ``MaskablePPO``; RAGRetrieval-v0 first needs its text dropped and a ``Box``
action (:class:`ragenv.envs.wrappers.CandidateScoreVectorAction`; :func:`ragenv.envs.sb3.sb3_retrieval_vec_env`
does both)::

    from ragenv.envs.sb3 import SB3VecEnv
    venv = SB3VecEnv(gym.make_vec("SmartRAG-v0", num_envs=8, vectorization_mode="vector_entry_point", ...))
    MaskablePPO("MultiInputPolicy", venv).learn(10_000)
"""
from __future__ import annotations

from collections.abc import Sequence
from copy import deepcopy
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array, iterate

from ragenv.envs.retrieval import RAGRetrievalEnv
from ragenv.envs.smartrag.env import SmartRAGEnv
from ragenv.envs.wrappers import CandidateScoreVectorAction  # re-exported: it lived here
from ragenv.errors import ConfigError, InvalidActionError, RagenvError

__all__ = ["CandidateScoreVectorAction", "RAGRetrievalVectorEnv", "SmartRAGVectorEnv"]


class _BatchedVectorEnv(VectorEnv):
    """Shared bookkeeping (seeds, autoreset, batching of outputs); subclasses run the LLM work in ``_advance``."""

    env_class: type[gym.Env]

    def __init__(self, num_envs: int = 1, autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
                 copy: bool = True, **kwargs: Any):
        if not (isinstance(num_envs, (int, np.integer)) and num_envs >= 1):
            raise ConfigError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        try:
            self.autoreset_mode = AutoresetMode(autoreset_mode)
        except ValueError:
            raise ConfigError(f"unknown autoreset_mode {autoreset_mode!r}: use one of "
                              f"{', '.join(m.value for m in AutoresetMode)}") from None
        first = self.env_class(**kwargs)
        self.envs: list[gym.Env] = [first] + [first.sibling() for _ in range(num_envs - 1)]
        self.num_envs = int(num_envs)
        self.copy = copy
        self.metadata = {**first.metadata, "autoreset_mode": self.autoreset_mode}
        self.render_mode = first.render_mode
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._env_obs: list[Any] = [None] * self.num_envs
        self._observations = create_empty_array(self.single_observation_space, n=self.num_envs, fn=np.zeros)
        self._rewards = np.zeros(self.num_envs, dtype=np.float64)
        self._terminations = np.zeros(self.num_envs, dtype=np.bool_)
        self._truncations = np.zeros(self.num_envs, dtype=np.bool_)
        self._autoreset_envs = np.zeros(self.num_envs, dtype=np.bool_)
        self._started = np.zeros(self.num_envs, dtype=np.bool_)

    # ------------------------------------------------------------------ what subclasses provide
    def _plan(self, env: gym.Env, action: Any) -> Any:
        """Check one sub-environment's action without changing anything (raises InvalidActionError)."""
        return env.plan_step(action)

    def _advance(self, resets: dict[int, tuple[int | None, dict | None]],
                 plans: dict[int, Any]) -> tuple[dict[int, tuple], dict[int, tuple]]:
        """Reset the sub-environments in ``resets`` (index -> seed, options) and finish the steps in
        ``plans`` (index -> checked action), with batched LLM work. Returns the reset and step results."""
        raise NotImplementedError

    # ------------------------------------------------------------------ Gymnasium VectorEnv API
    @property
    def np_random_seed(self) -> tuple[int | None, ...]:
        return tuple(env.np_random_seed for env in self.envs)

    @property
    def np_random(self) -> tuple[np.random.Generator, ...]:
        return tuple(env.np_random for env in self.envs)

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        if seed is None:
            seeds = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"If seeds are passed as a list the length must match num_envs={self.num_envs} "
                             f"but got length={len(seeds)}.")
        options = dict(options) if options else None
        mask = np.ones(self.num_envs, dtype=np.bool_)
        if options is not None and "reset_mask" in options:
            mask = options.pop("reset_mask")
            if not isinstance(mask, np.ndarray) or mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
                raise ValueError(f"`options['reset_mask']` must be a numpy bool array of shape ({self.num_envs},)")
            if not mask.any():
                raise ValueError("`options['reset_mask']` must contain at least one True value")
            options = options or None
        indices = [i for i in range(self.num_envs) if mask[i]]
        results, _ = self._advance({i: (seeds[i], options) for i in indices}, {})
        infos: dict[str, Any] = {}
        for i in indices:
            self._env_obs[i], info = results[i]
            infos = self._add_info(infos, info, i)
        self._terminations[mask] = False
        self._truncations[mask] = False
        self._autoreset_envs[mask] = False
        self._started[mask] = True
        self._observations = concatenate(self.single_observation_space, self._env_obs, self._observations)
        return (deepcopy(self._observations) if self.copy else self._observations), infos

    def step(self, actions):
        if not self._started.all():
            raise RagenvError("call reset() before step()")
        actions = list(iterate(self.action_space, actions))
        if len(actions) != self.num_envs:
            raise InvalidActionError(f"expected {self.num_envs} actions, got {len(actions)}")
        resets: dict[int, tuple] = {}
        plans: dict[int, Any] = {}
        for i, (env, action) in enumerate(zip(self.envs, actions)):
            if self._autoreset_envs[i]:
                if self.autoreset_mode == AutoresetMode.DISABLED:
                    raise RagenvError(f"sub-environment {i} has ended and autoreset is disabled; reset it with "
                                      "reset(options={'reset_mask': mask})")
                resets[i] = (None, None)
                continue
            try:  # every action is checked before any sub-environment changes
                plans[i] = self._plan(env, action)
            except InvalidActionError as exc:
                raise InvalidActionError(f"sub-environment {i}: {exc}") from None
        reset_results, step_results = self._advance(resets, plans)
        env_infos: list[dict] = [{}] * self.num_envs
        for i in range(self.num_envs):
            if i in reset_results:
                self._env_obs[i], env_infos[i] = reset_results[i]
                self._rewards[i], self._terminations[i], self._truncations[i] = 0.0, False, False
            else:
                (self._env_obs[i], self._rewards[i], self._terminations[i], self._truncations[i],
                 env_infos[i]) = step_results[i]
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            ended = [i for i in plans if self._terminations[i] or self._truncations[i]]
            fresh = self._advance({i: (None, None) for i in ended}, {})[0] if ended else {}
            for i in ended:
                final_obs, final_info = self._env_obs[i], env_infos[i]
                self._env_obs[i], reset_info = fresh[i]
                env_infos[i] = {"final_obs": final_obs, "final_info": final_info, **reset_info}
        infos: dict[str, Any] = {}
        for i, info in enumerate(env_infos):
            infos = self._add_info(infos, info, i)
        self._observations = concatenate(self.single_observation_space, self._env_obs, self._observations)
        if self.autoreset_mode != AutoresetMode.SAME_STEP:
            self._autoreset_envs = np.logical_or(self._terminations, self._truncations)
        return ((deepcopy(self._observations) if self.copy else self._observations), np.copy(self._rewards),
                np.copy(self._terminations), np.copy(self._truncations), infos)

    def render(self):
        return tuple(env.render() for env in self.envs)

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        results = []
        for env in self.envs:
            attribute = getattr(env, name)
            results.append(attribute(*args, **kwargs) if callable(attribute) else attribute)
        return tuple(results)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        return tuple(getattr(env, name) for env in self.envs)

    def set_attr(self, name: str, values: Any) -> None:
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"values must have length num_envs={self.num_envs}, got {len(values)}")
        for env, value in zip(self.envs, values):
            setattr(env, name, value)

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()

    @property
    def scorer(self):
        """The frozen-LLM scorer every sub-environment shares."""
        return self.envs[0].scorer


class RAGRetrievalVectorEnv(_BatchedVectorEnv):
    """``num_envs`` RAGRetrieval-v0 sub-environments; one frozen-LLM call per vector step.

    Arguments: ``num_envs``, ``autoreset_mode`` (``NextStep`` default, ``SameStep``, ``Disabled``),
    ``copy`` (return copies of the observation buffers) and every argument of
    :class:`ragenv.envs.RAGRetrievalEnv`. Each step's ``info`` is the single environment's.
    """

    env_class = RAGRetrievalEnv

    def _advance(self, resets, plans):
        reset_results = {i: self.envs[i].reset(seed=seed, options=options) for i, (seed, options) in resets.items()}
        order = list(plans)
        requests = [(self.envs[i].current_question, plans[i]) for i in order]
        outcomes = self.envs[0].outcomes(requests) if requests else []  # one FrozenLLM.run for all
        step_results = {i: self.envs[i].finish_step(plans[i], outcome) for i, outcome in zip(order, outcomes)}
        return reset_results, step_results


class SmartRAGVectorEnv(_BatchedVectorEnv):
    """``num_envs`` SmartRAG-v0 sub-environments; their LLM work batched per vector step.

    Arguments: ``num_envs``, ``autoreset_mode`` (``NextStep`` default, ``SameStep``, ``Disabled``),
    ``copy`` and every argument of :class:`ragenv.envs.SmartRAGEnv`. ``action_masks()`` gives the
    legal actions of every sub-environment, shape ``(num_envs, 5)`` (a sub-environment waiting for
    its next-step autoreset ignores its action; its mask allows ANSWER only). A masked action raises
    (naming the sub-environment) before any sub-environment changes; with ``invalid_action="penalize"``
    that sub-environment's step is penalised instead (reward -1, state unchanged, ``infos["invalid_action"]``).
    """

    env_class = SmartRAGEnv

    def _advance(self, resets, plans):
        new_questions = [self.envs[i].plan_reset(seed=seed, options=options) for i, (seed, options) in resets.items()]
        pairs = [pair for i, value in plans.items() for pair in self.envs[i].pending_llm_work(value)]
        self.envs[0].resolve(new_questions, pairs)  # the memos are shared: every sub-environment sees the results
        reset_results = {i: self.envs[i].finish_reset() for i in resets}
        step_results = {i: self.envs[i].finish_step(value) for i, value in plans.items()}
        return reset_results, step_results

    def action_masks(self) -> np.ndarray:
        masks = np.zeros((self.num_envs, self.single_action_space.n), dtype=bool)
        for i, env in enumerate(self.envs):
            if self._autoreset_envs[i] or env._current is None:
                masks[i, 0] = True
            else:
                masks[i] = env.action_masks()
        return masks
