"""Synthetic distractor passages, for measuring what a big corpus costs.

:func:`synthesize` writes ``n`` passages made of real text: each is sentences drawn from different
random passages of a base corpus, joined to about 100 words (80-120), with the title of the
first one plus ``(synthetic)`` and the id ``synthetic-000000123``. By default the base corpus's
own passages come first, unchanged, so its rows keep their numbers and its questions still
point at their gold passages; the synthetic ones follow.

What it is: a way to grow a corpus to any size (memory, disk, index build time, search latency)
with text whose words and lengths look like Wikipedia's. What it is not: a source of retrieval
difficulty. Recombined sentences are off-topic for every question, so they measure cost, not how
hard retrieval gets; do not read accuracy changes on such a corpus as realistic distractor effects.

Deterministic: passage ``i`` depends only on the base corpus (its fingerprint is recorded),
``seed`` and ``i`` (``random.Random(f"{seed}:{i}").random()``, the part of Python's generator
whose sequence is guaranteed across versions), so a seed always gives the same fingerprint and a
killed run resumes from its checkpoint like :func:`ragenv.corpus.ingest.ingest`.
"""
from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Protocol

from ragenv.corpus.ingest import CHUNK_BYTES, ROW_OVERHEAD, StoreWriter, check_disk_space
from ragenv.corpus.store import CorpusStore
from ragenv.data import Passage, normalize_ws
from ragenv.errors import DataError
from ragenv.progress import progress_bar

MIN_WORDS, MAX_WORDS = 80, 120
MAX_DRAWS = 32  # source passages tried per synthetic passage (ends the loop on a corpus of empty texts)
ID_FORMAT = "synthetic-{:09d}"
_SENTENCE_END = re.compile(r"[.!?][\"')\]]?(\s+)(?=[\"'(\[]?[A-Z0-9])")  # group 1: the gap between sentences
_WHOLE = re.compile(r"[\"'(\[]?[A-Z0-9].*[.!?][\"')\]]?$")


class PassageSource(Protocol):
    """What a base corpus must offer: a :class:`ragenv.data.Corpus` or a :class:`CorpusStore`."""

    name: str

    @property
    def fingerprint(self) -> str: ...

    def __len__(self) -> int: ...

    def __getitem__(self, row: int) -> Passage: ...


def sentences(text: str) -> list[str]:
    """``text`` cut after ``.``, ``!`` or ``?`` where a capital, digit or opening quote follows; the whole
    sentences among them (those that start and end like one) when there are any, as passages cut at a
    fixed word count (DPR's) begin and end mid-sentence."""
    pieces, start = [], 0
    for end in _SENTENCE_END.finditer(text):
        pieces.append(text[start:end.start(1)])
        start = end.end(1)
    pieces.append(text[start:])
    pieces = [s for s in pieces if s]
    whole = [s for s in pieces if _WHOLE.match(s)]
    return whole or pieces


def synthetic_passage(base: PassageSource, index: int, seed: int = 0) -> Passage:
    """Synthetic passage number ``index`` (see the module docstring)."""
    draw = random.Random(f"{seed}:{index}").random
    target = MIN_WORDS + int(draw() * (MAX_WORDS - MIN_WORDS + 1))
    words: list[str] = []
    title = ""
    for _ in range(MAX_DRAWS):
        if len(words) >= target:
            break
        source = base[int(draw() * len(base))]
        pieces = sentences(source.text)
        if not pieces:
            continue
        words += pieces[int(draw() * len(pieces))].split()
        title = title or source.title
    text = " ".join(words[:target + target // 4])  # one very long sentence is cut
    return Passage(ID_FORMAT.format(index), normalize_ws(f"{title} (synthetic)"), text)


def _mean_row_bytes(base: PassageSource) -> float:
    sample = [base[row] for row in range(min(len(base), 1000))]
    return sum(len(p.id) + len(p.title) + len(p.text) + 3 for p in sample) / max(1, len(sample))


def synthesize(base: PassageSource, n: int, out_dir: str | Path, seed: int = 0, *, with_base: bool = True,
               name: str | None = None, progress: bool = True, overwrite: bool = False,
               chunk_bytes: int = CHUNK_BYTES) -> CorpusStore:
    """Write a store at ``out_dir``: the base corpus's passages (``with_base``), then ``n`` synthetic ones.

    Streams passage by passage through the ingest writer (nothing of size ``n`` is held in memory);
    returns the store opened. Same base, ``n``, ``seed`` and ``with_base``: same fingerprint.
    """
    if n < 0 or seed < 0:
        raise DataError(f"--n and --seed must be 0 or more, got n={n}, seed={seed}")
    if len(base) == 0:
        raise DataError(f"the base corpus {base.name!r} holds no passages to draw sentences from")
    out_dir = Path(out_dir)
    name = name or out_dir.name
    base_rows = len(base) if with_base else 0
    total = base_rows + n
    per_row = _mean_row_bytes(base)
    check_disk_space(out_dir.parent, int((base_rows * per_row + n * max(per_row, 800) + total * ROW_OVERHEAD) * 1.1))
    key = {"kind": "synth", "name": name, "base": base.name, "base_fingerprint": base.fingerprint,
           "base_count": len(base), "n": n, "seed": seed, "with_base": with_base}
    source = {k: v for k, v in key.items() if k != "name"}
    labels = [f"{base.name} row {{}}", "synthetic passage {}"]
    what = f"the synthesis of {n} passages" + (f" after {base.name}" if with_base else "")
    with StoreWriter(out_dir, name, key, labels, what, overwrite=overwrite, chunk_bytes=chunk_bytes) as writer, \
            progress_bar(disable=not progress) as bar:
        start = writer.state["next"] if writer.state else 0
        if writer.resumed_rows:
            bar.console.print(f"resuming {name}: {writer.resumed_rows:,} passages were already written")
        task = bar.add_task(f"synth {name} (passages)", total=total, completed=start)
        for position in range(start, total):
            if position < base_rows:
                passage, origin, line = base[position], 0, position
            else:
                passage, origin, line = synthetic_passage(base, position - base_rows, seed), 1, position - base_rows
            writer.add(passage.id, passage.title, passage.text, origin, line)
            if writer.due:
                writer.flush({"next": position + 1})
                bar.update(task, completed=position + 1)
        bar.update(task, completed=total)
        return writer.finish({"next": total}, source)

