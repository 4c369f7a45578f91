"""Score actions for RAGRetrieval-v0: a continuous ``Box(m)`` of scores instead of corpus rows.

:class:`CandidateScoreAction` (single environment) and :class:`CandidateScoreVectorAction` (vector
environment) share one action space per environment, ``Box(-1, 1, (m,), float32)``: one score per
first-stage candidate. The top-``k`` scored candidates, best first, become the passage action (ties:
the first-stage order; empty candidate slots are never chosen). Only the order of the scores
matters, so any finite bound would do; ``[-1, 1]`` is the symmetric, normalised range that
continuous-action learners expect (Stable-Baselines3 refuses infinite bounds and clips its samples
into the bounds). Finite scores outside ``[-1, 1]`` are accepted too; a non-finite score or a wrong
shape raises :class:`ragenv.errors.InvalidActionError`.

For SB3, also drop the text observation::

    env = FilterObservation(CandidateScoreAction(gym.make("RAGRetrieval-v0", ...)),
                            ["candidate_ids", "candidate_scores", "question_embedding", "candidate_embeddings"])
    PPO("MultiInputPolicy", env)

(vector environments: :func:`ragenv.envs.sb3.sb3_retrieval_vec_env`).
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import VectorEnv, VectorWrapper
from gymnasium.vector.utils import batch_space

from ragenv.envs.retrieval import EMPTY, top_scored_candidates
from ragenv.errors import InvalidActionError

__all__ = ["SCORE_HIGH", "SCORE_LOW", "CandidateScoreAction", "CandidateScoreVectorAction", "score_space"]

SCORE_LOW, SCORE_HIGH = -1.0, 1.0


def score_space(num_candidates: int) -> spaces.Box:
    """The score action space of one environment: ``Box(-1, 1, (num_candidates,), float32)``."""
    return spaces.Box(SCORE_LOW, SCORE_HIGH, (num_candidates,), np.float32)


class CandidateScoreAction(gym.ActionWrapper):
    """Act with ``Box(-1, 1, (m,))`` scores over the first-stage candidates; the top-k become the passage action.

    Lets continuous-action learners (e.g. Stable-Baselines3's PPO) drive RAGRetrieval-v0.
    Empty candidate slots (-1) are never chosen.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.action_space = score_space(env.unwrapped.num_candidates)
        self._candidates: np.ndarray | None = None

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._candidates = obs["candidate_ids"]
        return obs, info

    def action(self, action):
        scores = np.asarray(action, dtype=np.float64).reshape(-1)
        if scores.shape != (len(self._candidates),) or not np.all(np.isfinite(scores)):
            raise InvalidActionError(f"score action must be {len(self._candidates)} finite numbers")
        return top_scored_candidates(scores, self._candidates, self.env.unwrapped.k)


class CandidateScoreVectorAction(VectorWrapper):
    """The vector form of :class:`CandidateScoreAction`: ``Box(-1, 1, (m,))`` scores per sub-environment.

    The top-``k`` scored first-stage candidates of each sub-environment become its passage action
    (empty candidate slots are never chosen), so continuous-action learners (SB3's PPO) can drive
    RAGRetrieval-v0.
    """

    def __init__(self, env: VectorEnv):
        super().__init__(env)
        base = env.unwrapped.envs[0]
        self.k, self.m = base.k, base.num_candidates
        self.single_action_space = score_space(self.m)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._candidates = np.full((self.num_envs, self.m), EMPTY, dtype=np.int64)

    def _remember(self, observations) -> None:
        self._candidates = np.array(observations["candidate_ids"], dtype=np.int64, copy=True)

    def reset(self, **kwargs):
        observations, infos = self.env.reset(**kwargs)
        self._remember(observations)
        return observations, infos

    def step(self, actions):
        scores = np.asarray(actions, dtype=np.float64)
        if scores.shape != (self.num_envs, self.m) or not np.all(np.isfinite(scores)):
            raise InvalidActionError(f"score actions must be {self.num_envs} x {self.m} finite numbers, "
                                     f"got shape {scores.shape}")
        rows = np.stack([top_scored_candidates(scores[i], self._candidates[i], self.k) for i in range(self.num_envs)])
        observations, rewards, terminations, truncations, infos = self.env.step(rows)
        self._remember(observations)
        return observations, rewards, terminations, truncations, infos
