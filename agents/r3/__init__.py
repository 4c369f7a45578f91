"""R3: the reference retriever, trained by reinforced contrastive learning (arXiv 2510.24652).

- :mod:`ragenv.agents.r3.model`: the encoder (dense and vocabulary heads) and SiDR's frozen
  bag-of-tokens index;
- :mod:`ragenv.agents.r3.training`: ``R3Config``, the thresholds rule, the training loop;
- :mod:`ragenv.agents.r3.agent`: ``R3Agent`` (save, load, act) for ``--agent r3:DIR``.

Imported lazily (torch and transformers load on use): ``from ragenv.agents.r3 import R3Config, train``.
"""
from ragenv.agents.r3.training import R3Config, prepare_feedback, thresholds, train

__all__ = ["R3Config", "prepare_feedback", "thresholds", "train"]
