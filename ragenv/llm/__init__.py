"""The frozen LLM: the only way to the environment's language model (see :class:`FrozenLLM`).

- :mod:`ragenv.llm.prompts`: prompt versions and instructions, ``build_prompt``, the cache-key parts (pure);
- :mod:`ragenv.llm.models`: model names and sources, weight digests, ``LLMConfig``, GGUF conversion;
- :mod:`ragenv.llm.engine`: batching, padding, forward passes and greedy decoding (the only torch code);
- :mod:`ragenv.llm.scorer`: :class:`FrozenLLM`, which looks results up, computes what is missing, and stores it.

Every name importable from ``ragenv.llm`` before the split still is.
"""
from ragenv.llm.engine import LLMStats
from ragenv.llm.models import (
    KNOWN_MODELS,
    LLMConfig,
    ModelSource,
    check_model_name,
    make_llm_config,
    resolve_model_source,
)
from ragenv.llm.prompts import (
    INSTRUCTION_CLOSED_BOOK,
    INSTRUCTION_SEARCH_QUERY,
    INSTRUCTION_SEARCH_QUERY_WITH_PASSAGES,
    INSTRUCTION_WITH_PASSAGES,
    PROMPT_VERSION,
    QUERY_PROMPT_VERSION,
    TASKS,
    PromptRequest,
    build_prompt,
    truncate_words,
)
from ragenv.llm.scorer import AnswerScore, FrozenLLM, Generation, PromptResult
from ragenv.numerics import (  # the numeric-setting helpers, importable from here before the split
    CANONICAL_DTYPE,
    NumericSetting,
    configure_device_precision,
    cpu_has_fast_bf16,
    numeric_setting,
    resolve_device,
    resolve_dtype,
    slow_dtype_warning,
)

__all__ = [
    "CANONICAL_DTYPE", "INSTRUCTION_CLOSED_BOOK", "INSTRUCTION_SEARCH_QUERY", "INSTRUCTION_SEARCH_QUERY_WITH_PASSAGES",
    "INSTRUCTION_WITH_PASSAGES", "KNOWN_MODELS", "PROMPT_VERSION", "QUERY_PROMPT_VERSION", "TASKS", "AnswerScore",
    "FrozenLLM", "Generation", "LLMConfig", "LLMStats", "ModelSource", "NumericSetting", "PromptRequest",
    "PromptResult", "build_prompt", "check_model_name", "configure_device_precision", "cpu_has_fast_bf16",
    "make_llm_config", "numeric_setting", "resolve_device", "resolve_dtype", "resolve_model_source",
    "slow_dtype_warning", "truncate_words",
]
