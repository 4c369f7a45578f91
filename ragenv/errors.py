"""User-facing errors: each says what was wrong and what to do.

The CLI prints any :class:`RagenvError` as one line and exits non-zero; library
users can catch them like ordinary exceptions.
"""
from __future__ import annotations


class RagenvError(Exception):
    """Base class for errors caused by the user's input or environment (not bugs)."""


class DataError(RagenvError):
    """A dataset is unknown, missing or corrupt."""


class ConfigError(RagenvError, ValueError):
    """A name or option is not valid (unknown agent, LLM, backend, ...)."""


class InvalidActionError(RagenvError, ValueError):
    """An environment received an action outside its action space; no state was changed."""


class CacheError(RagenvError):
    """A cache file is corrupt, foreign or unusable."""


class SubmissionError(RagenvError, ValueError):
    """A leaderboard submission is malformed, does not match the environment, or cannot be replayed."""


class PromptTooLongError(RagenvError, ValueError):
    """A prompt (question, passages, answer) does not fit the frozen LLM's context, even after the
    documented word limits; nothing is truncated silently, so the step is refused instead."""
