"""Datasets in one canonical format, loaded from the public files or a user's folder.

Canonical records
-----------------
- :class:`Passage` ``{id, title, text}``
- :class:`Question` ``{id, question, answers[], gold_passage_ids[], split, source}``

Named data
----------
- corpus ``wiki-mini``: every passage of the four public sources (NQ-open oracle,
  HotpotQA distractor, SQuAD v1.1 dev, FlashRAG's DPR sample) pooled and
  de-duplicated by (title, text) after whitespace normalisation. Passage ids are
  content hashes (``p`` + 16 hex digits of sha1(title \\n text)), so they are stable.
- question sets ``nq``, ``hotpotqa``, ``squad`` over that corpus. Splits are fixed:
  hotpotqa keeps its train/dev/test files; nq and squad assign each question by
  ``sha256(question id) mod 100``: 0-74 train, 75-84 dev, 85-99 test.

A user's data: a folder with ``corpus.jsonl`` and ``questions.jsonl`` in the
canonical fields, accepted wherever a dataset name is. Questions without a
``split`` field belong to the split ``all`` only.

Files come from ``RAGENV_DATA`` (or ``data_dir=``); otherwise they are downloaded
once from their public sources into the user cache and verified by sha256.
"""
from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

from ragenv import settings
from ragenv.errors import ConfigError, DataError

if TYPE_CHECKING:
    from ragenv.corpus.store import CorpusStore

SPLITS = ("train", "dev", "test")
QUESTION_SETS = ("nq", "hotpotqa", "squad")
CORPORA = ("wiki-mini",)

ATTRIBUTION = (
    "Data: Natural Questions (Kwiatkowski et al., 2019; CC BY-SA 3.0) via lost-in-the-middle "
    "(Liu et al., 2023, MIT); HotpotQA (Yang et al., 2018; CC BY-SA 4.0) via megagonlabs/RPT; "
    "SQuAD v1.1 (Rajpurkar et al., 2016; CC BY-SA 4.0); Wikipedia passages from DPR wiki-2018 via "
    "FlashRAG (MIT; text CC BY-SA). See https://creativecommons.org/licenses/by-sa/4.0/"
)


@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    text: str

    @property
    def contents(self) -> str:
        """Title and text as one string, the form every index and prompt uses."""
        return f"{self.title}\n{self.text}" if self.title else self.text


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answers: tuple[str, ...]
    gold_passage_ids: tuple[str, ...] = ()
    split: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class DataFile:
    """One public source file: where it lives under the data folder and how to check it."""

    relpath: str
    sha256: str
    url: str


# The public files (see shared/data/README.md for provenance and licenses).
DATA_FILES: dict[str, DataFile] = {
    "nq": DataFile(
        "nq_open/nq-open-oracle.jsonl.gz",
        "6a7f72b846f663a133ef952244e5a4e43f06bcf190afe34e8fbe687ce0d1653e",
        "https://raw.githubusercontent.com/nelson-liu/lost-in-the-middle/"
        "dc5c20a60a52c46cce60d13c659f698c1343596e/qa_data/nq-open-oracle.jsonl.gz",
    ),
    "hotpotqa-train": DataFile(
        "hotpotqa/train.jsonl",
        "e587f80176337ff705ca2f9c178f2bd784280b388abf302ad4071c482baa0dfb",
        "https://raw.githubusercontent.com/megagonlabs/RPT/"
        "cf2bc1b1b4edd0318b84179e732ec476c4e20a6e/data/hotpotqa/train.jsonl",
    ),
    "hotpotqa-dev": DataFile(
        "hotpotqa/dev.jsonl",
        "c6fa5317cc316b65b3c82d441ea641aef4a588b4aaec9377bbd167637d8665e8",
        "https://raw.githubusercontent.com/megagonlabs/RPT/"
        "cf2bc1b1b4edd0318b84179e732ec476c4e20a6e/data/hotpotqa/dev.jsonl",
    ),
    "hotpotqa-test": DataFile(
        "hotpotqa/test.jsonl",
        "3ab48ee61e64301dff1efbb956ca5ebdfcd1569a2e9d7381fd882e070badfb2a",
        "https://raw.githubusercontent.com/megagonlabs/RPT/"
        "cf2bc1b1b4edd0318b84179e732ec476c4e20a6e/data/hotpotqa/test.jsonl",
    ),
    "squad": DataFile(
        "squad/dev-v1.1.json",
        "615985390fc009850a57e77ccd564391786f06cff42953f019703d4e8d762d45",
        "https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v1.1.json",
    ),
    "flashrag": DataFile(
        "flashrag/sample_data.jsonl",
        "4ff49380c38844c413c5d022e9c269b21a00726130f561b518600f2beb7cc6ed",
        "https://raw.githubusercontent.com/RUC-NLPIR/FlashRAG/"
        "adb2a8bc285042abf7c0c56ff004283f62318c5a/examples/quick_start/indexes/sample_data.jsonl",
    ),
}


def normalize_ws(text: str) -> str:
    """Runs of whitespace become one space, none at either end. ``str.split()`` splits on exactly the
    characters ``re``'s ``\\s`` matches (``str.isspace``; checked over every code point), and is ~3x faster
    than ``re.sub(r"\\s+", " ", text).strip()``, which ingesting 21M passages notices."""
    return " ".join(text.split())


def passage_id(title: str, text: str) -> str:
    """Stable content id: equal (title, text) pairs get equal ids in every source."""
    return "p" + hashlib.sha1(f"{title}\n{text}".encode("utf-8")).hexdigest()[:16]


def hash_split(question_id: str) -> str:
    """The fixed 75/10/15 split for nq and squad, from a hash of the question id (squad: SQuAD's own id)."""
    bucket = int(hashlib.sha256(question_id.encode("utf-8")).hexdigest(), 16) % 100
    return "train" if bucket < 75 else "dev" if bucket < 85 else "test"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_file(key: str, data_dir: str | Path | None = None) -> Path:
    """Path of a verified public data file: local folder if configured, else a checked download."""
    spec = DATA_FILES[key]
    local_root = settings.data_dir(data_dir)
    if local_root is not None:
        if not local_root.is_dir():
            raise DataError(
                f"data folder {local_root} does not exist; point RAGENV_DATA (or --data-dir) at the "
                "folder holding nq_open/, hotpotqa/, squad/ and flashrag/, or unset it to download the files"
            )
        path = local_root / spec.relpath
        if not path.is_file():
            raise DataError(
                f"missing data file {path} (expected sha256 {spec.sha256}); copy it from {spec.url} "
                "or point RAGENV_DATA at a complete data folder"
            )
        found = _sha256_file(path)
        if found != spec.sha256:
            raise DataError(
                f"corrupt data file {path}: sha256 {found[:12]}... but expected {spec.sha256}; "
                f"replace it with a fresh copy from {spec.url}"
            )
        return path
    return _download(spec)


def _download(spec: DataFile) -> Path:
    import pooch  # imported here: only users without a local data folder need it

    target_dir = settings.cache_subdir("data") / Path(spec.relpath).parent
    try:
        fetched = pooch.retrieve(
            url=spec.url,
            known_hash=f"sha256:{spec.sha256}",
            fname=Path(spec.relpath).name,
            path=target_dir,
            progressbar=True,
        )
    except ValueError as exc:  # pooch raises ValueError on a checksum mismatch
        raise DataError(
            f"downloaded {spec.url} does not match sha256 {spec.sha256}: {exc}; delete {target_dir} and retry"
        ) from None
    except Exception as exc:  # network errors come in many types
        raise DataError(
            f"could not download {spec.url} ({type(exc).__name__}: {exc}); set RAGENV_DATA to a local copy"
        ) from None
    return Path(fetched)


# --------------------------------------------------------------------------- loaders of public formats


def decode_line(path: Path, lineno: int, raw: bytes) -> str:
    """One line of a file as text; bytes that are not UTF-8 are a DataError naming ``file:line``."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}:{lineno}: not UTF-8 text (byte {exc.start + 1} of the line is "
                        f"0x{raw[exc.start]:02x}); save the file as UTF-8") from None


def parse_json_line(path: Path, lineno: int, raw: bytes) -> dict | None:
    """The JSON object on one line (None for a blank line); anything else is a DataError naming ``file:line``."""
    line = decode_line(path, lineno, raw)
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # an integer of thousands of digits, absurd nesting
        raise DataError(f"{path}:{lineno}: not valid JSON ({str(exc)[:100]})") from None
    if not isinstance(record, dict):
        raise DataError(f"{path}:{lineno}: expected a JSON object, found {type(record).__name__}")
    return record


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` per non-blank line; any unreadable line is a DataError naming ``file:line``."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            for lineno, raw in enumerate(handle, 1):
                record = parse_json_line(path, lineno, raw)
                if record is not None:
                    yield lineno, record
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def _make_passage(title: str, text: str) -> Passage:
    title, text = normalize_ws(title), normalize_ws(text)
    return Passage(passage_id(title, text), title, text)


def load_nq_open(path: Path) -> tuple[list[Passage], list[Question]]:
    """NQ-open oracle rows: question, answers[], ctxs[0] = the gold DPR passage."""
    passages, questions = [], []
    for lineno, row in _read_jsonl(path):
        try:
            gold = [c for c in row["ctxs"] if c.get("isgold", True)] or row["ctxs"][:1]
            golds = [_make_passage(c["title"], c["text"]) for c in gold]
            qid = f"nq-{lineno - 1:05d}"
            questions.append(
                Question(qid, row["question"], tuple(row["answers"]), tuple(p.id for p in golds), hash_split(qid), "nq")
            )
        except (KeyError, TypeError, IndexError) as exc:
            raise DataError(f"{path}:{lineno}: not an NQ-open oracle row (missing {exc})") from None
        passages.extend(golds)
    return passages, questions


def load_hotpotqa(path: Path, split: str) -> tuple[list[Passage], list[Question]]:
    """HotpotQA distractor rows (Hugging Face layout); gold = the supporting-fact titles.

    Question ids are ragenv's (``hotpotqa-<split>-<line>``), like nq's: results and leaderboard
    files name questions without copying the dataset's own identifiers.
    """
    passages, questions = [], []
    for lineno, row in _read_jsonl(path):
        try:
            by_title: dict[str, Passage] = {}
            for title, sentences in zip(row["context"]["title"], row["context"]["sentences"]):
                passage = _make_passage(title, "".join(sentences))
                by_title.setdefault(title, passage)
                passages.append(passage)
            gold_titles = list(dict.fromkeys(row["supporting_facts"]["title"]))
            gold_ids = tuple(by_title[t].id for t in gold_titles if t in by_title)
            qid = f"hotpotqa-{split}-{lineno - 1:05d}"
            questions.append(Question(qid, row["question"], (row["answer"],), gold_ids, split, "hotpotqa"))
        except (KeyError, TypeError) as exc:
            raise DataError(f"{path}:{lineno}: not a HotpotQA distractor row (missing {exc})") from None
    return passages, questions


def load_squad(path: Path) -> tuple[list[Passage], list[Question]]:
    """SQuAD v1.1 JSON; the gold passage is the paragraph a question was written on.

    Question ids are ragenv's (``squad-<position in the file>``); the split still hashes SQuAD's
    own id, so every question keeps the split it always had.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            doc = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read SQuAD file {path}: {exc}") from None
    passages: list[Passage] = []
    questions: list[Question] = []
    try:
        for article in doc["data"]:
            title = article["title"].replace("_", " ")
            for paragraph in article["paragraphs"]:
                passage = _make_passage(title, paragraph["context"])
                passages.append(passage)
                for qa in paragraph["qas"]:
                    answers = tuple(dict.fromkeys(a["text"].strip() for a in qa["answers"]))
                    qid = f"squad-{len(questions):05d}"
                    questions.append(
                        Question(qid, qa["question"], answers, (passage.id,), hash_split(qa["id"]), "squad")
                    )
    except (KeyError, TypeError) as exc:
        raise DataError(f"{path}: not SQuAD v1.1 JSON (missing {exc})") from None
    return passages, questions


def split_contents(contents: str) -> tuple[str, str]:
    """FlashRAG's ``contents`` (``"Title"\\ntext``) as a normalised (title, text)."""
    title, _, text = contents.partition("\n")
    return normalize_ws(title.strip().strip('"')), normalize_ws(text)


def load_dpr_jsonl(path: Path) -> list[Passage]:
    """DPR/FlashRAG passages ``{id, contents}`` where contents is ``"Title"\\ntext``.

    The file's ids are not kept: wiki-mini pools sources, so its ids are content hashes (``passage_id``).
    """
    passages = []
    for lineno, row in _read_jsonl(path):
        contents = row.get("contents")
        if not isinstance(contents, str):
            raise DataError(f"{path}:{lineno}: expected a string field 'contents'")
        title, text = split_contents(contents)
        passages.append(Passage(passage_id(title, text), title, text))
    return passages


# --------------------------------------------------------------------------- corpus and dataset


class Corpus:
    """An ordered, de-duplicated passage collection. Row numbers are the environments' passage ids.

    In memory (``Corpus(name, passages)``, the named and user data) or backed by an on-disk
    :class:`ragenv.corpus.CorpusStore` (:meth:`from_store`, for corpora too big for Python objects):
    ``len``, ``corpus[row]``, ``pid in corpus``, :meth:`row` and :attr:`fingerprint` then read the
    store's files and manifest; :attr:`passages` and :attr:`contents` materialise the whole corpus.
    """

    def __init__(self, name: str, passages: Iterable[Passage]):
        self.name = name
        unique: dict[str, Passage] = {}
        for passage in passages:
            unique.setdefault(passage.id, passage)
        self._passages: list[Passage] | None = list(unique.values())
        self._row: dict[str, int] | None = {p.id: i for i, p in enumerate(self._passages)}
        self.store: CorpusStore | None = None

    @classmethod
    def from_store(cls, store: CorpusStore | str | Path, name: str | None = None) -> Corpus:
        """A corpus read from a store (an open one, a store folder, or a store name under the cache's
        ``corpora/``); opening costs milliseconds and no memory in proportion to the corpus."""
        from ragenv.corpus.store import CorpusStore

        opened = store if isinstance(store, CorpusStore) else CorpusStore.open(store)
        corpus = cls.__new__(cls)
        corpus.name = name or opened.name
        corpus._passages, corpus._row, corpus.store = None, None, opened
        return corpus

    @property
    def passages(self) -> list[Passage]:
        """Every passage in row order. A store-backed corpus materialises them all (once, then kept):
        for small corpora only; large ones are read by row."""
        if self._passages is None:
            assert self.store is not None
            self._passages = list(self.store)
        return self._passages

    def __len__(self) -> int:
        return len(self.store) if self.store is not None else len(self.passages)

    def __getitem__(self, row: int) -> Passage:
        return self.store[row] if self.store is not None else self.passages[row]

    def __contains__(self, pid: str) -> bool:
        if self.store is not None:
            return pid in self.store
        assert self._row is not None
        return pid in self._row

    def row(self, pid: str) -> int:
        """Row number of a passage id (KeyError when absent)."""
        if self.store is not None:
            return self.store.row(pid)
        assert self._row is not None
        return self._row[pid]

    def content_row(self, title: str, text: str) -> int | None:
        """Row of the passage with this title and text (matched by :func:`passage_id`), or None."""
        if self.store is not None:
            return self.store.content_row(title, text)
        if "_content_rows" not in self.__dict__:
            self._content_rows = {passage_id(p.title, p.text): i for i, p in enumerate(self.passages)}
        return self._content_rows.get(passage_id(normalize_ws(title), normalize_ws(text)))

    @cached_property
    def contents(self) -> list[str]:
        """``title\\ntext`` of every passage, in row order (materialises a store-backed corpus)."""
        return [p.contents for p in (self.store if self.store is not None else self.passages)]

    @cached_property
    def fingerprint(self) -> str:
        """sha256 over every (id, title, text): any change to the corpus changes it (a store's, from its manifest)."""
        if self.store is not None:
            return self.store.fingerprint
        digest = hashlib.sha256()
        for p in self.passages:
            digest.update(f"{p.id}\x1f{p.title}\x1f{p.text}\x1e".encode("utf-8"))
        return digest.hexdigest()


@dataclass
class Dataset:
    """A question set over a corpus, with its splits."""

    name: str
    corpus: Corpus
    questions: list[Question]
    splits: tuple[str, ...] = field(default=SPLITS)

    def split(self, name: str) -> list[Question]:
        """Questions of one split (``all`` = every question)."""
        if name == "all":
            return list(self.questions)
        if name not in self.splits:
            raise DataError(
                f"dataset {self.name!r} has no split {name!r}; choose one of {', '.join(self.splits + ('all',))}"
            )
        return [q for q in self.questions if q.split == name]

    def with_corpus(self, corpus: Corpus) -> Dataset:
        """The same questions over another corpus, each gold passage resolved by id, else by content.

        A gold id of this dataset's corpus that the other corpus also has is kept; otherwise the
        passage's title and text are looked up (:meth:`Corpus.content_row`), which finds the gold
        passages of the DPR-derived sets in a DPR Wikipedia store under that store's own ids. Gold
        passages found neither way are dropped: :func:`gold_coverage` counts the questions left
        without any.
        """
        resolved = []
        for question in self.questions:
            gold = []
            for pid in question.gold_passage_ids:
                if pid in corpus:
                    gold.append(pid)
                elif pid in self.corpus:
                    passage = self.corpus[self.corpus.row(pid)]
                    row = corpus.content_row(passage.title, passage.text)
                    if row is not None:
                        gold.append(corpus[row].id)
            resolved.append(replace(question, gold_passage_ids=tuple(dict.fromkeys(gold))))
        return Dataset(self.name, corpus, resolved, self.splits)

    def split_fingerprint(self, name: str) -> str:
        """sha256 over the split's question ids and the corpus fingerprint."""
        digest = hashlib.sha256(self.corpus.fingerprint.encode())
        for q in self.split(name):
            digest.update(q.id.encode("utf-8") + b"\n")
        return digest.hexdigest()


def _load_public(data_dir: str | Path | None) -> tuple[Corpus, dict[str, list[Question]]]:
    nq_passages, nq_questions = load_nq_open(fetch_file("nq", data_dir))
    hp_passages, hp_questions = [], []
    for split in SPLITS:
        passages, questions = load_hotpotqa(fetch_file(f"hotpotqa-{split}", data_dir), split)
        hp_passages += passages
        hp_questions += questions
    sq_passages, sq_questions = load_squad(fetch_file("squad", data_dir))
    fr_passages = load_dpr_jsonl(fetch_file("flashrag", data_dir))
    corpus = Corpus("wiki-mini", nq_passages + hp_passages + sq_passages + fr_passages)
    return corpus, {"nq": nq_questions, "hotpotqa": hp_questions, "squad": sq_questions}


def _is_id(value) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def user_passage(path: Path, lineno: int, row: dict) -> Passage:
    """One line of a user's ``corpus.jsonl`` (``{id, title, text}``) as a passage, by the rules of
    :func:`load_user_dataset` (also used by ``ragenv.corpus.ingest`` for JSONL sources)."""
    pid, title, text = row.get("id"), row.get("title", ""), row.get("text")
    if not _is_id(pid) or not isinstance(text, str) or not isinstance(title, str):
        raise DataError(f"{path}:{lineno}: a passage needs string fields 'id' and 'text' (and optional 'title')")
    return Passage(str(pid), normalize_ws(title), normalize_ws(text))


def load_user_dataset(folder: Path) -> Dataset:
    """A folder with ``corpus.jsonl`` and ``questions.jsonl`` in the canonical fields.

    Rules (each violation is a :class:`DataError` naming ``file:line``): ids are strings
    or integers (``1`` and ``"1"`` are the same id) and unique in their file, duplicates
    are errors, never merged; passage whitespace is normalised; a question needs a
    non-blank ``question`` and at least one non-blank answer (blank aliases are dropped);
    ``gold_passage_ids`` name passages of corpus.jsonl; ``split`` and ``source`` are
    strings when present. Any Unicode is kept as is; length is not limited here (the
    frozen LLM's prompt cuts questions and passages by words, see ``ragenv.llm``).
    """
    corpus_path, questions_path = folder / "corpus.jsonl", folder / "questions.jsonl"
    for path in (corpus_path, questions_path):
        if not path.is_file():
            raise DataError(f"dataset folder {folder} has no {path.name}; it needs corpus.jsonl and questions.jsonl")
    passages, seen = [], set()
    for lineno, row in _read_jsonl(corpus_path):
        passage = user_passage(corpus_path, lineno, row)
        if passage.id in seen:
            raise DataError(f"{corpus_path}:{lineno}: duplicate passage id {passage.id!r}")
        seen.add(passage.id)
        passages.append(passage)
    if not passages:
        raise DataError(f"{corpus_path} holds no passages")
    questions, seen_q, splits = [], set(), set()
    for lineno, row in _read_jsonl(questions_path):
        qid, text, answers = row.get("id"), row.get("question"), row.get("answers")
        gold = row.get("gold_passage_ids", [])
        if not _is_id(qid) or not isinstance(text, str) or not text.strip():
            raise DataError(f"{questions_path}:{lineno}: a question needs 'id' and a non-empty string 'question'")
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise DataError(f"{questions_path}:{lineno}: 'answers' must be a list of strings")
        if not any(a.strip() for a in answers):
            raise DataError(f"{questions_path}:{lineno}: 'answers' needs at least one non-empty answer "
                            "(the reward compares the LLM's answer with it)")
        if not isinstance(gold, list) or any(not _is_id(g) or str(g) not in seen for g in gold):
            raise DataError(f"{questions_path}:{lineno}: 'gold_passage_ids' must list ids present in corpus.jsonl")
        if str(qid) in seen_q:
            raise DataError(f"{questions_path}:{lineno}: duplicate question id {qid!r}")
        seen_q.add(str(qid))
        split, source = row.get("split"), row.get("source")
        if split is not None and not (isinstance(split, str) and split.strip()):
            raise DataError(f"{questions_path}:{lineno}: 'split' must be a non-empty string (e.g. train, dev, test)")
        if source is not None and not isinstance(source, str):
            raise DataError(f"{questions_path}:{lineno}: 'source' must be a string")
        if split is not None:
            splits.add(split)
        questions.append(
            Question(str(qid), text, tuple(a for a in answers if a.strip()), tuple(map(str, gold)), split, source)
        )
    corpus = Corpus(folder.name, passages)
    return Dataset(str(folder), corpus, questions, tuple(sorted(splits)))


def load_dataset(name: str, data_dir: str | Path | None = None) -> Dataset:
    """A named question set (``nq``, ``hotpotqa``, ``squad``) over wiki-mini, or a user folder."""
    if name in QUESTION_SETS:
        corpus, question_sets = _load_public(data_dir)
        return Dataset(name, corpus, question_sets[name])
    path = Path(name).expanduser()
    if path.is_dir():
        return load_user_dataset(path)
    raise DataError(
        f"unknown dataset {name!r}: use one of {', '.join(QUESTION_SETS)} "
        "or a folder holding corpus.jsonl and questions.jsonl"
    )


def data_summary(data_dir: str | Path | None = None) -> dict:
    """Counts per question set and split, and the corpus size (for ``ragenv data info``)."""
    corpus, question_sets = _load_public(data_dir)
    rows = {}
    for name, questions in question_sets.items():
        counts = {s: sum(q.split == s for q in questions) for s in SPLITS}
        counts["all"] = len(questions)
        rows[name] = counts
    return {"corpus": corpus.name, "passages": len(corpus), "fingerprint": corpus.fingerprint, "question_sets": rows}


def open_corpus(name_or_path: str | Path) -> Corpus:
    """A corpus store by name (under the cache's ``corpora/``) or folder, as a :class:`Corpus` (``corpus=``)."""
    if not isinstance(name_or_path, (str, Path)) or not str(name_or_path):
        raise ConfigError(f"corpus must be a corpus store name or folder, got {name_or_path!r}")
    return Corpus.from_store(name_or_path)


def questions_without_gold(questions: Sequence[Question]) -> int:
    """Questions without any gold passage in their corpus (their hit@k is not defined: IR metrics skip them)."""
    return sum(1 for q in questions if not q.gold_passage_ids)


def select(questions: Sequence[Question], limit: int | None) -> list[Question]:
    """The first ``limit`` questions (all when None): evaluation slices are prefixes, hence stable."""
    return list(questions if limit is None else questions[:limit])
