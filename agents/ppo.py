"""The PPO policy agent for SmartRAG-v0: MaskablePPO (sb3-contrib) over the vector observation.

By default the policy sees the retrieval count, the query options used and each option's
first-stage top-1 score (``PPOConfig.observation_keys``), and chooses ANSWER or
RETRIEVE(option) among the legal actions (the environment's ``action_masks``). The frozen
LLM's closed-book confidence, the per-word scores, the guess support and the question and
context embeddings can be added (``--observation-keys``). How the defaults were chosen (on a
validation split carved from nq train, never on test) is in ``docs/results/smartrag.md``.
Observations are normalised by a running mean and
variance (SB3's ``VecNormalize``) fitted during training and frozen afterwards.

    agent = PPOAgent.train(env, PPOConfig(), output_dir="runs/ppo")
    agent = PPOAgent.load("runs/ppo", env=env)
    action = agent.act(observation, info)

A saved agent is a folder: ``model.zip`` (the SB3 model), ``vecnormalize.pkl`` (the
observation statistics), ``agent.json`` (config, environment options, data and the corpus
store it was served over, if any, LLM, training summary) and the TensorBoard logs (``ppo_1/``).
"""
from __future__ import annotations

import json
import math
import pickle
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Sequence

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from ragenv.agents.ppo_config import EMBEDDING_KEYS, PPOConfig
from ragenv.checkpoint import Checkpoint, generator_states, restore_generators
from ragenv.errors import ConfigError
from ragenv.spec import corpus_record

AGENT_FORMAT = 2  # 2: observation_keys


def observation_shapes(space, keys: Sequence[str]) -> dict[str, list[int]]:
    """The shapes of the observation entries the policy reads; ConfigError when the space lacks one."""
    from gymnasium import spaces

    if not isinstance(space, spaces.Dict):
        raise ConfigError("the PPO agent needs SmartRAG-v0's Dict observation (not the text variant)")
    missing = [key for key in keys if key not in space.spaces]
    if missing:
        hint = " (make SmartRAG-v0 with features=True)" if set(missing) & set(EMBEDDING_KEYS) else ""
        raise ConfigError(f"the PPO agent reads {', '.join(missing)}, which the environment's observation lacks{hint}")
    return {key: list(space.spaces[key].shape) for key in keys}


class PPOAgent:
    """A trained MaskablePPO policy with ``act(observation, info)``, ``predict``, ``save`` and ``load``."""

    name = "ppo"

    def __init__(self, model, normalizer=None, metadata: dict | None = None, env=None, config: PPOConfig | None = None):
        self.model = model
        self.normalizer = normalizer
        self.metadata = metadata or {}
        self.env = env
        self.config = config or PPOConfig()

    # ------------------------------------------------------------------ training
    @classmethod
    def train(cls, env, config: PPOConfig = PPOConfig(), output_dir: str | Path | None = None,
              progress: bool = True, resume: bool = True, log=None) -> "PPOAgent":
        """Train on ``env`` (SmartRAG-v0 with ``features=True``) and, with ``output_dir``, save there.

        TensorBoard logs go to ``output_dir``. Fill the cache first (``env.unwrapped.precompute()``),
        or the frozen LLM runs inside the rollouts. With ``output_dir``, a checkpoint is written
        after every PPO update (``checkpoint/``: model and optimizer, observation statistics,
        the episode in progress, every random generator); with ``resume``, a killed run of the
        same configuration continues from it and ends with exactly the model an uninterrupted
        run gives. ``log``: a callable given one line when training resumes.
        """
        from gymnasium.wrappers import FilterObservation
        from sb3_contrib import MaskablePPO
        from stable_baselines3.common.monitor import Monitor
        from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

        base = env.unwrapped
        shapes = observation_shapes(base.observation_space, config.observation_keys)
        output = Path(output_dir) if output_dir is not None else None
        if output is not None:
            output.mkdir(parents=True, exist_ok=True)
        monitor = Monitor(FilterObservation(env, list(config.observation_keys)))
        dummy = DummyVecEnv([lambda: monitor])
        venv = dummy
        if config.normalize_observations:
            venv = VecNormalize(dummy, norm_obs=True, norm_reward=False, clip_obs=10.0, gamma=config.gamma)
        identity = {"config": asdict(config), "env_options": base.env_options, "dataset": base.dataset.name,
                    **corpus_record(base.corpus),  # a corpus store: no resume across corpora
                    "split": base.split_name, "questions": [q.id for q in base.questions],
                    "llm_fingerprint": base.scorer.cache_fingerprint}  # model and dtype: no resume across settings
        checkpoint = _Checkpoint(output / "checkpoint", identity, monitor, dummy, venv) if output is not None else None
        restored = checkpoint.load() if checkpoint is not None and resume else None
        if restored is not None:
            venv = restored["venv"]
            model = MaskablePPO.load(checkpoint.folder / "model.zip", env=venv, device=config.device,
                                     tensorboard_log=str(output), force_reset=False)
            checkpoint.restore(restored, model)
            if log is not None:
                log(f"resuming an interrupted training run at step {model.num_timesteps} of {config.total_timesteps} "
                    f"({checkpoint.folder})")
        else:
            model = MaskablePPO(
                "MultiInputPolicy", venv,
                learning_rate=config.learning_rate, n_steps=config.n_steps, batch_size=config.batch_size,
                n_epochs=config.n_epochs, gamma=config.gamma, gae_lambda=config.gae_lambda,
                clip_range=config.clip_range,
                ent_coef=config.ent_coef, vf_coef=config.vf_coef, policy_kwargs={"net_arch": list(config.net_arch)},
                tensorboard_log=str(output) if output is not None else None, seed=config.seed, device=config.device,
                verbose=0,
            )
        resumed_at = int(model.num_timesteps)
        started = time.perf_counter()
        model.learn(total_timesteps=config.total_timesteps - resumed_at, progress_bar=progress, tb_log_name="ppo",
                    reset_num_timesteps=restored is None,
                    callback=checkpoint.callback() if checkpoint is not None else None)
        seconds = time.perf_counter() - started
        normalizer = model.get_vec_normalize_env() if config.normalize_observations else None
        if normalizer is not None:
            normalizer.training = False
        returns = monitor.get_episode_rewards()
        tail = returns[-max(1, len(returns) // 5):] if returns else []
        metadata = {
            "format": AGENT_FORMAT,
            "env_id": getattr(getattr(base, "spec", None), "id", None) or "SmartRAG-v0",
            "env_options": base.env_options,
            "dataset": base.dataset.name,
            **corpus_record(base.corpus),  # trained over a corpus store: which one
            "split": base.split_name,
            "questions": len(base.questions),
            "llm": base.scorer.config.name,
            "llm_fingerprint": base.scorer.fingerprint,
            "numerics": base.scorer.numerics.describe(),
            "observation_shapes": shapes,
            "config": asdict(config),
            "training": {"timesteps": int(model.num_timesteps), "episodes": len(returns), "seconds": seconds,
                         "steps_per_second": (model.num_timesteps - resumed_at) / seconds if seconds > 0 else math.nan,
                         "mean_return_last_fifth": float(np.mean(tail)) if tail else math.nan,
                         "resumed_at_step": resumed_at},
        }
        agent = cls(model, normalizer, metadata, env=base, config=config)
        if output is not None:
            agent.save(output)
            checkpoint.remove()
        return agent

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save(folder / "model.zip")
        if self.normalizer is not None:
            with open(folder / "vecnormalize.pkl", "wb") as handle:
                pickle.dump(self.normalizer, handle)  # VecNormalize pickles its statistics, not its environment
        tmp = folder / "agent.json.tmp"
        tmp.write_text(json.dumps(self.metadata, indent=1, allow_nan=True))
        tmp.replace(folder / "agent.json")
        return folder

    @classmethod
    def load(cls, folder: str | Path, env=None) -> "PPOAgent":
        """A saved agent; with ``env``, checked against its observation space."""
        from sb3_contrib import MaskablePPO

        folder = Path(folder).expanduser()
        if not (folder / "model.zip").is_file() or not (folder / "agent.json").is_file():
            raise ConfigError(f"no trained PPO agent in {str(folder)!r} (model.zip or agent.json is missing); "
                              "train one with `ragenv train ppo --output DIR`")
        try:
            metadata = json.loads((folder / "agent.json").read_text())
            known = {f.name for f in fields(PPOConfig)}
            config = PPOConfig(**{k: tuple(v) if k in ("net_arch", "observation_keys") else v
                                  for k, v in metadata.get("config", {}).items() if k in known})
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"{folder / 'agent.json'} is unreadable ({exc}); retrain the agent") from None
        if metadata.get("format") != AGENT_FORMAT:
            raise ConfigError(f"{folder} holds a PPO agent of format {metadata.get('format')!r}, expected "
                              f"{AGENT_FORMAT}; retrain it with this ragenv version")
        if env is not None:
            base = env.unwrapped
            shapes = observation_shapes(base.observation_space, config.observation_keys)
            if shapes != metadata.get("observation_shapes"):
                raise ConfigError(f"the PPO agent in {folder} was trained on observations "
                                  f"{metadata.get('observation_shapes')} but the environment gives {shapes}")
        try:
            model = MaskablePPO.load(folder / "model.zip", device=config.device)
            normalizer = None
            if (folder / "vecnormalize.pkl").is_file():
                with open(folder / "vecnormalize.pkl", "rb") as handle:
                    normalizer = pickle.load(handle)
                normalizer.training = False
        except Exception as exc:  # noqa: BLE001 - a damaged zip or pickle can fail in many ways
            raise ConfigError(f"cannot load the PPO agent in {folder}: {type(exc).__name__}: {exc}; "
                              "retrain it") from None
        return cls(model, normalizer, metadata, env=env.unwrapped if env is not None else None, config=config)

    # ------------------------------------------------------------------ acting
    def predict(self, observation: dict, action_masks: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[int, None]:
        """SB3-style: ``(action, None)`` for one observation and its legal-action mask."""
        observation = {key: observation[key] for key in self.config.observation_keys}
        if self.normalizer is not None:
            observation = self.normalizer.normalize_obs(observation)
        action, _ = self.model.predict(observation, deterministic=deterministic, action_masks=action_masks)
        return int(np.asarray(action).reshape(-1)[0]), None

    def act(self, observation: dict, info: dict | None = None) -> int:
        """The greedy legal action (the mask comes from ``info["action_mask"]`` or the environment)."""
        if info is not None and "action_mask" in info:
            mask = np.asarray(info["action_mask"], dtype=bool)
        elif self.env is not None:
            mask = self.env.action_masks()
        else:
            mask = None
        return self.predict(observation, mask)[0]


# --------------------------------------------------------------------------- checkpoints


class _Checkpoint(Checkpoint):
    """Training state after each PPO update, written as one snapshot, so that a killed run resumes exactly.

    ``checkpoint/`` holds ``model.zip`` (policy, optimizer, step counters, the last observation),
    ``vecnormalize.pkl`` and ``state.pkl`` (the environment's episode in progress and generator,
    the Monitor's episode lists, and the torch, NumPy and Python generators), tagged with the
    run's identity (:class:`ragenv.checkpoint.Checkpoint`).
    """

    def __init__(self, folder: Path, identity: dict, monitor, dummy, venv):
        super().__init__(folder, identity)
        self.monitor, self.dummy, self.venv = monitor, dummy, venv

    def callback(self) -> SaveAfterUpdate:
        return SaveAfterUpdate(self)

    def save(self, model) -> None:
        monitor = {k: getattr(self.monitor, k) for k in ("rewards", "needs_reset", "episode_returns", "episode_lengths",
                                                          "episode_times", "total_steps")}
        state = {"timesteps": int(model.num_timesteps), "env": self.monitor.unwrapped.get_state(), "monitor": monitor,
                 "vec_buffers": {"reset_infos": self.dummy.reset_infos, "seeds": self.dummy._seeds,
                                 "options": self.dummy._options},
                 "generators": generator_states()}
        with self.snapshot() as folder:
            model.save(folder / "model.zip")
            vec = model.get_vec_normalize_env()
            if vec is not None:
                with open(folder / "vecnormalize.pkl", "wb") as handle:
                    pickle.dump(vec, handle)
            self.write_into(folder, "state.pkl", state)

    def load(self) -> dict | None:
        """The saved state if a checkpoint of this very run exists (else None: train from scratch)."""
        state = self.read("state.pkl")
        if state is None:
            return None
        venv = self.venv
        if (self.folder / "vecnormalize.pkl").is_file():
            from stable_baselines3.common.vec_env import VecNormalize

            venv = VecNormalize.load(str(self.folder / "vecnormalize.pkl"), self.dummy)
        return {**state, "venv": venv}

    def restore(self, state: dict, model) -> None:
        self.dummy.reset()  # arms the wrappers' reset checks; everything it changed is overwritten below
        self.monitor.unwrapped.set_state(state["env"])
        for key, value in state["monitor"].items():
            setattr(self.monitor, key, value)
        self.dummy.reset_infos = state["vec_buffers"]["reset_infos"]
        self.dummy._seeds = state["vec_buffers"]["seeds"]  # loading re-seeded the env; undo that
        self.dummy._options = state["vec_buffers"]["options"]
        restore_generators(state["generators"])


class SaveAfterUpdate(BaseCallback):
    """Saves ``checkpoint`` when a rollout starts, i.e. after the previous PPO update (not before the first)."""

    def __init__(self, checkpoint: _Checkpoint):
        super().__init__()
        self.checkpoint = checkpoint
        self.first = True

    def _on_rollout_start(self) -> None:
        if not self.first:
            self.checkpoint.save(self.model)
        self.first = False

    def _on_step(self) -> bool:
        return True


# --------------------------------------------------------------------------- alpha sweep


def alpha_sweep(alphas: Sequence[float], *, dataset: str, split: str, eval_split: str, llm: str,
                config: PPOConfig = PPOConfig(), limit: int | None = None, eval_limit: int | None = None,
                workdir: str | Path, output: str | Path, data_dir: str | None = None, progress: bool = True,
                log=print, dtype: str = "float32", device: str = "auto", corpus: str | None = None) -> dict:
    """Train one agent per alpha, evaluate each on ``eval_split`` at its alpha, plot reward and retrieval rate.

    Writes ``<workdir>/alpha-<a>/`` (agent and ``eval.json``), the PNG ``output`` and
    ``output`` with suffix ``.json`` (the plotted numbers, the numeric setting and the provenance).
    The LLM outcomes do not depend on alpha, so one precompute per split serves every alpha.
    ``corpus``: a corpus store to serve the questions over (None: the dataset's own corpus).
    """
    import gymnasium as gym

    import ragenv  # noqa: F401
    from ragenv.evaluate import EvalConfig, evaluate, write_json

    workdir = Path(workdir)
    common = dict(dataset=dataset, llm=llm, data_dir=data_dir, corpus=corpus, features=config.needs_features,
                  dtype=dtype, device=device)
    train_env = gym.make("SmartRAG-v0", split=split, limit=limit, **common)
    eval_env = gym.make("SmartRAG-v0", split=eval_split, limit=eval_limit, **common)
    log(f"precomputing {dataset}/{split} and {dataset}/{eval_split} (frozen LLM, once for every alpha)")
    train_env.unwrapped.precompute(progress=progress)
    eval_env.unwrapped.precompute(progress=progress)
    rows, result = [], {}
    for alpha in alphas:
        folder = workdir / f"alpha-{alpha:g}"
        train_env.unwrapped.alpha = eval_env.unwrapped.alpha = float(alpha)  # rewards are computed on the fly
        log(f"alpha={alpha:g}: training {config.total_timesteps} steps -> {folder}")
        agent = PPOAgent.train(train_env, config, folder, progress=progress)
        result = evaluate(EvalConfig(env="SmartRAG-v0", agent=f"ppo:{folder}", dataset=dataset, split=eval_split,
                                     limit=eval_limit, llm=llm, data_dir=data_dir, corpus=corpus, dtype=dtype,
                                     device=device, env_options={"alpha": float(alpha)}),
                          env=eval_env, agent=agent, progress=progress)
        write_json(result, folder / "eval.json")
        m = result["metrics"]
        rows.append({"alpha": float(alpha), "reward": m["reward"], "em": m["em"], "f1": m["f1"],
                     "accuracy": m["accuracy"], "retrievals_per_question": m["retrievals_per_question"],
                     "answered_without_retrieval": m["answered_without_retrieval"]})
        log(f"alpha={alpha:g}: reward {m['reward']:.3f}, retrievals/question {m['retrievals_per_question']:.3f}")
    summary = {"env": "SmartRAG-v0", "dataset": dataset, "corpus": corpus, "train_split": split,
               "eval_split": eval_split, "llm": llm, "limit": limit, "eval_limit": eval_limit, "config": asdict(config),
               "numerics": result.get("numerics"), "provenance": result.get("provenance"),  # one eval env: the same
               "results": rows}
    plot_alpha_sweep(summary, output)
    write_json(summary, Path(output).with_suffix(".json"))
    return summary


def plot_alpha_sweep(summary: dict, output: str | Path) -> Path:
    """Two panels: reward (and EM + F1) against alpha; retrievals per question against alpha."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["results"]
    alphas = [r["alpha"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    left.plot(alphas, [r["reward"] for r in rows], "o-", label="reward (EM + F1 - alpha x retrievals)")
    left.plot(alphas, [r["em"] + r["f1"] for r in rows], "s--", label="EM + F1")
    left.set_xlabel("alpha (cost per retrieval)")
    left.set_ylabel("mean per question")
    left.legend(fontsize=8)
    right.plot(alphas, [r["retrievals_per_question"] for r in rows], "o-", color="tab:red")
    right.set_xlabel("alpha (cost per retrieval)")
    right.set_ylabel("retrievals per question")
    right.set_ylim(bottom=0)
    fig.suptitle(f"PPO on SmartRAG-v0: {summary['dataset']} {summary['eval_split']}"
                 f"{' over ' + summary['corpus'] if summary.get('corpus') else ''}"
                 f"{'' if summary.get('eval_limit') is None else ' (first ' + str(summary['eval_limit']) + ')'}, "
                 f"{summary['llm']}{' in ' + summary['numerics']['dtype'] if summary.get('numerics') else ''}, "
                 f"{summary['config']['total_timesteps']} steps", fontsize=10)
    fig.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=120)
    plt.close(fig)
    return output
