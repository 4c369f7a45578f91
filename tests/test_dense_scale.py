"""Dense retrieval at scale (issue #22 item 4): the sharded, resumable embedding pass (the one-pass bytes, read by
row from a corpus store), its Ray fan-out, FAISS search (flat = exact numpy; IVF-PQ and HNSW recall) and the
one-line errors of bad options. Small real corpora: 300 wiki-mini passages cut to their first 25 words."""
from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest

from ragenv.corpus.ingest import ingest
from ragenv.data import Corpus, Passage
from ragenv.encoder import Encoder
from ragenv.errors import ConfigError
from ragenv.index import check_index_name, make_index
from ragenv.index.dense import DenseIndex, EmbeddingPass, encoding_order
from tests.support import assert_one_line_error, run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def passages(nq) -> list[Passage]:
    """300 real passages cut to 25 words: many share a character length, so batch boundaries cut through ties."""
    return [Passage(p.id, p.title, " ".join(p.text.split()[:25])) for p in nq.corpus.passages[3000:3300]]


@pytest.fixture(scope="module")
def store(passages, tmp_path_factory):
    folder = tmp_path_factory.mktemp("dense-scale")
    with open(folder / "corpus.jsonl", "w") as handle:
        for p in passages:
            handle.write(json.dumps({"id": p.id, "title": p.title, "text": p.text}) + "\n")
    return ingest(folder / "corpus.jsonl", folder / "store", "small-store", progress=False)


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder()


@pytest.fixture(scope="module")
def one_pass(passages, encoder) -> np.ndarray:
    """What DenseIndex stored before shards: ``encoder.encode(corpus.contents)`` in one call, in memory."""
    return encoder.encode(Corpus("small", passages).contents, progress=False)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private RAGENV_CACHE per test, so every test builds its own index."""
    monkeypatch.setenv("RAGENV_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def no_materialising(monkeypatch):
    """A store-backed build that reads ``Corpus.contents`` or ``Corpus.passages`` (the whole corpus) fails."""
    def refuse(self):
        raise AssertionError("the store-backed embedding pass materialised the whole corpus")

    monkeypatch.setattr(Corpus, "contents", property(refuse))
    monkeypatch.setattr(Corpus, "passages", property(refuse))


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


# --------------------------------------------------------------------------- the sharded pass


def test_sharded_store_pass_is_the_one_pass_bit_for_bit(store, encoder, one_pass, cache, no_materialising):
    index = DenseIndex(Corpus.from_store(store), encoder, shard_rows=128, progress=False)  # 3 shards, the last short
    assert np.array_equal(np.asarray(index.embeddings), one_pass)
    file = (index.path / "embeddings.npy").read_bytes()  # the same file as before shards: cached indexes stay valid
    assert hashlib.sha256(file).hexdigest() == hashlib.sha256(npy_bytes(one_pass)).hexdigest()
    assert not DenseIndex.partial_path(index.path).exists()  # shards removed once assembled


def test_shards_follow_the_encoders_length_order(store, encoder, passages):
    order = encoding_order(Corpus.from_store(store), encoder)
    lengths = np.array([len(p.contents) for p in passages])
    assert sorted(order.tolist()) == list(range(len(passages)))
    assert np.all(np.diff(lengths[order]) <= 0)  # longest first, as sentence-transformers batches
    assert len(set(lengths)) < len(lengths) // 2  # ties are common: their order matters at batch boundaries


def test_other_encoders_are_sharded_in_row_order(store, passages, cache, tmp_path):
    """A plain Hugging Face encoder (here a tiny random DPR context encoder) batches in row order, unsorted."""
    from transformers import BertTokenizerFast, DPRConfig, DPRContextEncoder

    from ragenv.encoder import resolve_encoder_path

    tokenizer = BertTokenizerFast.from_pretrained(resolve_encoder_path("all-MiniLM-L6-v2"))
    config = DPRConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=64, projection_dim=0)
    DPRContextEncoder(config).save_pretrained(tmp_path / "ctx")
    tokenizer.save_pretrained(tmp_path / "ctx")
    encoder = Encoder(str(tmp_path / "ctx"))
    corpus = Corpus.from_store(store)
    assert np.array_equal(encoding_order(corpus, encoder), np.arange(len(passages)))
    index = DenseIndex(corpus, encoder, shard_rows=128, progress=False)
    assert np.array_equal(np.asarray(index.embeddings), encoder.encode(Corpus("small", passages).contents))


class Killed(Exception):
    """The build dies here (as a SIGKILL would, between two batches)."""


def test_a_killed_pass_resumes_at_the_first_missing_shard(store, encoder, one_pass, cache, monkeypatch, caplog):
    calls, kill = [], [True]
    real_encode = Encoder.encode

    def encode(self, texts, progress=False):
        calls.append(len(texts))
        if kill[0] and len(calls) == 3:  # the first batch of shard 2 (shards of 64 rows are one batch each)
            raise Killed
        return real_encode(self, texts, progress)

    monkeypatch.setattr(Encoder, "encode", encode)
    corpus = Corpus.from_store(store)
    with pytest.raises(Killed):
        DenseIndex(corpus, encoder, shard_rows=64, progress=False)
    path = DenseIndex.cache_path(corpus, encoder)
    partial = DenseIndex.partial_path(path)
    assert not path.exists()  # no index without every shard
    assert sorted(f.name for f in partial.glob("shard-*.npy")) == ["shard-000000.npy", "shard-000001.npy"]
    calls.clear()
    kill[0] = False
    with caplog.at_level("WARNING", logger="ragenv.index.dense"):
        index = DenseIndex(corpus, encoder, shard_rows=64, progress=False)
    assert "2 of 5 shards were already done" in caplog.text
    assert calls == [64, 64, 44]  # only shards 2, 3, 4 were encoded
    assert np.array_equal(np.asarray(index.embeddings), one_pass)


def test_shards_of_another_plan_are_not_reused(store, encoder, tmp_path):
    corpus = Corpus.from_store(store)
    first = EmbeddingPass(corpus, encoder, tmp_path / "p", shard_rows=64)
    first.prepare()
    first.save(0, np.zeros((64, 384), dtype=np.float32))
    assert first.missing() == [1, 2, 3, 4]
    second = EmbeddingPass(corpus, encoder, tmp_path / "p", shard_rows=128)
    assert second.prepare() == 0 and not first.shard_file(0).exists()  # another shard size: start over
    second.save(1, np.zeros((128, 384), dtype=np.float32))
    (tmp_path / "p" / "shard-000002.npy").write_bytes(b"torn")  # not a complete shard: done again
    assert second.missing() == [0, 2]
    with pytest.raises(ValueError, match="shard 0"):
        second.save(0, np.zeros((64, 384), dtype=np.float32))


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_two_workers_give_the_single_process_bytes(ray_local, store, encoder, one_pass, cache, no_materialising):
    from ragenv.distributed import ray_embed

    corpus = Corpus.from_store(store)
    run = EmbeddingPass(corpus, encoder, cache / "ray-pass", shard_rows=64)
    run.prepare()
    report = ray_embed(run, workers=2, progress=False)
    assert report["shards"] == 5 and report["workers"] == 2
    assert len({r["pid"] for r in report["per_shard"]}) == 2  # both workers took shards
    run.assemble(cache / "embeddings.npy")
    assert np.array_equal(np.load(cache / "embeddings.npy"), one_pass)
    index = DenseIndex(corpus, encoder, shard_rows=64, ray=True, workers=2, progress=False)  # the API switch
    assert np.array_equal(np.asarray(index.embeddings), one_pass)


def test_ray_embeds_an_in_memory_corpus_from_sent_texts(ray_local, passages, encoder, one_pass, tmp_path):
    from ragenv.distributed import ray_embed

    run = EmbeddingPass(Corpus("small", passages), encoder, tmp_path / "pass", shard_rows=192)
    run.prepare()
    run.save(0, encoder.encode(run.texts(0)))  # one shard done before: Ray computes only the other
    assert ray_embed(run, workers=2, progress=False)["shards"] == 1
    run.assemble(tmp_path / "embeddings.npy")
    assert np.array_equal(np.load(tmp_path / "embeddings.npy"), one_pass)


# --------------------------------------------------------------------------- FAISS


@pytest.fixture(scope="module")
def questions(nq, encoder) -> np.ndarray:
    return encoder.encode([q.question for q in nq.split("test")[:50]])


@pytest.fixture(scope="module")
def built(store, encoder, tmp_path_factory):
    """The exact index and its FAISS variants over the store, in one module cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAGENV_CACHE", str(tmp_path_factory.mktemp("faiss-cache")))
        corpus = Corpus.from_store(store)
        exact = DenseIndex(corpus, encoder, shard_rows=128, progress=False)
        small_pq = {"nlist": 8, "pq_m": 48, "pq_nbits": 4}  # 300 passages: 16 codes per sub-quantizer
        yield {"exact": exact,
               "flat": make_index("dense:flat", corpus, encoder=encoder, progress=False),
               "hnsw": make_index("dense:hnsw", corpus, encoder=encoder, progress=False),
               "ivfpq": DenseIndex(corpus, encoder, faiss={"kind": "ivfpq", "nprobe": 4, **small_pq}, progress=False),
               "ivfpq-raw": DenseIndex(corpus, encoder, faiss={"kind": "ivfpq", "nprobe": 4, "rerank": 0, **small_pq},
                                       progress=False)}


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact)]))


def test_flat_faiss_is_the_exact_numpy_search(built, questions):
    exact_rows, exact_scores = built["exact"].search_vectors(questions, 10)
    rows, scores = built["flat"].search_vectors(questions, 10)
    assert built["flat"].faiss.kind == "flat" and rows.dtype == np.int64 and scores.dtype == np.float32
    np.testing.assert_allclose(scores, exact_scores, atol=1e-6)
    # each returned row has the exact score of its rank: the same top-k, up to the order of tied passages
    found = np.einsum("qd,qkd->qk", questions, built["exact"].passage_embeddings(rows))
    np.testing.assert_allclose(found, exact_scores, atol=1e-6)
    assert (rows == exact_rows).mean() > 0.98
    padded_rows, padded_scores = built["flat"].search_vectors(questions[:3], 305)  # k above the corpus size
    assert np.all(padded_rows[:, 300:] == -1) and np.all(padded_scores[:, 300:] == 0)
    assert sorted(padded_rows[0, :300]) == list(range(300))


def test_approximate_indexes_recall_the_exact_top_10(built, questions):
    exact_rows, exact_scores = built["exact"].search_vectors(questions, 10)
    results = {name: built[name].search_vectors(questions, 10) for name in ("hnsw", "ivfpq", "ivfpq-raw")}
    assert recall(results["hnsw"][0], exact_rows) >= 0.95  # 300 passages: the graph reaches nearly all
    assert recall(results["ivfpq-raw"][0], exact_rows) >= 0.3  # 4-bit codes: coarse (random rows: 0.03)
    assert recall(results["ivfpq"][0], exact_rows) >= 0.7  # exact re-scoring of 40 candidates (4 of 8 cells)
    assert recall(results["ivfpq"][0], exact_rows) > recall(results["ivfpq-raw"][0], exact_rows)
    rows, scores = results["ivfpq"]  # re-scored: the exact inner products of the rows it returns
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", questions, built["exact"].passage_embeddings(rows)),
                               atol=1e-6)
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_faiss_indexes_are_cached_apart_and_reopened(built, store, encoder, monkeypatch):
    folders = {name: built[name].faiss.folder for name in ("flat", "hnsw", "ivfpq")}
    assert len(set(folders.values())) == 3 and all((f / "index.faiss").is_file() for f in folders.values())
    assert built["ivfpq"].faiss.folder == built["ivfpq-raw"].faiss.folder  # rerank is a search option
    monkeypatch.setenv("RAGENV_CACHE", str(folders["flat"].parents[1]))
    import ragenv.index.dense as dense

    monkeypatch.setattr(dense, "build_faiss", lambda *a, **k: pytest.fail("rebuilt a cached FAISS index"))
    again = make_index("dense:hnsw", Corpus.from_store(store), encoder=encoder, progress=False)
    assert again.faiss.folder == folders["hnsw"]


# --------------------------------------------------------------------------- bad options: one-line errors


@pytest.mark.unit
@pytest.mark.parametrize("options, needle", [
    ({"faiss": "ivf"}, "faiss must be one of"),
    ({"faiss": {"kind": "hnsw", "ef_search": 0}}, "ef_search must be an integer >= 1"),
    ({"faiss": {"kind": "ivfpq", "nlist": 2.5}}, "nlist must be an integer"),
    ({"faiss": {"kind": "hnsw", "efsearch": 64}}, "unknown faiss option(s) efsearch"),
    ({"faiss": 3}, "faiss must be a kind"),
    ({"shard_rows": 100}, "shard_rows must be a positive multiple of the encoder batch size 64"),
    ({"shard_rows": 0}, "shard_rows must be a positive multiple"),
    ({"ray": "yes"}, "ray must be True or False"),
    ({"workers": 0}, "workers must be an integer >= 1"),
])
def test_bad_options_are_one_line_config_errors(options, needle, passages, tmp_path):
    with pytest.raises(ConfigError) as error:
        DenseIndex(Corpus("tiny", passages[:3]), **options)
    assert needle in str(error.value) and "\n" not in str(error.value)


@pytest.mark.unit
def test_faiss_defaults_scale_with_the_corpus():
    from ragenv.index.faiss_index import FaissConfig

    config = FaissConfig()
    assert config.resolved(1_000_000) == "flat" and config.resolved(1_000_001) == "ivfpq"
    assert (config.cells(116_436), config.training_rows(116_436)) == (1024, 65_536)
    assert (config.cells(21_015_324), config.training_rows(21_015_324)) == (16_384, 638_976)  # 39 per cell
    assert config.cells(300) == 7 and config.training_rows(300) == 300  # every cell gets 39 k-means points
    ivfpq = FaissConfig(kind="ivfpq")
    assert ivfpq.build_options(5000) != FaissConfig(kind="ivfpq", pq_m=24).build_options(5000)  # a build option
    assert FaissConfig(kind="ivfpq", nprobe=1, rerank=0).build_options(5000) == ivfpq.build_options(5000)  # search-only


@pytest.mark.unit
def test_index_names_with_faiss_are_checked_by_name():
    for name in ("dense", "dense:flat", "dense:ivfpq", "dense:hnsw", "dense:faiss"):
        assert check_index_name(name) == name
    with pytest.raises(ConfigError, match="first_stage must be one of"):
        check_index_name("dense:ivf")


def test_ivfpq_on_too_few_passages_says_what_to_use(passages, cache):
    with pytest.raises(ConfigError, match="use dense:flat"):
        make_index("dense:ivfpq", Corpus("tiny", passages[:100]), progress=False)


@pytest.mark.unit
def test_cli_index_build_errors_are_one_line(store):
    assert_one_line_error(run_cli("index", "build", "dense:ivf", "--corpus", str(store.path)), "dense:ivf")
    assert_one_line_error(run_cli("index", "build", "bm25s", "--corpus", str(store.path), "--ray"),
                          "are for dense indexes")
    assert_one_line_error(run_cli("index", "build", "dense", "--corpus", str(store.path), "--shard-rows", "100"),
                          "shard_rows must be a positive multiple")
