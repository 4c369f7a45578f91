"""SmartRAGText-v0: SmartRAG-v0 with the paper's ``[Search]``/``[Answer]`` string actions, for LLM policies."""
from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Any

from gymnasium import spaces

from ragenv.envs.smartrag.episode import SmartRAGEpisode, full_signature
from ragenv.envs.smartrag.outcomes import AnswerOutcome
from ragenv.errors import ConfigError, InvalidActionError, RagenvError
from ragenv.metrics import answer_in_output, exact_match, f1_score

MALFORMED_REWARD = -1.0  # an action that is not a legal [Search]/[Answer] string
MAX_TEXT_ACTION = 2000

# ASCII: under re.IGNORECASE alone "[ſearch]" (long s) matched, and was then scored as an answer
_TEXT_ACTION = re.compile(r"^\[(search|answer)\](.*)$", re.IGNORECASE | re.DOTALL | re.ASCII)


def parse_text_action(action: str) -> tuple[str, str]:
    """``("search", query)``, ``("answer", answer)`` or ``("malformed", reason)`` for a text action.

    Rules: surrounding whitespace is ignored; the text must start with the tag
    ``[Search]`` or ``[Answer]`` (any ASCII case); the payload is the rest of the first line,
    stripped, and must not be empty; at most 2000 characters in all.
    """
    if len(action) > MAX_TEXT_ACTION:
        return "malformed", f"action is longer than {MAX_TEXT_ACTION} characters"
    text = action.strip()
    if not text:
        return "malformed", "empty action"
    match = _TEXT_ACTION.match(text)
    if match is None:
        return "malformed", "action must start with [Search] or [Answer]"
    payload = match.group(2).split("\n")[0].strip()
    kind = match.group(1).lower()
    if not payload:
        needs = "a query" if kind == "search" else "an answer"
        return "malformed", f"[{kind.capitalize()}] needs {needs} after the tag"
    return kind, payload


class SmartRAGTextEnv(SmartRAGEpisode):
    """
    ## Description
    SmartRAG-v0 for LLM policies: the same questions, retriever, quota, costs and
    rewards, with the paper's string actions. The policy writes its own queries and
    its own answer (as the SmartRAG policy network does); the environment retrieves
    and scores. No frozen-LLM call is made, so there is nothing to precompute, and
    there is no action mask (``precompute`` and ``action_masks`` are SmartRAG-v0's).

    ## Action Space
    ``Text``: ``"[Search] <query>"`` retrieves the top-``n`` passages of ``<query>``
    (appended, de-duplicated; costs ``alpha``); ``"[Answer] <answer>"`` ends the episode
    and scores ``<answer>``. Parsing (:func:`parse_text_action`): surrounding whitespace
    is ignored, the tag must come first (any ASCII case), the payload is the rest of the
    first line and must not be empty, at most 2000 characters. Any ``str`` is parsed:
    the ``Text`` space's charset (printable ASCII) only shapes ``action_space.sample()``.

    Text that parses as neither (no tag, unknown tag, empty payload, too long), and a
    ``[Search]`` once the quota is used up, is *malformed*: reward -1
    (:data:`MALFORMED_REWARD`), the episode ends, and ``info["invalid_action"]`` says why
    (as in the SmartRAG reference code). A non-string action raises
    :class:`ragenv.errors.InvalidActionError`.

    ## Observation Space
    ``Text``: the prompt an LLM policy reads: the question, the retrieval count and
    quota, the passages so far, and the actions legal now (``[Answer]`` only once the
    quota is used up). ``info`` carries the same fields as SmartRAG-v0 minus
    ``queries``, ``closed_book_answer`` and ``action_mask``.

    ## Rewards
    As SmartRAG-v0 for ``[Answer]`` (EM + F1 of the given answer, or accuracy, minus
    ``alpha`` per retrieval); -1 for a malformed action; 0 for a search.

    ## Episode End
    On ``[Answer]`` or a malformed action; within ``max_retrievals + 1`` steps. Never truncated.

    ## Arguments
    As SmartRAG-v0 (checked at make time the same way) except ``invalid_action``: a malformed
    string already ends the episode with a reward; ``features`` defaults to False and has no
    effect on the observation.

    ## Version History
    * v0 (ragenv 0.1): first version.
    * v0, ragenv 0.2: keywords are checked at make time; the environment no longer subclasses
      SmartRAG-v0, so it has no ``action_masks``/``precompute`` methods (they raised before);
      actions, observations and rewards are unchanged.
    """

    def __init__(self, *args: Any, features: bool = False, **kwargs: Any):
        if "invalid_action" in kwargs:
            raise ConfigError("SmartRAGText-v0 takes no invalid_action: a malformed string action already ends the "
                              f"episode with reward {MALFORMED_REWARD} (invalid_action is a SmartRAG-v0 keyword)")
        super().__init__(*args, features=features, **kwargs)

    def _setup_spaces(self) -> None:
        template = self._prompt("", [], 0, True) + self._prompt("", [], 0, False)
        charset = set(string.printable) | set(template)
        for q in self.questions:
            charset.update(q.question)
        longest_passage = 0
        for text in self.corpus.contents:
            charset.update(text)
            longest_passage = max(longest_passage, len(text))
        longest_question = max(len(q.question) for q in self.questions)
        slots = self.max_retrievals * self.top_n
        max_length = len(template) + longest_question + slots * (longest_passage + 16) + 64
        self.observation_space = spaces.Text(max_length=max_length, min_length=1, charset="".join(sorted(charset)))
        self.action_space = spaces.Text(max_length=MAX_TEXT_ACTION, min_length=0, charset=string.printable)

    def _clear_episode(self) -> None:
        super()._clear_episode()
        self._queries: list[str] = []  # the [Search] queries of the episode, in order

    def _prompt(self, question: str, rows: Sequence[int], retrievals: int, may_search: bool) -> str:
        lines = [f"Question: {question}", f"Retrievals: {retrievals} of {self.max_retrievals}", "Passages:"]
        lines += [f"[{i}] {self.corpus[r].title}: {self.corpus[r].text}" if self.corpus[r].title
                  else f"[{i}] {self.corpus[r].text}" for i, r in enumerate(rows, 1)] or ["(none)"]
        if may_search:
            lines.append(f'Reply "[Search] <query>" to retrieve {self.top_n} more passages, or "[Answer] <answer>".')
        else:
            lines.append('Reply "[Answer] <answer>" (no retrievals left).')
        return "\n".join(lines)

    def _observation(self) -> str:
        question = self.current_question
        return self._prompt(question.question, self._rows, self._retrievals, self._retrievals < self.max_retrievals)

    def _info(self) -> dict:
        question = self.current_question
        return {"question_id": question.id, "question": question.question,
                "passages": [self.corpus[r].contents for r in self._rows],
                "passage_ids": [self.corpus[r].id for r in self._rows], "num_retrievals": self._retrievals}

    def search(self, query: str) -> tuple[int, ...]:
        """Top-n corpus rows of a free-text query (memoised)."""
        return self.engine.search(query)

    def get_state(self) -> dict:
        return {**super().get_state(), "queries": list(self._queries)}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self._queries = list(state.get("queries", []))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._start(seed, options)
        return self._observation(), self._info()

    def step(self, action):
        if self._current is None:
            raise RagenvError("call reset() before step(): the episode has ended or not started")
        if not isinstance(action, str):
            raise InvalidActionError(f"SmartRAGText-v0 takes a string action ('[Search] <query>' or "
                                     f"'[Answer] <answer>'), got {type(action).__name__}")
        kind, payload = parse_text_action(action)
        if kind == "search" and self._retrievals >= self.max_retrievals:
            kind, payload = "malformed", f"[Search] after the retrieval quota ({self.max_retrievals}) is used up"
        if kind == "search":
            self._retrieve(self.search(payload))
            self._queries.append(payload)
            return self._observation(), 0.0, False, False, self._info()
        extra = {"search_queries": list(self._queries)}
        if kind == "malformed":
            return self._end(AnswerOutcome("", 0.0, 0.0, 0.0, True), {**extra, "invalid_action": payload},
                             reward=MALFORMED_REWARD)
        question = self.current_question
        outcome = AnswerOutcome(payload, exact_match(payload, question.answers), f1_score(payload, question.answers),
                                answer_in_output(payload, question.answers), True)
        return self._end(outcome, extra)


SmartRAGTextEnv.__init__.__signature__ = full_signature(  # type: ignore[attr-defined]
    SmartRAGTextEnv.__init__, SmartRAGEpisode.__init__)
