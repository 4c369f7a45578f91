"""The on-disk corpus store (ragenv.corpus): formats, fingerprints, id lookups, cheap opening, resuming
after SIGKILL, bad input, synthetic distractors and the ``ragenv corpus`` commands. Model-free and small."""
from __future__ import annotations

import csv
import gzip
import json
import pickle
import re
import signal
import subprocess
import sys
import tracemalloc
from collections import namedtuple
from pathlib import Path

import pytest

import ragenv.corpus.ingest as ingest_module
import ragenv.corpus.store as store_module
from ragenv.corpus import CorpusStore
from ragenv.corpus.ingest import ingest
from ragenv.corpus.synth import synthesize
from ragenv.data import Corpus, Passage, normalize_ws
from ragenv.errors import DataError
from tests.support import REPO, assert_one_line_error, run_cli

pytestmark = pytest.mark.unit  # model-free: the fast tier

WIKI_MINI_FINGERPRINT = "444b60b3e180199bc37d46c569cfb5ee2875172393b3de725ea326c7c783836c"


@pytest.fixture(scope="module")
def passages(nq) -> list[Passage]:
    """300 real wiki-mini passages plus edge cases: quotes, non-ASCII, an empty title, an integer-like id."""
    real = [p for p in nq.corpus.passages[1000:1400] if not p.title.startswith('"') and not p.title.endswith('"')]
    return real[:296] + [Passage("q-1", 'The "Hi" song', 'He said "hello" and ""left"" — quickly.'),
                         Passage("ü-2", "Zürich", "Zürich ist eine Stadt. 東京 is a city."),
                         Passage("e-3", "", "A passage without a title."),
                         Passage("17", "Seventeen", "An id that looks like a number.")]


def write_jsonl(path: Path, passages: list[Passage]) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as handle:
        for p in passages:
            handle.write(json.dumps({"id": p.id, "title": p.title, "text": p.text}, ensure_ascii=False) + "\n")
    return path


def write_tsv(path: Path, passages: list[Passage]) -> Path:
    """DPR's psgs_w100.tsv layout: a header, then id, text, title (fields with quotes get CSV-quoted)."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["id", "text", "title"])
        for p in passages:
            writer.writerow([p.id, p.text, p.title])
    return path


def write_flashrag(path: Path, passages: list[Passage]) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for p in passages:
            handle.write(json.dumps({"id": p.id, "contents": f'"{p.title}"\n{p.text}'}) + "\n")
    return path


WRITERS = {"jsonl": (write_jsonl, "corpus.jsonl"), "jsonl.gz": (write_jsonl, "corpus.jsonl.gz"),
           "dpr-tsv": (write_tsv, "psgs.tsv"), "flashrag": (write_flashrag, "flashrag.jsonl")}


def assert_no_store(out: Path) -> None:
    assert not out.exists(), "a failed ingest left a store under its final name"
    assert not out.with_name(out.name + ".partial").exists(), "bad input left its partial folder behind"


# ------------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("kind", list(WRITERS))
def test_each_format_round_trips_with_the_corpus_fingerprint(tmp_path, passages, kind):
    write, filename = WRITERS[kind]
    source = write(tmp_path / filename, passages)
    store = ingest(source, tmp_path / "store", "store", progress=False, chunk_bytes=20_000)  # several chunks
    expected = Corpus("expected", passages)
    assert len(store) == len(passages)
    assert [store[row] for row in range(len(store))] == passages
    assert store.fingerprint == expected.fingerprint == store.verify()
    assert store.manifest["source"]["files"][0]["format"] == kind.removesuffix(".gz")
    assert store[-1] == passages[-1]
    with pytest.raises(IndexError):
        store[len(passages)]
    backed = Corpus.from_store(store)
    assert backed.fingerprint == expected.fingerprint and backed.name == "store"
    assert backed.passages == passages and backed.contents == expected.contents


def test_the_whitespace_is_normalised_as_the_loaders_do(tmp_path):
    source = tmp_path / "messy.jsonl"
    source.write_text(json.dumps({"id": 5, "title": "  A\ttitle ", "text": "two\n\nlines\u00a0here "}) + "\n")
    assert ingest(source, tmp_path / "s", progress=False)[0] == Passage("5", "A title", "two lines here")


def test_normalize_ws_is_the_regex_it_replaced():
    """``" ".join(text.split())`` (fast) equals ``re.sub(r"\\s+", " ", text).strip()`` (the old definition)."""
    assert all(bool(re.fullmatch(r"\s", chr(c))) == chr(c).isspace() for c in range(0x110000))
    for text in ["", "  ", "a", " a\u00a0\tb\n\nc ", "x\x1cy\x1fz\u200bw", "\u3000lead and trail\x85"]:
        assert normalize_ws(text) == re.sub(r"\s+", " ", text).strip()


def test_several_sources_are_one_store_in_order(tmp_path, passages):
    first = write_tsv(tmp_path / "a.tsv", passages[:100])
    second = write_flashrag(tmp_path / "b.jsonl", passages[100:])
    store = ingest([first, second], tmp_path / "both", progress=False)
    assert store.fingerprint == Corpus("x", passages).fingerprint
    assert [f["format"] for f in store.manifest["source"]["files"]] == ["dpr-tsv", "flashrag"]


def test_a_store_of_wiki_mini_has_wiki_mini_s_fingerprint(tmp_path, nq):
    assert nq.corpus.fingerprint == WIKI_MINI_FINGERPRINT  # the loaders' refactor changed no passage
    store = synthesize(nq.corpus, 0, tmp_path / "wiki-mini", progress=False)
    assert len(store) == len(nq.corpus) and store.fingerprint == WIKI_MINI_FINGERPRINT == store.verify()


# ------------------------------------------------------------------------------------------ id lookups


def test_id_lookups_find_every_row_and_no_missing_id(tmp_path, passages):
    store = ingest(write_jsonl(tmp_path / "c.jsonl", passages), tmp_path / "s", progress=False)
    assert [store.find(p.id) for p in passages] == list(range(len(passages)))
    assert store.find("no-such-id") is None and "no-such-id" not in store and passages[7].id in store
    with pytest.raises(KeyError):
        store.row("no-such-id")
    backed = Corpus.from_store(store)
    assert backed.row(passages[42].id) == 42 and passages[42].id in backed and "17 " not in backed
    with pytest.raises(KeyError):
        backed.row("p0000000000000000")
    assert backed._passages is None  # lookups materialised nothing


def test_id_lookups_survive_hash_collisions(tmp_path, passages, monkeypatch):
    """Every id hashing alike: the sorted map holds one long run, and the id comparison still decides."""
    monkeypatch.setattr(store_module, "id_hash", lambda pid: 7)
    monkeypatch.setattr(ingest_module, "id_hash_bytes", lambda pid: (7).to_bytes(8, "little"))
    store = ingest(write_jsonl(tmp_path / "c.jsonl", passages), tmp_path / "s", progress=False)
    assert [store.find(p.id) for p in passages] == list(range(len(passages)))
    assert store.find("no-such-id") is None


# ------------------------------------------------------------------------------------------ opening


def _anonymous_rss_kib() -> int:
    """The process's private resident memory (RssAnon); the store's mapped pages are page cache (RssFile),
    shared and reclaimable, and the kernel may map them 2 MiB at a time."""
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("RssAnon:"))


def test_opening_reads_no_passages_into_memory(tmp_path, nq):
    store_dir = tmp_path / "wiki-mini"
    synthesize(nq.corpus, 0, store_dir, progress=False).close()  # ~10 MiB of passages
    rss = _anonymous_rss_kib()
    tracemalloc.start()
    store = CorpusStore.open(store_dir)
    corpus = Corpus.from_store(store)
    opened_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    found = [corpus.row(corpus[row].id) for row in range(0, len(corpus), 997)]
    lookup_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert found == list(range(0, len(corpus), 997))
    assert opened_peak < 64 * 1024, opened_peak  # the manifest, not 16,436 passages (~10 MiB)
    assert lookup_peak < 256 * 1024, lookup_peak
    assert _anonymous_rss_kib() - rss < 2048  # no copy of the store in private memory
    assert corpus._passages is None and corpus._row is None and len(corpus) == len(nq.corpus)
    clone = pickle.loads(pickle.dumps(corpus))  # workers get the path, not the data
    assert len(pickle.dumps(corpus)) < 10_000 and clone[123] == nq.corpus[123]


def test_opening_refuses_a_damaged_or_missing_store(tmp_path, passages):
    with pytest.raises(DataError, match="no corpus store"):
        CorpusStore.open(tmp_path / "absent")
    store = ingest(write_jsonl(tmp_path / "c.jsonl", passages), tmp_path / "s", progress=False)
    store.close()
    with open(tmp_path / "s" / "passages.bin", "ab") as handle:
        handle.write(b"x")
    with pytest.raises(DataError, match="corrupt corpus store .*passages.bin"):
        CorpusStore.open(tmp_path / "s")


def test_an_existing_store_is_kept_unless_overwrite(tmp_path, passages):
    source = write_jsonl(tmp_path / "c.jsonl", passages)
    ingest(source, tmp_path / "s", progress=False)
    with pytest.raises(DataError, match="already holds a corpus store"):
        ingest(source, tmp_path / "s", progress=False)
    assert len(CorpusStore.open(tmp_path / "s")) == len(passages)
    write_jsonl(source, passages[:10])
    assert len(ingest(source, tmp_path / "s", progress=False, overwrite=True)) == 10
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("not a store")
    with pytest.raises(DataError, match="exists and is not a corpus store"):
        ingest(source, tmp_path / "mine", progress=False, overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "not a store"


# ------------------------------------------------------------------------------------------ SIGKILL and resume

KILLER = """
import os, signal, sys
import ragenv.corpus.ingest as module

source, out, where = sys.argv[1:]
saves = []
save = module.StoreWriter._save_checkpoint

def save_or_die(self, state):
    saves.append(state)
    if where == "chunk" and len(saves) == 3:  # chunk 3 is on disk, its checkpoint is not
        with open(self.partial / "passages.bin", "ab") as handle:
            handle.write(b"torn half of a chunk")
        os.kill(os.getpid(), signal.SIGKILL)
    save(self, state)

def die(self, *args):
    os.kill(os.getpid(), signal.SIGKILL)

module.StoreWriter._save_checkpoint = save_or_die
if where == "finish":
    module.StoreWriter._check_duplicates = die
module.ingest(source, out, progress=False, chunk_bytes=16_000)
"""


@pytest.mark.parametrize("where", ["chunk", "finish"])
def test_a_sigkilled_ingest_resumes_to_the_same_fingerprint(tmp_path, passages, monkeypatch, where):
    source = write_tsv(tmp_path / "psgs.tsv", passages)
    out = tmp_path / "killed"
    killed = subprocess.run([sys.executable, "-c", KILLER, str(source), str(out), where], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    partial = out.with_name("killed.partial")
    assert not out.exists() and (partial / "checkpoint.json").is_file()
    checkpoint = json.loads((partial / "checkpoint.json").read_text())
    assert 0 < checkpoint["rows"] <= len(passages)

    added = []
    add = ingest_module.StoreWriter.add
    monkeypatch.setattr(ingest_module.StoreWriter, "add", lambda self, *row: (added.append(row[0]), add(self, *row)))
    resumed = ingest(source, out, progress=False)  # the same arguments (the chunk size is no part of them)
    assert len(added) == len(passages) - checkpoint["rows"]  # resumed, not restarted
    assert resumed.fingerprint == Corpus("x", passages).fingerprint == resumed.verify()
    assert [resumed[row] for row in range(len(resumed))] == passages and not partial.exists()
    uninterrupted = ingest(source, tmp_path / "whole", progress=False)
    assert uninterrupted.fingerprint == resumed.fingerprint
    assert (out / "ids.hash").read_bytes() == (tmp_path / "whole" / "ids.hash").read_bytes()


def test_a_partial_store_of_other_sources_is_not_resumed(tmp_path, passages, monkeypatch):
    source = write_jsonl(tmp_path / "c.jsonl", passages)
    out = tmp_path / "s"

    def interrupt(self, state):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(ingest_module.StoreWriter, "_save_checkpoint", interrupt)
        with pytest.raises(KeyboardInterrupt):
            ingest(source, out, progress=False, chunk_bytes=16_000)
    assert out.with_name("s.partial").is_dir() and not out.exists()  # kept for a rerun
    write_jsonl(source, passages[:50])  # the source changed: start over
    assert ingest(source, out, progress=False).fingerprint == Corpus("x", passages[:50]).fingerprint


# ------------------------------------------------------------------------------------------ bad input

BAD = {
    "tsv-columns": ("bad.tsv", "id\ttext\ttitle\n1\tgood text\tGood\n2\tonly two columns\n",
                    ("bad.tsv:3", "expected 3 tab-separated columns")),
    "tsv-quote": ("bad.tsv", 'id\ttext\ttitle\n1\t"never closed\tTitle\n', ("bad.tsv:2", "closing quote")),
    "tsv-empty-id": ("bad.tsv", "id\ttext\ttitle\n\ttext\tTitle\n", ("bad.tsv:2", "empty passage id")),
    "json": ("bad.jsonl", '{"id": "a", "text": "fine"}\n{"id": "b", "text": \n', ("bad.jsonl:2", "not valid JSON")),
    "json-fields": ("bad.jsonl", '{"id": "a", "text": "fine"}\n\n{"id": "c", "title": "no text"}\n',
                    ("bad.jsonl:3", "'id' and 'text'")),
    "json-array": ("bad.jsonl", '["a", "b"]\n', ("bad.jsonl:1", "expected a JSON object")),
    "flashrag-fields": ("bad.jsonl", '{"id": "0", "contents": "\\"T\\"\\ntext"}\n{"contents": "\\"T\\"\\nmore"}\n',
                        ("bad.jsonl:2", "FlashRAG passage needs fields 'id'")),
    "utf8": ("bad.jsonl", b'{"id": "a", "text": "fine"}\n{"id": "b", "text": "\xff"}\n', ("bad.jsonl:2", "UTF-8")),
    "duplicate": ("bad.jsonl", "".join(json.dumps({"id": i, "text": f"passage {n}"}) + "\n"
                                       for n, i in enumerate(["a", "b", "c", "b", "a"])),
                  ("bad.jsonl:4", "duplicate passage id 'b'", "first at", "bad.jsonl:2", "1 more repeated ids")),
    "empty": ("bad.tsv", "id\ttext\ttitle\n\n", ("bad.tsv holds no passages",)),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_naming_file_and_line_and_leaves_no_store(tmp_path, case):
    filename, content, needles = BAD[case]
    source = tmp_path / filename
    source.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "store"
    with pytest.raises(DataError) as caught:
        ingest(source, out, progress=False, chunk_bytes=32)  # tiny chunks: duplicates span several
    message = str(caught.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    assert_no_store(out)


def test_a_duplicate_across_files_names_both(tmp_path, passages):
    first = write_jsonl(tmp_path / "a.jsonl", passages[:5])
    second = write_tsv(tmp_path / "b.tsv", passages[5:8] + [passages[1]])
    with pytest.raises(DataError, match=rf"b.tsv:5: duplicate passage id '{passages[1].id}' \(first at .*a.jsonl:2\)"):
        ingest([first, second], tmp_path / "s", progress=False)
    assert_no_store(tmp_path / "s")


def test_too_little_disk_space_is_refused_before_anything_is_written(tmp_path, passages, monkeypatch):
    source = write_jsonl(tmp_path / "c.jsonl", passages)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(ingest_module.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 5000, 5000))
    with pytest.raises(DataError, match=r"not enough disk space .* needs about 0\.00 GiB, 0\.00 GiB free"):
        ingest(source, tmp_path / "s", progress=False)
    assert_no_store(tmp_path / "s")
    with pytest.raises(DataError, match="not enough disk space"):
        synthesize(Corpus("base", passages), 1000, tmp_path / "syn", progress=False)
    assert_no_store(tmp_path / "syn")


def test_missing_sources_and_unknown_formats(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        ingest(tmp_path / "absent.tsv", tmp_path / "s", progress=False)
    (tmp_path / "c.txt").write_text("1\ttext\ttitle\n")
    with pytest.raises(DataError, match="cannot tell the format .* pass --format"):
        ingest(tmp_path / "c.txt", tmp_path / "s", progress=False)
    assert len(ingest(tmp_path / "c.txt", tmp_path / "s", fmt="dpr-tsv", progress=False)) == 1


# ------------------------------------------------------------------------------------------ synthetic distractors


def test_synthesis_is_deterministic_and_keeps_the_base_rows(tmp_path, passages):
    base = Corpus("base", passages)
    one = synthesize(base, 200, tmp_path / "one", seed=0, progress=False, chunk_bytes=10_000)
    two = synthesize(base, 200, tmp_path / "two", seed=0, progress=False)
    other = synthesize(base, 200, tmp_path / "other", seed=1, progress=False)
    assert one.fingerprint == two.fingerprint != other.fingerprint
    assert len(one) == len(base) + 200
    assert [one[row] for row in range(len(base))] == passages  # base rows keep their numbers
    made = [one[row] for row in range(len(base), len(one))]
    assert [p.id for p in made] == [f"synthetic-{i:09d}" for i in range(200)]
    assert all(p.title.endswith("(synthetic)") for p in made)
    assert all(60 <= len(p.text.split()) <= 150 for p in made)  # about 100 words
    assert len({p.text for p in made}) == 200
    words = {w for p in passages for w in p.text.split()}
    assert all(set(p.text.split()) <= words for p in made)  # real text, recombined
    assert one.fingerprint == Corpus("x", passages + made).fingerprint
    from_store = synthesize(CorpusStore.open(tmp_path / "one"), 50, tmp_path / "from-store", seed=3,
                            with_base=False, progress=False)
    from_corpus = synthesize(Corpus.from_store(tmp_path / "one"), 50, tmp_path / "from-corpus", seed=3,
                             with_base=False, progress=False)
    assert len(from_store) == 50 and from_store.fingerprint == from_corpus.fingerprint


def test_an_interrupted_synthesis_resumes_to_the_same_fingerprint(tmp_path, passages, monkeypatch):
    base = Corpus("base", passages)
    saves = []
    save = ingest_module.StoreWriter._save_checkpoint

    def save_then_stop(self, state):
        save(self, state)
        saves.append(state)
        if state["next"] > len(base) + 50:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(ingest_module.StoreWriter, "_save_checkpoint", save_then_stop)
        with pytest.raises(KeyboardInterrupt):
            synthesize(base, 300, tmp_path / "s", seed=5, progress=False, chunk_bytes=20_000)
    assert len(base) + 50 < saves[-1]["next"] < len(base) + 300  # stopped among the synthetic passages
    resumed = synthesize(base, 300, tmp_path / "s", seed=5, progress=False)
    assert resumed.fingerprint == synthesize(base, 300, tmp_path / "whole", seed=5, progress=False).fingerprint


def test_synthesis_refuses_a_colliding_id(tmp_path, passages):
    base = Corpus("base", passages + [Passage("synthetic-000000002", "T", "A text. Another sentence here.")])
    with pytest.raises(DataError, match=r"synthetic passage 2: duplicate passage id 'synthetic-000000002' "
                                        r"\(first at base row 300\)"):
        synthesize(base, 5, tmp_path / "s", progress=False)
    assert_no_store(tmp_path / "s")


# ------------------------------------------------------------------------------------------ CLI


def test_cli_ingest_info_synth(tmp_path, passages):
    source = write_tsv(tmp_path / "psgs.tsv", passages)
    env = {"RAGENV_CACHE": str(tmp_path / "cache"), "COLUMNS": "200"}
    made = run_cli("corpus", "ingest", str(source), "--name", "small", env=env)
    assert made.returncode == 0, made.stderr
    fingerprint = Corpus("x", passages).fingerprint
    assert fingerprint in made.stdout and (tmp_path / "cache" / "corpora" / "small" / "manifest.json").is_file()
    info = run_cli("corpus", "info", "small", "--verify", env=env)
    assert info.returncode == 0, info.stderr
    assert f"{len(passages):,} passages" in info.stdout and fingerprint in info.stdout and "verified" in info.stdout
    synth = run_cli("corpus", "synth", "--base", "small", "--n", "40", "--name", "small-40", "--out",
                    str(tmp_path / "elsewhere"), env=env)
    assert synth.returncode == 0, synth.stderr
    assert len(CorpusStore.open(tmp_path / "elsewhere" / "small-40")) == len(passages) + 40
    assert_one_line_error(run_cli("corpus", "ingest", str(source), "--name", "small", env=env),
                          "already holds a corpus store", "--overwrite")


def test_cli_errors_are_one_line(tmp_path):
    env = {"RAGENV_CACHE": str(tmp_path / "cache"), "COLUMNS": "200"}
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\ttext\ttitle\n1\tfine\tT\n2\tbroken\n")
    assert_one_line_error(run_cli("corpus", "ingest", str(bad), "--name", "bad", env=env), "bad.tsv:3", "columns")
    assert not (tmp_path / "cache" / "corpora" / "bad").exists()
    assert_one_line_error(run_cli("corpus", "info", "nothing", env=env), "no corpus store", "ragenv corpus ingest")
    assert_one_line_error(run_cli("corpus", "synth", "--base", "nothing", "--n", "5", "--name", "x", env=env),
                          "no corpus store")
    assert_one_line_error(run_cli("corpus", "ingest", str(bad), "--name", "../up", env=env), "--name")
