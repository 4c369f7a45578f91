"""Property tests (hypothesis): whatever an agent, a dataset file or a submitter sends, ragenv either
accepts it or rejects it with its documented error, and a rejection changes nothing.

- RAGRetrieval-v0: actions drawn from the action space step (or, when they choose a passage
  twice, are rejected); malformed actions raise InvalidActionError and leave the episode open.
- SmartRAG-v0: any sequence of Discrete actions follows ``action_masks()``; SmartRAGText-v0:
  any string (Unicode, huge, empty, bare tags) is a search, an answer or a malformed action
  with reward -1, exactly as the docstring says.
- ``load_user_dataset``: generated records either load or raise DataError naming file:line.
- ``parse_submission``: generated and mutated JSON documents are accepted or raise SubmissionError.

Everything runs on real data (the small nq fixture, passages cut short) with the real SmolLM2,
on few questions so the LLM work stays small. ``BAD_INPUTS`` counts the rejected inputs tried per
component; they are printed at the end of the module (``pytest -s``).
"""
from __future__ import annotations

import copy
import json
import math
from collections import Counter
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ragenv  # noqa: F401
from ragenv.data import load_user_dataset
from ragenv.envs.smartrag.env import ANSWER
from ragenv.envs.smartrag.queries import QUERY_OPTIONS
from ragenv.envs.smartrag.text import MALFORMED_REWARD, MAX_TEXT_ACTION
from ragenv.errors import DataError, InvalidActionError, RagenvError, SubmissionError
from ragenv.leaderboard.submission import parse_submission, to_json
from ragenv.metrics import exact_match, f1_score
from tests.support import REPO, TEST_LLM

SHORT_WORDS = 12  # passage length in this module's dataset: every LLM prompt stays short
BAD_INPUTS: Counter = Counter()  # rejected inputs tried, per component (reported at module end)
GOOD_INPUTS: Counter = Counter()

FAST = dict(deadline=None, database=None, derandomize=False,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                   HealthCheck.data_too_large, HealthCheck.filter_too_much])


@pytest.fixture(scope="module", autouse=True)
def report_inputs_tried(one_torch_thread):
    """Print the counts of inputs tried at the end (with one intra-op torch thread: a shared 2-core machine)."""
    yield
    print(f"\n[test_properties] bad inputs tried: {dict(BAD_INPUTS)}; good inputs tried: {dict(GOOD_INPUTS)}")


@pytest.fixture(scope="module")
def tiny_dataset(truncated_dataset) -> Path:
    """small_dataset with every passage cut to its first 12 words (same ids, questions and splits)."""
    return truncated_dataset(SHORT_WORDS)


# --------------------------------------------------------------------------- (a) RAGRetrieval-v0


@pytest.fixture(scope="module")
def scorer():
    """SmolLM2 with answers of at most 8 tokens (SmartRAG's answers; the retrieval reward only scores)."""
    from ragenv.llm import FrozenLLM, LLMConfig
    from ragenv.reward_cache import RewardCache

    return FrozenLLM(LLMConfig(name=TEST_LLM, max_new_tokens=8), RewardCache())


@pytest.fixture(scope="module")
def retrieval_env(tiny_dataset, scorer):
    env = gym.make("RAGRetrieval-v0", dataset=str(tiny_dataset), split="test", scorer=scorer, limit=3, features=False)
    yield env
    env.close()


def _open_episode(env):
    """Reset to the first question; its closed-book step is cached after the first call (no LLM work)."""
    question = env.unwrapped.questions[0]
    obs, _ = env.reset(options={"question_id": question.id})
    assert env.observation_space.contains(obs)
    return question


@settings(max_examples=8, **FAST)
@given(data=st.data())
def test_retrieval_actions_from_the_action_space(retrieval_env, data):
    """Sampled from action_space: steps, unless it chooses a passage twice (documented: InvalidActionError)."""
    base = retrieval_env.unwrapped
    n, k = len(base.corpus), base.k
    # a few corpus rows (plus -1) keep the number of distinct LLM prompts small; the space's bounds are drawn too
    seed = data.draw(st.integers(0, 2 ** 32 - 1))
    if data.draw(st.booleans()):
        retrieval_env.action_space.seed(seed)
        action = retrieval_env.action_space.sample()
    else:
        rows = st.sampled_from([-1, -1, 0, 1, 2, n - 1])
        action = np.array(data.draw(st.lists(rows, min_size=k, max_size=k)), dtype=np.int64)
    assert retrieval_env.action_space.contains(action)
    obs, info = retrieval_env.reset(seed=seed)
    assert retrieval_env.observation_space.contains(obs)
    chosen = [int(r) for r in action if r != -1]
    if len(set(chosen)) != len(chosen):
        BAD_INPUTS["retrieval: duplicate passages"] += 1
        with pytest.raises(InvalidActionError, match="twice"):
            retrieval_env.step(action)
        action = np.array([-1] * k)
        chosen = []
    GOOD_INPUTS["retrieval: valid action"] += 1
    obs, reward, terminated, truncated, info = retrieval_env.step(action)
    assert retrieval_env.observation_space.contains(obs)
    assert terminated and not truncated and math.isfinite(reward)
    assert info["passage_ids"] == [base.corpus[r].id for r in chosen] and info["num_passages"] == len(chosen)
    assert reward == pytest.approx(info["logprob_gain"] - base.cost_per_passage * len(chosen))


def _bad_retrieval_actions(n: int, k: int):
    row = st.integers(-1, n - 1)
    wrong_shape = st.one_of(
        st.lists(row, max_size=8).filter(lambda xs: len(xs) != k).map(lambda xs: np.array(xs, dtype=np.int64)),
        st.lists(row, min_size=k, max_size=k).map(lambda xs: np.array([xs])),  # (1, k)
        st.lists(row, min_size=k, max_size=k).map(lambda xs: [[x] for x in xs]),  # nested lists (k, 1)
        st.lists(st.lists(row, max_size=3), min_size=2, max_size=k).filter(
            lambda xs: len({len(x) for x in xs}) > 1),  # ragged nested lists
        row,  # a scalar
        st.just([]),
    )
    out_of_range = st.lists(row, min_size=k, max_size=k).flatmap(
        lambda xs: st.tuples(st.integers(0, k - 1), st.one_of(st.integers(-(2 ** 63), -2), st.integers(n, 2 ** 63 - 1),
                                                               st.sampled_from([n, -2, 2 ** 63 - 1, -(2 ** 63)])))
        .map(lambda pv: np.array(xs[: pv[0]] + [pv[1]] + xs[pv[0] + 1:], dtype=np.int64)))
    huge = st.lists(row, min_size=k - 1, max_size=k - 1).map(lambda xs: xs + [2 ** 70])  # beyond int64: object dtype
    floats = st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=k, max_size=k).filter(
        lambda xs: any(not math.isfinite(x) or x != round(x) for x in xs)).map(np.array)
    nan = st.just(np.array([np.nan] * k))
    strings = st.one_of(st.text(max_size=20), st.lists(st.text(max_size=3), min_size=k, max_size=k),
                        st.binary(max_size=10), st.just("0 1 2"), st.just(["0", "1", "2"][:k] + ["0"] * (k - 3)))
    other = st.one_of(st.none(), st.just([None] * k), st.just([0, None, 1][:k]),
                      st.just(np.array([True] * k)), st.just(np.array([1 + 2j] * k)), st.just({0: 1}),
                      st.just(set(range(k))), st.dictionaries(st.text(max_size=3), st.integers(), max_size=3))
    return {"wrong shape": wrong_shape, "out of range": out_of_range, "beyond int64": huge, "non-integer float": floats,
            "nan": nan, "string": strings, "none/bool/complex/dict": other}


@settings(max_examples=300, **FAST)
@given(data=st.data())
def test_retrieval_invalid_actions_raise_and_leave_the_episode_open(retrieval_env, data):
    base = retrieval_env.unwrapped
    n, k = len(base.corpus), base.k
    strategies = _bad_retrieval_actions(n, k)
    kind = data.draw(st.sampled_from(sorted(strategies)))
    action = data.draw(strategies[kind])
    question = _open_episode(retrieval_env)
    BAD_INPUTS["retrieval: " + kind] += 1
    with pytest.raises(InvalidActionError):
        retrieval_env.step(action)
    assert base.current_question.id == question.id  # the episode is still open
    _, _, terminated, _, _ = retrieval_env.step(np.array([-1] * k))  # cached: no LLM work
    assert terminated


# --------------------------------------------------------------------------- (b) SmartRAG-v0 and SmartRAGText-v0


@pytest.fixture(scope="module")
def smartrag_env(tiny_dataset, retrieval_env):
    """Quota 2 (so 'already used' and 'quota' both occur), two questions, the LLM of retrieval_env."""
    env = gym.make("SmartRAG-v0", dataset=retrieval_env.unwrapped.dataset, split="test", limit=2, max_retrievals=2,
                   scorer=retrieval_env.unwrapped.scorer, features=False)
    yield env
    env.close()


@pytest.fixture(scope="module")
def text_env(smartrag_env):
    base = smartrag_env.unwrapped
    env = gym.make("SmartRAGText-v0", dataset=base.dataset, split="test", limit=2, max_retrievals=2, scorer=base.scorer)
    yield env
    env.close()


def expected_mask(used: list[int], quota: int) -> list[bool]:
    """The documented rule: ANSWER always; an unused query option while under the quota."""
    return [True] + [len(used) < quota and option not in used for option in range(len(QUERY_OPTIONS))]


ILLEGAL_TYPES = st.one_of(st.none(), st.booleans(), st.text(max_size=5),
                          st.floats().filter(lambda x: not (math.isfinite(x) and x == round(x))),
                          st.lists(st.integers(0, 4), min_size=2, max_size=3), st.just([[0, 1], [2]]),
                          st.just(np.array([[1]])), st.just({"a": 1}), st.just(2 ** 70), st.just(1 + 0j))


@settings(max_examples=40, **FAST)
@given(data=st.data(), question=st.integers(0, 1), steps=st.integers(1, 8))
def test_smartrag_any_action_sequence_follows_the_masks(smartrag_env, data, question, steps):
    """Each step draws a legal action, a masked-out one (when any is) or a non-action; the model is the docstring."""
    base = smartrag_env.unwrapped
    q = base.questions[question]
    obs, info = smartrag_env.reset(options={"question_id": q.id})
    used: list[int] = []
    for _ in range(steps):
        mask = expected_mask(used, base.max_retrievals)
        assert base.action_masks().tolist() == mask == info["action_mask"].tolist()
        legal = [a for a, ok in enumerate(mask) if ok]
        masked = [a for a, ok in enumerate(mask) if not ok]
        kind = data.draw(st.sampled_from(["legal", "legal", "masked", "other"] if masked
                                         else ["legal", "legal", "other"]))
        if kind == "legal":
            action = data.draw(st.sampled_from(legal).flatmap(lambda a: st.sampled_from([a, np.int64(a), float(a)])))
        elif kind == "masked":
            action = data.draw(st.sampled_from(masked).flatmap(lambda a: st.sampled_from([a, np.int64(a)])))
        else:
            action = data.draw(st.one_of(st.integers(-3, -1), st.integers(5, 9), ILLEGAL_TYPES))
        if kind != "legal":
            BAD_INPUTS["smartrag: " + ("masked-out action" if kind == "masked"
                                       else "out-of-range or non-integer action")] += 1
            with pytest.raises(InvalidActionError):
                smartrag_env.step(action)
            assert base.num_retrievals == len(used) and base.current_question.id == q.id  # nothing changed
            continue
        GOOD_INPUTS["smartrag: legal action"] += 1
        obs, reward, terminated, truncated, info = smartrag_env.step(action)
        assert smartrag_env.observation_space.contains(obs) and not truncated
        if int(action) == ANSWER:
            assert terminated and info["num_retrievals"] == len(used)
            assert reward == pytest.approx(info["em"] + info["f1"] - base.alpha * len(used))
            assert info["actions"] == [f"retrieve:{QUERY_OPTIONS[o]}" for o in used] + ["answer"]
            with pytest.raises(RagenvError, match="reset"):
                base.step(ANSWER)
            return
        used.append(int(action) - 1)
        assert reward == 0.0 and not terminated and info["num_retrievals"] == len(used)
        assert obs["query_used"].tolist() == [float(o in used) for o in range(len(QUERY_OPTIONS))]
    # the episode is still open: answering always works and ends it
    _, reward, terminated, _, info = smartrag_env.step(ANSWER)
    assert terminated and reward == pytest.approx(info["em"] + info["f1"] - base.alpha * len(used))


def classify_text_action(action: str) -> tuple[str, str]:
    """The documented parsing rules, written independently of parse_text_action."""
    if len(action) > MAX_TEXT_ACTION:
        return "malformed", ""
    text = action.strip()
    tag = text[:8].lower() if text[:8].isascii() else ""  # "any ASCII case": '[ſearch]' (long s) is no tag
    if tag not in ("[search]", "[answer]"):
        return "malformed", ""
    payload = text[8:].split("\n")[0].strip()
    return ("search" if tag == "[search]" else "answer", payload) if payload else ("malformed", "")


TAGS = ["[Search]", "[Answer]", "[search]", "[answer]", "[SEARCH]", "[ANSWER]", "[ſearch]", "[Search ]", "[Answer",
        "Search]", "[Lookup]", "[]", "", " ", "\n", "[Answer]\n", "[Search]\t", "\u3000[Answer]", "[Answer]\u2028"]
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)  # all of Unicode, lone surrogates too
PAYLOADS = st.one_of(
    ANY_TEXT,
    st.sampled_from(["", " ", "\n", "Paris", "\nsecond line", "  x  ", "日本語", "🎉", "a\u0301", "\u202eevil", "\x00",
                     "?", "the", "\ud800"]),
    st.tuples(st.text(min_size=1, max_size=4), st.integers(400, 6000)).map(lambda t: t[0] * t[1]),  # huge
)
TEXT_ACTIONS = st.one_of(st.tuples(st.sampled_from(TAGS), PAYLOADS).map("".join), ANY_TEXT,
                         ANY_TEXT.map(lambda q: "[Search] " + q),  # any Unicode query reaches the first stage
                         st.tuples(st.sampled_from(TAGS), st.sampled_from(["Paris", "x"]), st.integers(1990, 2010))
                         .map(lambda t: t[0] + " " + t[1] * t[2]))  # around the 2000-character limit


@settings(max_examples=300, **FAST)
@given(question=st.integers(0, 1), use_answer=st.booleans(),
       actions=st.lists(st.one_of(TEXT_ACTIONS, st.sampled_from([None, 0, b"[Answer] x", ["[Answer] x"]])),
                        min_size=1, max_size=4))
def test_smartrag_text_any_string_is_search_answer_or_malformed(text_env, question, use_answer, actions):
    base = text_env.unwrapped
    q = base.questions[question]
    obs, info = text_env.reset(options={"question_id": q.id})
    assert text_env.observation_space.contains(obs)
    if use_answer:  # sometimes end with the gold answer, so answers that score also occur
        actions = actions + [f"[Answer] {q.answers[0]}"]
    retrievals = 0
    for action in actions:
        if not isinstance(action, str):
            BAD_INPUTS["smartrag-text: non-string action"] += 1
            with pytest.raises(InvalidActionError, match="string action"):
                text_env.step(action)
            assert base.num_retrievals == retrievals and base.current_question.id == q.id
            continue
        kind, payload = classify_text_action(action)
        if kind == "search" and retrievals >= base.max_retrievals:
            kind = "malformed"
        obs, reward, terminated, truncated, info = text_env.step(action)
        assert isinstance(obs, str) and text_env.observation_space.contains(obs) and not truncated
        if kind == "malformed":
            BAD_INPUTS["smartrag-text: malformed string"] += 1
            assert terminated and reward == MALFORMED_REWARD and info["invalid_action"]
            assert info["episode_record"]["reward"] == MALFORMED_REWARD
            return
        GOOD_INPUTS["smartrag-text: " + kind] += 1
        if kind == "search":
            retrievals += 1
            assert reward == 0.0 and not terminated and info["num_retrievals"] == retrievals
            assert len(set(info["passage_ids"])) == len(info["passage_ids"]) <= retrievals * base.top_n
            continue
        assert terminated and info["answer"] == payload and "invalid_action" not in info
        expected = exact_match(payload, q.answers) + f1_score(payload, q.answers) - base.alpha * retrievals
        assert reward == pytest.approx(expected)
        return


# --------------------------------------------------------------------------- (c) the user dataset loader

JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 64), 2 ** 64), st.floats(), st.text(max_size=8)),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.text(max_size=5), children, max_size=3)),
    max_leaves=6,
)
ANY_TEXT_FIELD = st.one_of(st.text(max_size=30), st.text(st.characters(codec="utf-8"), max_size=30),
                           st.tuples(st.text(min_size=1, max_size=5),
                                     st.integers(1000, 30000)).map(lambda t: t[0] * t[1]))
ID = st.one_of(st.text(min_size=1, max_size=6), st.integers(-5, 50))
MISSING = object()


def field(good, clean: bool):
    """A field value: from ``good``; in a dirty dataset sometimes any JSON value instead, or missing."""
    return good if clean else st.one_of(good, good, good, good, good, JSON_VALUES, st.just(MISSING))


def _is_id(v) -> bool:
    return isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))


@st.composite
def dataset_files(draw):
    """corpus.jsonl and questions.jsonl lines (bytes) and, per file, the 1-based number of the first bad line."""
    passages, pids, first_bad = [], [], {}
    lines = {"corpus.jsonl": [], "questions.jsonl": []}
    clean = draw(st.booleans())  # half the datasets are well-formed (yet full of Unicode, long and blank text)

    def add(name: str, raw: bytes, bad: bool):
        lines[name].append(raw)
        if bad and name not in first_bad:
            first_bad[name] = len(lines[name])

    def garbage():
        return draw(st.sampled_from([b"{", b"not json", b"\xff\xfe{}", b'{"id": "a", "text": "\xe9"}', b"[1, 2]",
                                     b'"x"', b"42", b"null", b'{"id": ' + b"1" * 5000 + b', "text": "t"}',
                                     b"[" * 100_000, b'{"id": 1, "text": "t"} {"id": 2}', b'{"id": 1, "text": "t"']))

    for _ in range(draw(st.integers(0, 6))):
        if not clean and draw(st.integers(0, 19)) == 0:
            add("corpus.jsonl", garbage(), True)
            continue
        if draw(st.integers(0, 19)) == 0:
            add("corpus.jsonl", draw(st.sampled_from([b"", b"   ", b"\t"])), False)  # blank lines are skipped
            continue
        fresh = ID.filter(lambda v: str(v) not in pids)
        row = {"id": draw(fresh if clean else st.one_of(field(ID, clean), st.sampled_from(pids) if pids else ID)),
               "title": draw(st.one_of(st.just(MISSING), field(ANY_TEXT_FIELD, clean))),
               "text": draw(field(ANY_TEXT_FIELD, clean))}
        row = {key: value for key, value in row.items() if value is not MISSING}
        if draw(st.booleans()):
            row["extra"] = draw(JSON_VALUES)
        ok = (_is_id(row.get("id")) and isinstance(row.get("text"), str) and isinstance(row.get("title", ""), str)
              and str(row["id"]) not in pids)
        if ok:
            pids.append(str(row["id"]))
            passages.append(row)
        add("corpus.jsonl", json.dumps(row, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass"), not ok)
    qids: list[str] = []
    answer = st.one_of(st.text(max_size=10), st.sampled_from(["", " ", "\n", "Paris", "日本", "🎉"]))
    for _ in range(draw(st.integers(0, 6))):
        if not clean and draw(st.integers(0, 19)) == 0:
            add("questions.jsonl", garbage(), True)
            continue
        if clean:
            gold_ids = st.lists(st.sampled_from(pids), max_size=3) if pids else st.just([])
            answers = st.lists(answer, max_size=3).map(lambda a: a + ["Paris"])
            splits = st.sampled_from(["train", "test", "é"])
        else:
            gold_ids = st.lists(st.one_of(st.sampled_from(pids), ID) if pids else ID, max_size=3)
            answers = st.lists(answer, max_size=3)
            splits = st.sampled_from(["train", "test", "", " ", "é"])
        fresh = ID.filter(lambda v: str(v) not in qids)
        row = {"id": draw(fresh if clean else st.one_of(field(ID, clean), st.sampled_from(qids) if qids else ID)),
               "question": draw(field(st.one_of(ANY_TEXT_FIELD, st.sampled_from(["", "  ", "who?"])), clean)),
               "answers": draw(field(answers, clean)),
               "gold_passage_ids": draw(st.one_of(st.just(MISSING), field(gold_ids, clean))),
               "split": draw(st.one_of(st.just(MISSING), st.none(), field(splits, clean))),
               "source": draw(st.one_of(st.just(MISSING), st.none(), field(st.text(max_size=5), clean)))}
        row = {key: value for key, value in row.items() if value is not MISSING}
        gold, split, source = row.get("gold_passage_ids", []), row.get("split"), row.get("source")
        ok = (_is_id(row.get("id")) and isinstance(row.get("question"), str) and row["question"].strip() != ""
              and isinstance(row.get("answers"), list) and all(isinstance(a, str) for a in row["answers"])
              and any(a.strip() for a in row["answers"])
              and isinstance(gold, list) and all(_is_id(g) and str(g) in pids for g in gold)
              and str(row["id"]) not in qids
              and (split is None or (isinstance(split, str) and split.strip() != ""))
              and (source is None or isinstance(source, str)))
        if ok:
            qids.append(str(row["id"]))
        add("questions.jsonl", json.dumps(row, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass"),
            not ok)
    return lines, first_bad, len(pids), len(qids)


@pytest.mark.unit
@settings(max_examples=250, **FAST)
@given(files=dataset_files())
def test_user_dataset_loads_or_names_the_bad_line(tmp_path_factory, files):
    lines, first_bad, n_passages, n_questions = files
    folder = tmp_path_factory.mktemp("fuzzed-dataset")
    for name, rows in lines.items():
        (folder / name).write_bytes(b"\n".join(rows) + (b"\n" if rows else b""))
    if "corpus.jsonl" in first_bad:
        expected = f"{folder / 'corpus.jsonl'}:{first_bad['corpus.jsonl']}: "
    elif n_passages == 0:
        expected = "holds no passages"
    elif "questions.jsonl" in first_bad:
        expected = f"{folder / 'questions.jsonl'}:{first_bad['questions.jsonl']}: "
    else:
        expected = None
    if expected is None:
        GOOD_INPUTS["loader: valid dataset"] += 1
        dataset = load_user_dataset(folder)
        assert len(dataset.corpus) == n_passages and len(dataset.questions) == n_questions
        assert all(q.answers and all(a.strip() for a in q.answers) for q in dataset.questions)
        hash(tuple(dataset.questions))  # records are hashable (SmartRAG memoises by question)
        return
    BAD_INPUTS["loader: malformed dataset"] += 1
    with pytest.raises(DataError) as caught:
        load_user_dataset(folder)
    message = str(caught.value)
    assert expected in message and "\n" not in message, (expected, message)
    if expected.endswith(": "):
        assert message.startswith(expected), message


# --------------------------------------------------------------------------- (d) the submission validator

SEEDS = sorted((REPO / "leaderboard" / "submissions").glob("*.json"))


def valid_submissions() -> list[dict]:
    docs = []
    for path in SEEDS:
        doc = json.loads(path.read_text(encoding="utf-8"))
        doc["actions"] = doc["actions"][:4]
        docs.append(doc)
    smartrag = copy.deepcopy(docs[0])
    smartrag["env_id"], smartrag["env_options"] = "SmartRAG-v0", {"alpha": 0.2, "max_retrievals": 1}
    smartrag["actions"] = [{"question_id": a["question_id"], "retrievals": ["keywords"][:i % 2]}
                           for i, a in enumerate(smartrag["actions"])]
    return docs + [smartrag]


VALID_SUBMISSIONS = valid_submissions()
ANY_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(st.characters(codec=None), max_size=20),
              st.sampled_from([0, 1, 3, 100, 101, -1, 2 ** 63, 1e308, "RAGRetrieval-v0", "SmartRAG-v0", "nq", "test",
                               "a" * 201, "0" * 64])),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.one_of(st.text(max_size=8), st.sampled_from(
                                   ["env_id", "actions", "format_version", "metadata", "dataset", "llm", "k"])),
                                   children, max_size=4)),
    max_leaves=12,
)


def _paths(value, path=()):
    yield path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield from _paths(item, path + (key,))


@st.composite
def mutated_submission(draw):
    doc = copy.deepcopy(draw(st.sampled_from(VALID_SUBMISSIONS)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        op = draw(st.sampled_from(["replace", "delete", "add", "duplicate"]))
        if op == "replace":
            parent[path[-1]] = draw(ANY_JSON)
        elif op == "delete":
            del parent[path[-1]]
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(ANY_JSON)
        elif isinstance(parent, list):
            parent.insert(draw(st.integers(0, len(parent))), copy.deepcopy(parent[path[-1]]))
    return doc


def _check_submission(data: bytes) -> None:
    try:
        sub = parse_submission(data, "fuzz.json")
    except SubmissionError as exc:
        assert str(exc) and "\n" not in str(exc)
        BAD_INPUTS["submission: rejected"] += 1
        return
    GOOD_INPUTS["submission: accepted"] += 1
    assert parse_submission(to_json(sub).encode(), "again") == sub  # accepted documents round-trip unchanged
    ids = [a.question_id for a in sub.actions]
    assert len(ids) == len(set(ids))


@pytest.mark.unit
def test_valid_seed_submissions_are_accepted():
    assert len(VALID_SUBMISSIONS) >= 2
    for doc in VALID_SUBMISSIONS:
        parse_submission(json.dumps(doc).encode())


@pytest.mark.unit
@settings(max_examples=400, **FAST)
@given(doc=st.one_of(ANY_JSON, mutated_submission()), ensure_ascii=st.booleans())
def test_submission_documents_are_accepted_or_rejected_with_submission_error(doc, ensure_ascii):
    _check_submission(json.dumps(doc, ensure_ascii=ensure_ascii, allow_nan=True).encode("utf-8", "surrogatepass"))


@settings(max_examples=300, **FAST)
@given(seed=st.sampled_from(VALID_SUBMISSIONS), edits=st.lists(
    st.tuples(st.floats(0, 1), st.integers(0, 8), st.binary(max_size=12)), min_size=1, max_size=6))
@pytest.mark.unit
def test_submission_bytes_mutations_are_accepted_or_rejected(seed, edits):
    data = bytearray(json.dumps(seed, indent=1).encode())
    for where, length, payload in edits:
        at = int(where * len(data))
        data[at:at + length] = payload
    _check_submission(bytes(data))
