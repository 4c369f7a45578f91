"""An on-disk, memory-mapped passage store: O(1) row lookups and on-disk id lookups, cheap to open.

Why: a full Wikipedia corpus (21M passages, ~13 GB of text) does not fit in Python objects on a
24 GiB machine, while every environment only needs the handful of passages it shows per step.
Opening a store maps its files and reads only ``manifest.json``; the operating system pages in
what is touched, so memory does not grow with the corpus.

Layout of a store folder (all integers little-endian)::

    manifest.json  format and version, name, count, fingerprint, source description, byte sizes
    passages.bin   per row: id 0x1F title 0x1F text 0x1E in UTF-8, rows back to back; these are
                   exactly the bytes ``ragenv.data.Corpus.fingerprint`` hashes, so the fingerprint
                   is sha256(passages.bin) and can be re-checked (``verify``) or resumed by streaming
    offsets.u64    per row three uint64, where its id, title and text start in passages.bin, then
                   one final triple holding the file's length: row r is the 32 bytes at 24 * r
    ids.hash       the rows' id hashes (first 8 bytes of blake2b, as uint64), sorted
    ids.row        the row of each entry of ids.hash (uint32, or uint64 past 2**32 rows)

Built on first need (not by ingest; :meth:`CorpusStore.content_row`), for questions whose gold
passages are named by content rather than by this corpus's ids::

    content.hash   the 64-bit hashes of the rows' content ids (``ragenv.data.passage_id(title, text)``), sorted
    content.row    the row of each entry of content.hash

``row -> passage`` reads one offsets triple and one slice of passages.bin. ``id -> row`` is a binary
search of ids.hash (``np.searchsorted`` on the mapped file, ~25 probes at 21M rows) and a check of
the id string at each candidate row, so hash collisions cost a comparison, never a wrong answer.
Stores are written by :mod:`ragenv.corpus.ingest` (and :mod:`ragenv.corpus.synth` through it).
"""
from __future__ import annotations

import hashlib
import json
import mmap
import operator
import struct
from pathlib import Path
from typing import Iterator

import numpy as np

from ragenv import settings
from ragenv.data import Passage
from ragenv.errors import DataError

FORMAT = "ragenv-corpus-store"
VERSION = 1
MANIFEST = "manifest.json"
PASSAGES = "passages.bin"
OFFSETS = "offsets.u64"
ID_HASHES = "ids.hash"
ID_ROWS = "ids.row"
FILES = (PASSAGES, OFFSETS, ID_HASHES, ID_ROWS)
CONTENT_HASHES = "content.hash"  # built on first need by content_row
CONTENT_ROWS = "content.row"
UNIT_SEP, RECORD_SEP = b"\x1f", b"\x1e"
_TRIPLE = struct.Struct("<4Q")  # a row's three starts and the next row's id start


def id_hash(pid: str) -> int:
    """The 64-bit hash of a passage id that ids.hash is sorted by."""
    return int.from_bytes(hashlib.blake2b(pid.encode("utf-8"), digest_size=8).digest(), "little")


def id_hash_bytes(pid_bytes: bytes) -> bytes:
    """:func:`id_hash` of UTF-8 id bytes, as the 8 little-endian bytes written to ids.hash."""
    return hashlib.blake2b(pid_bytes, digest_size=8).digest()


def row_dtype(count: int) -> str:
    return "<u4" if count < 2**32 else "<u8"


def corpora_dir() -> Path:
    """Where stores live unless told otherwise: ``<ragenv cache>/corpora``."""
    return settings.cache_subdir("corpora")


def store_path(name_or_path: str | Path) -> Path:
    """A store folder from a path, or from a name under :func:`corpora_dir`."""
    path = Path(name_or_path).expanduser()
    if (path / MANIFEST).is_file() or path.is_absolute() or len(path.parts) > 1:
        return path
    return corpora_dir() / str(name_or_path)


def _map(path: Path) -> mmap.mmap:
    with open(path, "rb") as handle:
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)


class CorpusStore:
    """A read-only view of a store folder; open with :meth:`open`.

    ``len(store)``, ``store[row]`` (a :class:`~ragenv.data.Passage`), iteration in row order,
    ``pid in store``, :meth:`find` / :meth:`row` (id -> row), ``fingerprint`` (from the manifest).
    Pickles as its path (it is reopened on the other side), so it can travel to worker processes.
    """

    def __init__(self, path: Path, manifest: dict):
        self.path = path
        self.manifest = manifest
        self.name: str = manifest["name"]
        self.count: int = manifest["count"]
        self.fingerprint: str = manifest["fingerprint"]
        self._blob = _map(path / PASSAGES)
        self._offsets = _map(path / OFFSETS)
        self._hash_map = _map(path / ID_HASHES)
        self._row_map = _map(path / ID_ROWS)
        self._hashes = np.frombuffer(self._hash_map, dtype="<u8")
        self._rows = np.frombuffer(self._row_map, dtype=manifest["row_dtype"])

    @classmethod
    def open(cls, path: str | Path) -> CorpusStore:
        """Open a store folder (or a store name under :func:`corpora_dir`): reads the manifest, maps the files."""
        folder = store_path(path)
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            hint = " (an ingest is still running or was interrupted: rerun it to finish)" \
                if folder.with_name(folder.name + ".partial").is_dir() else ""
            raise DataError(f"no corpus store at {folder}{hint}; build one with `ragenv corpus ingest` "
                            "or `ragenv corpus synth`")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"corrupt corpus store {folder}: cannot read {MANIFEST} ({exc}); rebuild it") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise DataError(f"{folder} is not a ragenv corpus store ({MANIFEST} has no format {FORMAT!r})")
        if manifest.get("version") != VERSION:
            raise DataError(f"corpus store {folder} has format version {manifest.get('version')}, this ragenv reads "
                            f"version {VERSION}; rebuild it with `ragenv corpus ingest`")
        expected = manifest.get("bytes", {})
        for name in FILES:
            file = folder / name
            size = file.stat().st_size if file.is_file() else None
            if size != expected.get(name):
                raise DataError(f"corrupt corpus store {folder}: {name} has {size} bytes, the manifest says "
                                f"{expected.get(name)}; rebuild it")
        return cls(folder, manifest)

    def __reduce__(self):
        return (CorpusStore.open, (str(self.path),))

    def __repr__(self) -> str:
        return f"CorpusStore({str(self.path)!r}, count={self.count})"

    def __len__(self) -> int:
        return self.count

    def _span(self, row: int) -> tuple[int, int, int, int]:
        row = operator.index(row)
        if row < 0:
            row += self.count
        if not 0 <= row < self.count:
            raise IndexError(f"row {row} out of range for a corpus of {self.count} passages")
        return _TRIPLE.unpack_from(self._offsets, 24 * row)

    def __getitem__(self, row: int) -> Passage:
        id_start, title_start, text_start, end = self._span(row)
        blob = self._blob
        return Passage(blob[id_start:title_start - 1].decode("utf-8"), blob[title_start:text_start - 1].decode("utf-8"),
                       blob[text_start:end - 1].decode("utf-8"))

    def id_at(self, row: int) -> str:
        """The id of one row (without decoding its title and text)."""
        id_start, title_start, _, _ = self._span(row)
        return self._blob[id_start:title_start - 1].decode("utf-8")

    def __iter__(self) -> Iterator[Passage]:
        return (self[row] for row in range(self.count))

    def find(self, pid: str) -> int | None:
        """Row of a passage id, or None: binary search of the sorted id hashes, then an id comparison."""
        key = np.uint64(id_hash(pid))
        at = int(np.searchsorted(self._hashes, key))
        encoded = pid.encode("utf-8")
        while at < self.count and self._hashes[at] == key:
            row = int(self._rows[at])
            id_start, title_start, _, _ = self._span(row)
            if self._blob[id_start:title_start - 1] == encoded:
                return row
            at += 1
        return None

    def row(self, pid: str) -> int:
        """Row of a passage id; KeyError when the store has no such id."""
        found = self.find(pid)
        if found is None:
            raise KeyError(pid)
        return found

    def __contains__(self, pid: object) -> bool:
        return isinstance(pid, str) and self.find(pid) is not None

    def content_row(self, title: str, text: str) -> int | None:
        """Row of the passage with this title and text (after whitespace normalisation), or None.

        Matches by ragenv's content id (:func:`ragenv.data.passage_id`), the id wiki-mini gives its
        passages, so gold passages of the named question sets are found in any corpus holding the
        same text (a DPR ``psgs_w100`` store, say) whatever ids that corpus uses. The first call
        builds ``content.hash``/``content.row`` by one streaming pass (written atomically, then reused).
        """
        from ragenv.data import normalize_ws, passage_id

        hashes, rows = self._content_index()
        key = np.uint64(id_hash(passage_id(normalize_ws(title), normalize_ws(text))))
        at = int(np.searchsorted(hashes, key))
        while at < len(hashes) and hashes[at] == key:
            row = int(rows[at])
            found = self[row]
            if (found.title, found.text) == (normalize_ws(title), normalize_ws(text)):
                return row
            at += 1
        return None

    def _content_index(self) -> tuple[np.ndarray, np.ndarray]:
        cached = getattr(self, "_content", None)
        if cached is not None:
            return cached
        from filelock import FileLock

        from ragenv.atomic import atomic_write
        from ragenv.data import passage_id

        hash_file, row_file = self.path / CONTENT_HASHES, self.path / CONTENT_ROWS
        with FileLock(str(self.path / ".content.lock")):
            if not (hash_file.is_file() and row_file.is_file()):
                keys = np.fromiter((id_hash(passage_id(p.title, p.text)) for p in self), dtype="<u8", count=self.count)
                order = np.argsort(keys, kind="stable")
                atomic_write(row_file, order.astype(self.manifest["row_dtype"]).tobytes())
                atomic_write(hash_file, keys[order].tobytes())  # written last: its presence means complete
        self._content = (np.memmap(hash_file, dtype="<u8", mode="r"),
                         np.memmap(row_file, dtype=self.manifest["row_dtype"], mode="r"))
        return self._content

    def disk_bytes(self) -> int:
        """Bytes of every file of the store, manifest included."""
        return sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())

    def verify(self) -> str:
        """Re-hash passages.bin (reads the whole store) and compare with the manifest; returns the fingerprint."""
        digest = hashlib.sha256()
        for start in range(0, len(self._blob), 1 << 24):
            digest.update(self._blob[start:start + (1 << 24)])
        found = digest.hexdigest()
        if found != self.fingerprint:
            raise DataError(f"corrupt corpus store {self.path}: passages.bin hashes to {found[:16]}, the manifest "
                            f"says {self.fingerprint[:16]}; rebuild it")
        return found

    def close(self) -> None:
        """Unmap the files (the store is unusable afterwards)."""
        del self._hashes, self._rows
        for mapped in (self._blob, self._offsets, self._hash_map, self._row_map):
            mapped.close()

    def __enter__(self) -> CorpusStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
