"""Fuzz the leaderboard submission reader: every input is accepted or rejected with SubmissionError.

    python scripts/fuzz_submissions.py --iterations 100000 --seed 0

Each iteration takes a valid submission (the committed baseline submissions in
``leaderboard/submissions/``, trimmed to a few actions, and a SmartRAG-v0 trace made
from one), mutates it at the byte level (bit flips, interesting bytes and tokens,
insertions, deletions, splices, truncation, invalid UTF-8) or at the structure level
(fields deleted, added, duplicated or replaced by values of every JSON type and size,
env ids and versions changed, limits crossed), and feeds it to
:func:`ragenv.leaderboard.submission.read_submission`, the function
``ragenv leaderboard evaluate FILE`` reads a file with, through a real file (every
``--file-every``-th input) or :func:`parse_submission` on the bytes (the rest; it is
what ``read_submission`` calls after reading).

Outcomes are counted: accepted, rejected (SubmissionError) and crashed (any other
exception). The first crash stops the run: its input is written to
``--crash-dir`` and a reproducer is printed, and the exit status is 1.
"""
from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from ragenv.errors import SubmissionError  # noqa: E402
from ragenv.leaderboard.submission import (  # noqa: E402
    MAX_ACTIONS,
    MAX_JSON_DEPTH,
    parse_submission,
    read_submission,
    to_json,
)

SEED_DIR = REPO / "leaderboard" / "submissions"

INTERESTING_BYTES = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\xc0", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b'"', b"\\",
                     b"{", b"}", b"[", b"]", b",", b":", b"-", b"0", b"e", b"E", b".", b" ", b"\n", b"\t", b"\r",
                     b"\xef\xbb\xbf", b"\xe2\x80\xa8", b"\xc3\xa9"]
INTERESTING_TOKENS = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"1" * 5000, b"-0", b"0.0", b"1e-400",
                      b"true", b"false", b"null", b'"\\ud800"', b'"\\u0000"', b'"\\udfff\\ud800"', b"[" * 40,
                      b"{" * 40, b"]" * 40, b'"a":1,"a":2', b"9" * 400, b"\xef\xbb\xbf", b'"' + b"x" * 5000 + b'"']
INTERESTING_STRINGS = ["", " ", "\x00", "\x1f", "\x7f", "\u2028", "\ud800", "é", "日本語", "🎉" * 3, "a" * 201,
                       "a" * 2001, "a" * 4001, "x" * 50_000, "RAGRetrieval-v0", "RAGRetrieval-v1", "SmartRAG-v0",
                       "SmartRAG-v9", "ragretrieval-v0", "RAGRetrieval", "-v", "nq", "test", "gemma-3-270m",
                       "https://example.org", "javascript:alert(1)", "http://a b", "<script>", "0" * 64, "f" * 64,
                       "F" * 64, "0" * 63, "__proto__", "constructor", "NaN", "Infinity"]
INTERESTING_NUMBERS = [0, 1, -1, 2, 3, 100, 101, 1000, 1001, 20, 21, 2 ** 31, 2 ** 63, -(2 ** 63), 2 ** 64, 10 ** 300,
                       0.0, -0.0, 0.5, 1.0, 3.0, 1e308, -1e308, 5e-324, 100.0, 100.5, float("nan"), float("inf"),
                       float("-inf")]


# --------------------------------------------------------------------------- seeds


def seed_documents(max_actions: int = 5) -> list[dict]:
    """Valid submissions: the committed baselines (first ``max_actions`` actions), a SmartRAG-v0 trace, and last
    one baseline in full (100 actions; the driver picks it rarely, it costs ten times as much)."""
    docs = []
    for path in sorted(SEED_DIR.glob("*.json")):
        full = json.loads(path.read_text(encoding="utf-8"))
        short = copy.deepcopy(full)
        short["actions"] = short["actions"][:max_actions]
        docs.append(short)
    if not docs:
        raise SystemExit(f"no seed submissions in {SEED_DIR}")
    trace = copy.deepcopy(docs[0])
    trace["env_id"] = "SmartRAG-v0"
    trace["env_options"] = {"alpha": 0.2, "max_retrievals": 2, "top_n": 3, "reward": "em_f1", "first_stage": "bm25s"}
    traces = [[], ["keywords"], ["llm-query", "question"]]
    trace["actions"] = [{"question_id": a["question_id"], "retrievals": traces[i % 3]}
                        for i, a in enumerate(trace["actions"])]
    docs.append(trace)
    docs.append(json.loads((sorted(SEED_DIR.glob("*.json"))[0]).read_text(encoding="utf-8")))  # one full-size seed
    for doc in docs:  # every seed must be valid, or the fuzzer measures nothing
        parse_submission(json.dumps(doc).encode(), "seed")
    return docs


# --------------------------------------------------------------------------- structure-level mutation


def random_json(rng: random.Random, depth: int = 0):
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice(INTERESTING_NUMBERS)
    if kind == 3:
        return rng.randint(-10 ** rng.randint(1, 30), 10 ** rng.randint(1, 30))
    if kind == 4:
        return rng.choice(INTERESTING_STRINGS)
    if kind == 5:
        return "".join(chr(rng.choice([rng.randint(0x20, 0x7e), rng.randint(0, 0x10FFFF)]))
                       for _ in range(rng.randint(0, 30)))
    if kind == 6:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if kind == 7:
        return {rng.choice(INTERESTING_STRINGS[:20] + ["k", "name", "actions", "env_id"]): random_json(rng, depth + 1)
                for _ in range(rng.randint(0, 4))}
    return rng.choice([[], {}, [[]], {"": None}])


def _containers(value, path=()):
    """Every (path, container) in a document, the document itself first."""
    yield path, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(item, (dict, list)):
            yield from _containers(item, path + (key,))


def mutate_structure(doc: dict, rng: random.Random) -> bytes:
    doc = copy.deepcopy(doc)
    duplicate_key = None
    for _ in range(rng.choice([1, 1, 1, 2, 3, 5])):
        containers = list(_containers(doc))
        _, target = rng.choice(containers)
        op = rng.randrange(10)
        if isinstance(target, dict) and target:
            key = rng.choice(list(target))
            if op == 0:
                del target[key]
            elif op == 1:
                target[rng.choice(INTERESTING_STRINGS[:20] + ["extra", "score", "Actions"])] = random_json(rng)
            elif op == 2:
                duplicate_key = key  # written twice in the text below
            elif op == 3 and isinstance(target[key], list) and target[key]:
                target[key] = target[key] + [copy.deepcopy(rng.choice(target[key]))] * rng.randint(1, 3)
            elif op == 4 and key == "env_id":
                target[key] = rng.choice(["RAGRetrieval-v0", "SmartRAG-v0", "RAGRetrieval-v1", "SmartRAG-v1",
                                          "Nope-v0", "RAGRetrieval-vX", "", None, 0])
            elif op == 5 and isinstance(target[key], (int, float)) and not isinstance(target[key], bool):
                target[key] = rng.choice(INTERESTING_NUMBERS)
            elif op == 6 and isinstance(target[key], str):
                target[key] = rng.choice([target[key] * rng.randint(2, 300), target[key][: rng.randint(0, 5)],
                                          target[key] + rng.choice(INTERESTING_STRINGS), target[key].upper()])
            else:
                target[key] = random_json(rng)
        elif isinstance(target, list):
            if op < 3 and target:
                del target[rng.randrange(len(target))]
            elif op < 6 and target:
                target.insert(rng.randrange(len(target) + 1), copy.deepcopy(rng.choice(target)))
            elif op == 6 and target and rng.random() < 0.02:  # rarely: cross MAX_ACTIONS
                target.extend([copy.deepcopy(target[0])] * (MAX_ACTIONS + 1 - len(target)))
            else:
                target.insert(rng.randrange(len(target) + 1), random_json(rng))
    text = json.dumps(doc, ensure_ascii=rng.random() < 0.5, allow_nan=True,
                      indent=rng.choice([None, None, 1, "\t"]))
    if duplicate_key is not None:
        needle = json.dumps(duplicate_key, ensure_ascii=False)
        at = text.find(needle + ":") if rng.random() < 0.5 else text.find(needle + ": ")
        if at >= 0:
            text = text[:at] + f"{needle}: 1, " + text[at:]
    if rng.random() < 0.05:  # deep nesting around a valid document
        depth = rng.choice([MAX_JSON_DEPTH - 2, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 5000])
        text = "[" * depth + text + "]" * depth
    return text.encode("utf-8", "surrogatepass")


# --------------------------------------------------------------------------- byte-level mutation


def mutate_bytes(data: bytes, rng: random.Random, seeds: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 4, 8, 32])):
        op = rng.randrange(9)
        pos = rng.randrange(len(buf) + 1) if buf else 0
        if op == 0 and buf:
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            i = rng.randrange(len(buf))
            buf[i : i + 1] = rng.choice(INTERESTING_BYTES)
        elif op == 2:
            buf[pos:pos] = rng.choice(INTERESTING_TOKENS)
        elif op == 3:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 4 and buf:
            end = min(len(buf), pos + rng.randint(1, 64))
            del buf[pos:end]
        elif op == 5 and buf:
            end = min(len(buf), pos + rng.randint(1, 256))
            buf[pos:pos] = buf[pos:end]
        elif op == 6:
            other = rng.choice(seeds)
            start = rng.randrange(len(other))
            buf[pos:pos] = other[start : start + rng.randint(1, 512)]
        elif op == 7:
            del buf[pos:]
        else:
            quote = [i for i, b in enumerate(buf) if b == 0x22]
            if quote:  # replace a string's contents
                i = rng.choice(quote) + 1
                j = buf.find(b'"', i)
                if j > i:
                    buf[i:j] = json.dumps(rng.choice(INTERESTING_STRINGS))[1:-1].encode("utf-8", "surrogatepass")
    return bytes(buf)


# --------------------------------------------------------------------------- driver


def check_one(data: bytes, via_file: bool, folder: Path) -> str:
    """'accepted' or 'rejected'; any other exception propagates (a crash)."""
    try:
        if via_file:
            path = folder / "submission.json"
            path.write_bytes(data)
            sub = read_submission(path)
        else:
            sub = parse_submission(data, "fuzz.json")
    except SubmissionError as exc:
        message = str(exc)
        if "\n" in message or not message:
            raise AssertionError(f"SubmissionError message is not one line: {message[:200]!r}") from None
        return "rejected"
    # what is accepted must survive its own round trip unchanged
    again = parse_submission(to_json(sub).encode("utf-8"), "round-trip")
    if again != sub:
        raise AssertionError("an accepted submission changed when written and read again")
    return "accepted"


def fuzz(iterations: int, seed: int, *, file_every: int = 50, crash_dir: Path | None = None,
         progress_every: int = 0, out=sys.stdout) -> dict:
    rng = random.Random(seed)
    docs = seed_documents()
    seeds = [json.dumps(d, indent=rng.choice([None, 1])).encode() for d in docs]
    weights = [1.0] * (len(docs) - 1) + [0.03 * (len(docs) - 1)]  # the full-size seed: 3% of the picks

    def pick(items):
        return rng.choices(items, weights)[0]

    counts: Counter = Counter()
    kinds: Counter = Counter()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ragenv-fuzz-") as tmp:
        folder = Path(tmp)
        for i in range(iterations):
            mode = rng.random()
            if mode < 0.45:
                data, kind = mutate_structure(pick(docs), rng), "structure"
            elif mode < 0.9:
                data, kind = mutate_bytes(pick(seeds), rng, seeds), "bytes"
            elif mode < 0.95:
                data, kind = mutate_bytes(mutate_structure(pick(docs), rng), rng, seeds), "both"
            else:
                data, kind = json.dumps(random_json(rng), allow_nan=True).encode("utf-8", "surrogatepass"), "random"
            kinds[kind] += 1
            try:
                outcome = check_one(data, file_every > 0 and i % file_every == 0, folder)
            except Exception as exc:  # noqa: BLE001 - a crash is what we look for
                counts["crashed"] += 1
                crash_dir = Path(crash_dir or tempfile.mkdtemp(prefix="ragenv-fuzz-crash-"))
                crash_dir.mkdir(parents=True, exist_ok=True)
                case = crash_dir / f"crash-seed{seed}-iter{i}.json"
                case.write_bytes(data)
                print(f"CRASH at iteration {i} ({kind} mutation): {type(exc).__name__}: {str(exc)[:300]}", file=out)
                traceback.print_exc(file=out)
                print(f"input saved to {case}; reproduce with:\n  python -c \"from pathlib import Path; "
                      f"from ragenv.leaderboard.submission import parse_submission; "
                      f"parse_submission(Path('{case}').read_bytes())\"", file=out)
                break
            counts[outcome] += 1
            if progress_every and (i + 1) % progress_every == 0:
                rate = (i + 1) / (time.perf_counter() - start)
                print(f"{i + 1:,} inputs: {dict(counts)} ({rate:,.0f}/s)", file=out, flush=True)
    seconds = time.perf_counter() - start
    return {"iterations": sum(counts.values()), "accepted": counts["accepted"], "rejected": counts["rejected"],
            "crashed": counts["crashed"], "mutations": dict(kinds), "seed": seed, "seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--file-every", type=int, default=50, help="read every N-th input from a real file (0: never)")
    parser.add_argument("--crash-dir", type=Path, default=None, help="where a crashing input is saved")
    parser.add_argument("--progress-every", type=int, default=0)
    args = parser.parse_args(argv)
    result = fuzz(args.iterations, args.seed, file_every=args.file_every, crash_dir=args.crash_dir,
                  progress_every=args.progress_every)
    print(json.dumps(result))
    return 1 if result["crashed"] else 0


if __name__ == "__main__":
    sys.exit(main())
