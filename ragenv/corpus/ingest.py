"""Stream passage files into a corpus store: resumable, atomic, and strict about bad input.

Formats (``fmt``, or ``auto`` from the file name and first line):

- ``dpr-tsv``: ``id<TAB>text<TAB>title`` with a header line, as DPR's ``psgs_w100.tsv`` (fields
  may be CSV-quoted, ``""`` inside a quoted field is a quote);
- ``jsonl``: ``{id, title, text}``, the rules of a user folder's ``corpus.jsonl``
  (:func:`ragenv.data.user_passage`);
- ``flashrag``: ``{id, contents}`` with contents ``"Title"\\ntext`` (:func:`ragenv.data.split_contents`);
  the file's ids are kept (FlashRAG's indexes and qrels refer to them).

Any of them may be gzipped (``.gz``). Whitespace is normalised as :func:`ragenv.data.normalize_ws` does.

How it survives a crash: :class:`StoreWriter` builds the store in ``<out>.partial/``, appending
rows in chunks; after each chunk it fsyncs the files and then writes ``checkpoint.json`` (rows and
bytes written, and where the producer stands, e.g. the source file's byte offset). A rerun with the
same arguments truncates the files to the checkpoint, re-hashes ``passages.bin`` to rebuild the
sha256 state (hashlib objects cannot be saved; the file *is* the fingerprint's input, so this
gives the same fingerprint as an uninterrupted run), and continues. At the end ids are checked for
duplicates on sorted hashes, the id map is written, and the folder is renamed into place: a store
under its final name is always complete. Bad input is a one-line :class:`DataError` naming
``file:line`` and removes the partial folder.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import json
import math
import mmap
import os
import shutil
import struct
import sys
from array import array
from pathlib import Path
from typing import BinaryIO, Callable, Sequence

import numpy as np
from filelock import FileLock, Timeout

from ragenv.atomic import atomic_write
from ragenv.corpus import store as layout
from ragenv.corpus.store import CorpusStore, id_hash_bytes
from ragenv.data import _is_id, decode_line, normalize_ws, parse_json_line, split_contents, user_passage
from ragenv.errors import DataError
from ragenv.progress import progress_bar

FORMATS = ("dpr-tsv", "jsonl", "flashrag")
CHUNK_BYTES = 8 << 20  # rows buffered between checkpoints
CHECKPOINT = "checkpoint.json"
RAW_HASHES = "ids.hash.unsorted"  # id hashes in row order, sorted into ids.hash at the end
ORIGINS = "origins.u64"  # per row (source index << 40 | line), to name both lines of a duplicate id
ORIGIN_SHIFT = 40
ROW_OVERHEAD = 64  # bytes per row besides its text: offsets, hashes, rows, origins
TSV_HEADER = ["id", "text", "title"]

Record = tuple[str, str, str]  # (id, title, text)


def _gib(size: float) -> str:
    return f"{size / 2**30:.2f} GiB"


def _write_json(path: Path, document: dict) -> None:
    """Write a small JSON file atomically and durably (it records what the other files hold)."""
    atomic_write(path, json.dumps(document, indent=1, ensure_ascii=False), fsync=True)


def check_disk_space(folder: Path, needed: int) -> None:
    """DataError unless the file system holding ``folder`` has ``needed`` bytes free."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed > free:
        raise DataError(f"not enough disk space for the corpus store in {folder}: it needs about {_gib(needed)}, "
                        f"{_gib(free)} free; free some space or choose another --out")


class StoreWriter:
    """Appends (id, title, text) rows to a store under construction; see the module docstring.

    Use as a context manager: ``add`` rows, call ``flush(state)`` whenever ``due`` (``state``: a
    JSON-able dict that lets the producer resume after the last flushed row; it comes back as
    ``writer.state`` on a rerun), then ``finish(state, source)``. A :class:`DataError` raised
    inside the block removes the partial folder; any other exception (a kill, Ctrl-C) keeps it
    for the rerun. ``key`` identifies the job: a partial folder built under another key is discarded.
    ``labels[i]`` is a format string naming a row of source ``i`` by its line (``"file.tsv:{}"``);
    ``what`` names all the input at once (for the error when it holds no passages).
    """

    def __init__(self, out_dir: str | Path, name: str, key: dict, labels: Sequence[str], what: str, *,
                 overwrite: bool = False, chunk_bytes: int = CHUNK_BYTES):
        self.out_dir = Path(out_dir)
        self.partial = self.out_dir.with_name(self.out_dir.name + ".partial")
        self.name, self.key, self.labels, self.what = name, key, list(labels), what
        self.overwrite, self.chunk_bytes = overwrite, chunk_bytes
        self.state: dict | None = None  # the producer's position to resume from (None: start)
        self.rows = self.bytes = 0
        self.resumed_rows = 0
        self._digest = hashlib.sha256()
        self._buf = bytearray()
        self._offsets = array("Q")
        self._hashes = bytearray()
        self._origins = array("Q")
        self._lock = FileLock(str(self.out_dir.with_name(f".{self.out_dir.name}.lock")))
        self._handles: dict[str, BinaryIO] = {}

    # ------------------------------------------------------------------ opening and resuming

    def __enter__(self) -> StoreWriter:
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise DataError(f"another process is writing the corpus store {self.out_dir}; wait for it "
                            "to finish") from None
        try:
            if self.out_dir.exists() and not (self.out_dir / layout.MANIFEST).is_file():
                raise DataError(f"{self.out_dir} exists and is not a corpus store; choose another --name or --out "
                                "(ingest never replaces other folders)")
            if self.out_dir.exists() and not self.overwrite:
                raise DataError(f"{self.out_dir} already holds a corpus store; pass --overwrite to replace it "
                                "or choose another --name")
            if not self._resume():
                shutil.rmtree(self.partial, ignore_errors=True)
                self.partial.mkdir(parents=True)
                for name in (layout.PASSAGES, layout.OFFSETS, RAW_HASHES, ORIGINS):
                    (self.partial / name).touch()
            self._open_files()
        except BaseException:
            self._lock.release()
            raise
        return self

    def _resume(self) -> bool:
        """Pick up a partial folder of the same job; False when there is none to resume."""
        try:
            checkpoint = json.loads((self.partial / CHECKPOINT).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return False
        if not isinstance(checkpoint, dict) or checkpoint.get("key") != self.key:
            return False
        try:
            rows, size, state = int(checkpoint["rows"]), int(checkpoint["bytes"]), dict(checkpoint["state"])
        except (KeyError, TypeError, ValueError):
            return False
        sizes = {layout.PASSAGES: size, layout.OFFSETS: 24 * rows, RAW_HASHES: 8 * rows, ORIGINS: 8 * rows}
        for name, expected in sizes.items():
            path = self.partial / name
            if not path.is_file() or path.stat().st_size < expected:
                return False  # written without the checkpoint's data: start over
        for name, expected in sizes.items():
            os.truncate(self.partial / name, expected)  # drop rows written after the checkpoint
        with open(self.partial / layout.PASSAGES, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 24), b""):
                self._digest.update(block)
        self.rows = self.resumed_rows = rows
        self.bytes = size
        self.state = state
        return True

    def _open_files(self) -> None:
        self._handles = {name: open(self.partial / name, "ab")
                         for name in (layout.PASSAGES, layout.OFFSETS, RAW_HASHES, ORIGINS)}

    def _close_files(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles = {}

    def __exit__(self, kind, exc, tb) -> None:
        self._close_files()
        try:
            if isinstance(exc, DataError) and self.partial.exists():
                shutil.rmtree(self.partial, ignore_errors=True)  # bad input: nothing to resume
        finally:
            self._lock.release()

    # ------------------------------------------------------------------ writing

    def add(self, pid: str, title: str, text: str, source: int, line: int) -> None:
        """Append one row (``source``/``line``: where it came from, for error messages)."""
        pid_b, title_b, text_b = pid.encode("utf-8"), title.encode("utf-8"), text.encode("utf-8")
        start = self.bytes + len(self._buf)
        title_start = start + len(pid_b) + 1
        self._offsets.extend((start, title_start, title_start + len(title_b) + 1))
        self._buf += b"".join((pid_b, layout.UNIT_SEP, title_b, layout.UNIT_SEP, text_b, layout.RECORD_SEP))
        self._hashes += id_hash_bytes(pid_b)
        self._origins.append(source << ORIGIN_SHIFT | line)

    @property
    def due(self) -> bool:
        """Whether enough rows are buffered to flush."""
        return len(self._buf) >= self.chunk_bytes

    def flush(self, state: dict) -> None:
        """Write the buffered rows, make them durable, then record ``state`` as the resume point."""
        if self._buf:
            self._write_chunk()
        self._save_checkpoint(state)

    def _write_chunk(self) -> None:
        offsets, origins = self._offsets, self._origins
        if sys.byteorder == "big":
            offsets.byteswap()
            origins.byteswap()
        try:
            for name, data in ((layout.PASSAGES, self._buf), (layout.OFFSETS, offsets.tobytes()),
                               (RAW_HASHES, self._hashes), (ORIGINS, origins.tobytes())):
                handle = self._handles[name]
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise OSError(f"cannot write the corpus store {self.partial} ({exc}); free some space and rerun "
                          "the same command to resume") from exc
        self._digest.update(self._buf)
        self.rows += len(self._origins)
        self.bytes += len(self._buf)
        self._buf, self._offsets, self._hashes, self._origins = bytearray(), array("Q"), bytearray(), array("Q")

    def _save_checkpoint(self, state: dict) -> None:
        checkpoint = {"key": self.key, "rows": self.rows, "bytes": self.bytes, "state": state}
        _write_json(self.partial / CHECKPOINT, checkpoint)

    # ------------------------------------------------------------------ finishing

    def finish(self, state: dict, source: dict) -> CorpusStore:
        """Flush, check ids, write the id map and manifest, and rename the store into place."""
        self.flush(state)
        if self.rows == 0:
            raise DataError(f"{self.what} holds no passages; a corpus store needs at least one")
        self._close_files()
        hashes = np.fromfile(self.partial / RAW_HASHES, dtype="<u8")
        order = np.argsort(hashes, kind="stable")
        hashes = hashes[order]
        self._check_duplicates(hashes, order)
        hashes.tofile(self.partial / layout.ID_HASHES)
        order.astype(layout.row_dtype(self.rows)).tofile(self.partial / layout.ID_ROWS)
        del hashes, order
        with open(self.partial / layout.OFFSETS, "ab") as handle:
            handle.write(struct.pack("<3Q", self.bytes, self.bytes, self.bytes))
        sizes = {name: (self.partial / name).stat().st_size for name in layout.FILES}
        manifest = {"format": layout.FORMAT, "version": layout.VERSION, "name": self.name, "count": self.rows,
                    "fingerprint": self._digest.hexdigest(), "source": source,
                    "row_dtype": layout.row_dtype(self.rows), "bytes": sizes}
        _write_json(self.partial / layout.MANIFEST, manifest)
        for name in (RAW_HASHES, ORIGINS, CHECKPOINT):
            (self.partial / name).unlink()
        self._swap_into_place()
        return CorpusStore.open(self.out_dir)

    def _swap_into_place(self) -> None:
        old = self.out_dir.with_name(f".{self.out_dir.name}.old{os.getpid()}")
        if self.out_dir.exists():  # --overwrite (checked on entry)
            os.replace(self.out_dir, old)
        os.replace(self.partial, self.out_dir)
        shutil.rmtree(old, ignore_errors=True)

    def _check_duplicates(self, hashes: np.ndarray, order: np.ndarray) -> None:
        """DataError naming both lines of the first repeated id (equal hashes whose ids also match)."""
        same = np.flatnonzero(hashes[1:] == hashes[:-1])
        if not len(same):
            return
        with open(self.partial / layout.PASSAGES, "rb") as blob_file, \
                open(self.partial / layout.OFFSETS, "rb") as offsets_file:
            blob = mmap.mmap(blob_file.fileno(), 0, access=mmap.ACCESS_READ)
            offsets = mmap.mmap(offsets_file.fileno(), 0, access=mmap.ACCESS_READ)
            try:
                pairs = []  # (later row, earlier row) per repeated id
                start = 0
                while start < len(same):  # each run of equal hashes: compare the ids within it
                    end = start
                    while end + 1 < len(same) and same[end + 1] == same[end] + 1:
                        end += 1
                    first_seen: dict[bytes, int] = {}
                    for row in sorted(int(r) for r in order[same[start]:same[end] + 2]):
                        id_start, title_start = struct.unpack_from("<2Q", offsets, 24 * row)
                        seen = blob[id_start:title_start - 1]
                        if seen in first_seen:
                            pairs.append((row, first_seen[seen]))
                        else:
                            first_seen[seen] = row
                    start = end + 1
                if not pairs:
                    return  # hash collisions of different ids: the lookup compares ids
                later, earlier = min(pairs)
                id_start, title_start = struct.unpack_from("<2Q", offsets, 24 * later)
                pid = blob[id_start:title_start - 1].decode("utf-8")
            finally:
                blob.close()
                offsets.close()
        origins = np.fromfile(self.partial / ORIGINS, dtype="<u8")
        more = f" ({len(pairs) - 1} more repeated ids)" if len(pairs) > 1 else ""
        raise DataError(f"{self._where(int(origins[later]))}: duplicate passage id {pid!r} (first at "
                        f"{self._where(int(origins[earlier]))}){more}; passage ids must be unique")

    def _where(self, origin: int) -> str:
        return self.labels[origin >> ORIGIN_SHIFT].format(origin & ((1 << ORIGIN_SHIFT) - 1))


# ---------------------------------------------------------------------------------------------- formats


def _parse_tsv(path: Path, lineno: int, raw: bytes) -> Record | None:
    line = decode_line(path, lineno, raw).rstrip("\r\n")
    if not line.strip():
        return None
    if '"' in line:
        try:
            fields = next(csv.reader([line], delimiter="\t", strict=True))
        except csv.Error as exc:
            raise DataError(f"{path}:{lineno}: not a DPR TSV line ({exc}); quoted fields need a closing quote") \
                from None
    else:
        fields = line.split("\t")
    if len(fields) != 3:
        raise DataError(f"{path}:{lineno}: expected 3 tab-separated columns (id, text, title), found {len(fields)}")
    if lineno == 1 and [f.strip().lower() for f in fields] == TSV_HEADER:
        return None
    pid, text, title = fields
    if not pid.strip():
        raise DataError(f"{path}:{lineno}: empty passage id in the first column")
    return pid.strip(), normalize_ws(title), normalize_ws(text)


def _parse_jsonl(path: Path, lineno: int, raw: bytes) -> Record | None:
    record = parse_json_line(path, lineno, raw)
    if record is None:
        return None
    passage = user_passage(path, lineno, record)
    return passage.id, passage.title, passage.text


def _parse_flashrag(path: Path, lineno: int, raw: bytes) -> Record | None:
    record = parse_json_line(path, lineno, raw)
    if record is None:
        return None
    pid, contents = record.get("id"), record.get("contents")
    if not _is_id(pid) or not isinstance(contents, str):
        raise DataError(f"{path}:{lineno}: a FlashRAG passage needs fields 'id' and a string 'contents' "
                        '("Title"\\ntext)')
    title, text = split_contents(contents)
    return str(pid), title, text


PARSERS: dict[str, Callable[[Path, int, bytes], Record | None]] = {
    "dpr-tsv": _parse_tsv, "jsonl": _parse_jsonl, "flashrag": _parse_flashrag}


def _is_gzip(path: Path) -> bool:
    return path.suffix.lower() == ".gz"


def detect_format(path: Path) -> str:
    """``dpr-tsv`` for .tsv; for .jsonl/.json, ``flashrag`` if the first record has ``contents`` but no ``text``."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".tsv"):
        return "dpr-tsv"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        opener = gzip.open if _is_gzip(path) else open
        try:
            with opener(path, "rb") as handle:
                for raw in handle:
                    if raw.strip():
                        try:
                            first = json.loads(raw)
                        except ValueError:
                            return "jsonl"  # the parser reports the bad line with its number
                        is_flashrag = isinstance(first, dict) and "contents" in first and "text" not in first
                        return "flashrag" if is_flashrag else "jsonl"
        except (OSError, EOFError) as exc:
            raise DataError(f"cannot read {path}: {exc}") from None
        return "jsonl"
    raise DataError(f"cannot tell the format of {path} from its name; pass --format dpr-tsv, jsonl or flashrag")


def estimate_bytes(sources: Sequence[Path]) -> int:
    """About how many bytes a store of these files takes (gzipped text counted as 4x its size)."""
    text = sum(p.stat().st_size * (4 if _is_gzip(p) else 1) for p in sources)
    return int(text * 1.15) + (1 << 20)


def _partial_bytes(out_dir: Path) -> int:
    partial = out_dir.with_name(out_dir.name + ".partial")
    return sum(f.stat().st_size for f in partial.iterdir() if f.is_file()) if partial.is_dir() else 0


def ingest(source: str | Path | Sequence[str | Path], out_dir: str | Path, name: str | None = None,
           fmt: str = "auto", progress: bool = True, *, overwrite: bool = False,
           chunk_bytes: int = CHUNK_BYTES) -> CorpusStore:
    """Stream one or more passage files, in order, into a store at ``out_dir``; returns it opened.

    Rerunning after a crash or a kill resumes where the last checkpoint left off and ends with the
    same store (fingerprint included) as an uninterrupted run. ``name``: the store's name
    (default: the folder's). See the module docstring for formats and errors.
    """
    paths = [Path(source)] if isinstance(source, (str, Path)) else [Path(s) for s in source]
    if not paths:
        raise DataError("no source files to ingest")
    for path in paths:
        if not path.is_file():
            raise DataError(f"no such file {path}")
    if fmt != "auto" and fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}: use auto, {', '.join(FORMATS)}")
    formats = [detect_format(p) if fmt == "auto" else fmt for p in paths]
    out_dir = Path(out_dir)
    name = name or out_dir.name
    key = {"kind": "ingest", "name": name,
           "sources": [{"path": str(p.resolve()), "format": f, "bytes": p.stat().st_size,
                        "mtime_ns": p.stat().st_mtime_ns} for p, f in zip(paths, formats)]}
    check_disk_space(out_dir.parent, max(0, estimate_bytes(paths) - _partial_bytes(out_dir)))
    sizes = [p.stat().st_size for p in paths]
    source_info = {"kind": "ingest", "files": [{"path": str(p.resolve()), "format": f, "bytes": s}
                                               for p, f, s in zip(paths, formats, sizes)]}
    labels = [f"{p}:{{}}" for p in paths]
    what = ", ".join(str(p) for p in paths)
    with StoreWriter(out_dir, name, key, labels, what, overwrite=overwrite, chunk_bytes=chunk_bytes) as writer, \
            progress_bar(disable=not progress) as bar:
        state = writer.state or {"file": 0, "offset": 0, "line": 0}
        if writer.resumed_rows:
            bar.console.print(f"resuming {name}: {writer.resumed_rows:,} passages were already written")
        mib = 2**20
        task = bar.add_task(f"ingest {name} (MiB read)", total=math.ceil(sum(sizes) / mib))
        for index in range(state["file"], len(paths)):
            path, parse = paths[index], PARSERS[formats[index]]
            offset, lineno = (state["offset"], state["line"]) if index == state["file"] else (0, 0)
            done_before = sum(sizes[:index])
            try:
                with open(path, "rb") as raw:
                    handle = gzip.GzipFile(fileobj=raw) if _is_gzip(path) else raw
                    handle.seek(offset)
                    for line in handle:
                        lineno += 1
                        offset += len(line)
                        record = parse(path, lineno, line)
                        if record is not None:
                            writer.add(*record, index, lineno)
                        if writer.due:
                            writer.flush({"file": index, "offset": offset, "line": lineno})
                            bar.update(task, completed=(done_before + raw.tell()) // mib)
            except (EOFError, gzip.BadGzipFile) as exc:
                raise DataError(f"{path}:{lineno + 1}: cannot read on ({exc}); the file is truncated or corrupt") \
                    from None
            bar.update(task, completed=(done_before + sizes[index]) // mib)
        return writer.finish({"file": len(paths), "offset": 0, "line": 0}, source_info)
