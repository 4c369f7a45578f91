"""BM25 over store-backed corpora (issue #22): pyserini's index streamed from the store, prebuilt and
local-folder Lucene indexes mapped to corpus rows, bm25s's size limit and memory-mapped loading,
and the checks on ``first_stage`` names. Small stores built in temporary folders."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ragenv.corpus.ingest import ingest
from ragenv.corpus.synth import synthesize
from ragenv.data import Corpus, Passage
from ragenv.errors import ConfigError, DataError
from ragenv.index import bm25, check_index_name, make_index
from ragenv.index.bm25 import BM25Config, Bm25sIndex, PyseriniIndex, PyseriniPrebuiltIndex


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A private index cache per test, so every index here is built by the test itself."""
    monkeypatch.setenv("RAGENV_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def base(nq) -> Corpus:
    """300 real wiki-mini passages, in memory."""
    return Corpus("scale-base", nq.corpus.passages[3000:3300])


@pytest.fixture(scope="module")
def store(base, tmp_path_factory) -> Corpus:
    """A store of the 300 passages and 100 synthetic ones made of their sentences (400 rows)."""
    folder = tmp_path_factory.mktemp("stores") / "scale-store"
    return Corpus.from_store(synthesize(base, 100, folder, progress=False))


@pytest.fixture(scope="module")
def renamed(store, tmp_path_factory) -> Corpus:
    """The store's passages under ids ``p0000``, ``p0001``, ... (a store ingested from JSONL): ids that sort as
    the rows do, so a Lucene index keyed by id breaks score ties as ragenv's own (keyed by row) does."""
    folder = tmp_path_factory.mktemp("renamed")
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for row in range(len(store)):
            p = store[row]
            handle.write(json.dumps({"id": f"p{row:04d}", "title": p.title, "text": p.text}) + "\n")
    return Corpus.from_store(ingest(folder / "corpus.jsonl", folder / "renamed", progress=False))


@pytest.fixture(scope="module")
def queries(nq) -> list[str]:
    return [q.question for q in nq.split("test")[:60]]


def in_memory(corpus: Corpus, name: str) -> Corpus:
    """The same passages as an ordinary in-memory corpus (another name, so another index folder)."""
    return Corpus(name, [corpus[row] for row in range(len(corpus))])


def one_line(exc: pytest.ExceptionInfo, *needles: str) -> None:
    message = str(exc.value)
    assert "\n" not in message and message, message
    for needle in needles:
        assert needle in message, message


# ------------------------------------------------------------------------------- pyserini streamed from the store


def test_streamed_lucene_build_equals_the_in_memory_build_and_today_s(store, queries, forbid_materialising,
                                                                       monkeypatch, tmp_path):
    monkeypatch.setattr(bm25, "_SHARD_PASSAGES", 60)  # 7 shards of the 400 rows, so boundaries are crossed
    written: list[int] = []
    write_shards = bm25._write_shards
    monkeypatch.setattr(bm25, "_write_shards", lambda c, f, n: (written.append(n), write_shards(c, f, n)))
    streamed = PyseriniIndex(store)
    assert written == [7]
    assert streamed._searcher.num_docs == len(store)
    assert not [p for p in streamed.path.parent.iterdir() if ".shards" in p.name], "the shards were not deleted"

    memory = PyseriniIndex(in_memory(store, "scale-memory"))
    assert memory.path != streamed.path
    rows, scores = streamed.search(queries, 20)
    expected_rows, expected_scores = memory.search(queries, 20)
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_array_equal(scores, expected_scores)
    assert (rows[:, 0] >= 0).all()

    # The build before streaming: the passages added one batch at a time through pyserini's LuceneIndexer.
    lucene = bm25._import_pyserini()
    width = len(str(len(store) - 1))
    indexer = lucene.LuceneIndexer(str(tmp_path / "reference"), args=["-index", str(tmp_path / "reference")], threads=1)
    indexer.add_batch_dict([{"id": f"{row:0{width}d}", "contents": store[row].contents} for row in range(len(store))])
    indexer.close()
    reference = lucene.LuceneSearcher(str(tmp_path / "reference"))
    reference.set_bm25(0.9, 0.4)
    for i, query in enumerate(queries):
        hits = reference.search(query, k=20)
        assert [int(h.docid) for h in hits] == rows[i, : len(hits)].tolist()
        np.testing.assert_array_equal(np.array([h.score for h in hits], dtype=np.float32), scores[i, : len(hits)])


def test_a_failed_lucene_build_leaves_no_index_and_no_shards(store, monkeypatch):
    def fail(*args):
        raise RuntimeError("indexer died")

    monkeypatch.setattr(bm25, "_index_json_collection", fail)
    with pytest.raises(RuntimeError, match="indexer died"):
        PyseriniIndex(store)
    indexes = bm25.index_path("pyserini", {}, store).parent
    assert not [p for p in indexes.iterdir() if p.suffix != ".lock"], list(indexes.iterdir())


@pytest.mark.unit
def test_a_lucene_build_without_the_disk_space_is_refused_before_writing(store, monkeypatch, tmp_path):
    monkeypatch.setattr(bm25.shutil, "disk_usage", lambda path: SimpleNamespace(free=1000))
    monkeypatch.setattr(bm25, "_write_shards", lambda *a: pytest.fail("shards written without the disk space"))
    (tmp_path / "out").mkdir()
    with pytest.raises(DataError) as exc:
        bm25._build_lucene_index(store, BM25Config(), tmp_path / "out")
    one_line(exc, "scale-store", "GiB free", "RAGENV_CACHE")
    assert list(tmp_path.iterdir()) == [tmp_path / "out"] and not list((tmp_path / "out").iterdir())


# ------------------------------------------------------------------------------- Lucene indexes ragenv did not build


def lucene_folder(passages: list[Passage], folder: Path) -> Path:
    """A Lucene index whose docids are the passage ids, as DPR's prebuilt wikipedia-dpr-100w is made."""
    (folder / "input").mkdir(parents=True)
    with open(folder / "input" / "docs.jsonl", "w", encoding="utf-8") as handle:
        for p in passages:
            handle.write(json.dumps({"id": p.id, "contents": p.contents}) + "\n")
    bm25._index_json_collection(folder / "input", folder / "index", BM25Config(), 1, len(passages), "test")
    return folder / "index"


def test_a_local_folder_index_maps_docids_to_rows(renamed, queries, tmp_path):
    passages = [renamed[row] for row in range(len(renamed))]
    folder = lucene_folder(passages, tmp_path / "same")
    index = make_index(f"pyserini:path:{folder}", renamed)
    assert isinstance(index, PyseriniPrebuiltIndex) and index.path == folder
    rows, scores = index.search(queries, 20)
    expected_rows, expected_scores = PyseriniIndex(renamed).search(queries, 20)
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_array_equal(scores, expected_scores)
    assert index.unmapped == 0 and (rows[:, 0] >= 0).all()

    # Docids the corpus lacks are dropped, counted, and the list is padded at its end.
    strangers = [Passage(f"elsewhere-{i}", "Zyzzyva", f"zyzzyva quokka number {i}") for i in range(3)]
    mixed = make_index(f"pyserini:path:{lucene_folder(passages[:50] + strangers, tmp_path / 'mixed')}", renamed)
    rows, scores = mixed.search(["zyzzyva quokka", f"zyzzyva {passages[0].title}"], 60)  # every match
    assert (rows[0] == -1).all() and (scores[0] == 0).all()
    found = rows[1][rows[1] >= 0]
    assert len(found) > 0 and (rows[1][len(found):] == -1).all() and (scores[1][len(found):] == 0).all()
    assert 0 in found.tolist() and (found < 50).all()
    assert mixed.unmapped == 6


def test_a_prebuilt_name_opens_pyserini_s_cached_copy_and_maps_docids(renamed, queries, tmp_path, monkeypatch):
    """Offline: a fake entry in pyserini's list of prebuilt indexes, its unpacked folder in pyserini's cache."""
    folder = lucene_folder([renamed[row] for row in range(len(renamed))], tmp_path / "built")
    bm25._import_pyserini()
    import pyserini.util
    from pyserini.index.lucene import LuceneIndexReader
    from pyserini.prebuilt_index_info import TF_INDEX_INFO

    stats = LuceneIndexReader(str(folder)).stats()
    entry = {"filename": "lucene-index.ragenv-test.tar.gz", "md5": "0f0f", "urls": ["https://example.invalid/x.tar.gz"],
             "size compressed (bytes)": 1000, **{k: stats[k] for k in ("documents", "unique_terms", "total_terms")}}
    monkeypatch.setitem(TF_INDEX_INFO, "ragenv-test", entry)
    monkeypatch.setenv("PYSERINI_CACHE", str(tmp_path / "pyserini"))
    cached = tmp_path / "pyserini" / "indexes" / "lucene-index.ragenv-test.0f0f"
    shutil.copytree(folder, cached)

    index = make_index("pyserini:prebuilt:ragenv-test", renamed)
    assert index.path == cached
    for got, expected in zip(index.search(queries, 20), PyseriniIndex(renamed).search(queries, 20)):
        np.testing.assert_array_equal(got, expected)

    with pytest.raises(ConfigError) as exc:
        make_index("pyserini:prebuilt:no-such-index", renamed)
    one_line(exc, "no-such-index", "wikipedia-dpr-100w")

    def offline(*args, **kwargs):
        from urllib.error import URLError

        raise URLError("no network")

    monkeypatch.setattr(pyserini.util, "download_url", offline)
    shutil.rmtree(cached)
    with pytest.raises(ConfigError) as exc:
        make_index("pyserini:prebuilt:ragenv-test", renamed)
    one_line(exc, "cannot download", "ragenv-test", "pyserini:path:FOLDER")


# ------------------------------------------------------------------------------- bm25s at scale


@pytest.mark.unit
def test_bm25s_refuses_a_corpus_over_its_limit_in_one_line(store, monkeypatch):
    monkeypatch.setattr(bm25, "BM25S_MAX_PASSAGES", len(store) - 1)
    monkeypatch.setattr(bm25, "_build_bm25s_index", lambda *a: pytest.fail("built past the limit"))
    with pytest.raises(ConfigError) as exc:
        make_index("bm25s", store)
    one_line(exc, "400 passages", "399", "first_stage='pyserini'")


@pytest.mark.unit
def test_bm25s_streams_a_store_and_maps_its_index(store, queries, forbid_materialising):
    streamed = Bm25sIndex(store)
    assert isinstance(streamed.model.scores["data"], np.memmap), "a store-backed corpus's index is memory-mapped"
    memory = Bm25sIndex(in_memory(store, "scale-memory"))
    assert not isinstance(memory.model.scores["data"], np.memmap)
    for got, expected in zip(streamed.search(queries, 20), memory.search(queries, 20)):
        np.testing.assert_array_equal(got, expected)


# ------------------------------------------------------------------------------- first_stage names


@pytest.mark.unit
@pytest.mark.parametrize("name, needles", [
    ("BM25S", ["'bm25s'", "pyserini:prebuilt:NAME"]),
    ("", ["first_stage must be one of"]),
    (None, ["got None"]),
    (3, ["got 3"]),
    ("pyserini:", ["got 'pyserini:'"]),
    ("pyserini:other:x", ["got 'pyserini:other:x'"]),
    ("pyserini:prebuilt:", ["names no prebuilt index", "wikipedia-dpr-100w"]),
    ("pyserini:prebuilt:../indexes", ["names no prebuilt index"]),
    ("pyserini:prebuilt:two words", ["names no prebuilt index"]),
    ("pyserini:path:", ["no Lucene index"]),
    ("pyserini:path:/no/such/folder", ["no Lucene index", "/no/such/folder"]),
])
def test_bad_first_stage_names_are_one_line_config_errors(name, needles, store):
    with pytest.raises(ConfigError) as exc:
        check_index_name(name)
    one_line(exc, *needles)
    with pytest.raises(ConfigError):
        make_index(name, store)


@pytest.mark.unit
def test_first_stage_names_that_open(tmp_path):
    for name in ("bm25s", "pyserini", "dense", "pyserini:prebuilt:wikipedia-dpr-100w", "pyserini:prebuilt:beir-v1.0.0"):
        assert check_index_name(name) == name
    with pytest.raises(ConfigError, match="no Lucene index"):
        check_index_name(f"pyserini:path:{tmp_path}")  # a folder, but no index in it
    (tmp_path / "segments_1").write_bytes(b"")
    assert check_index_name(f"pyserini:path:{tmp_path}") == f"pyserini:path:{tmp_path}"
