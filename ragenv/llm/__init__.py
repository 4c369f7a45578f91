"""The frozen LLM scorer (see :mod:`ragenv.llm.scorer`)."""
from ragenv.llm.scorer import *  # noqa: F401,F403
from ragenv.llm.scorer import (  # noqa: F401
    KNOWN_MODELS, PROMPT_VERSION, TASKS, FrozenLLM, LLMConfig, PromptRequest, make_llm_config, resolve_device,
    resolve_dtype, resolve_model_source, truncate_words,
)
