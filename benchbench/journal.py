"""The run file's journal: saving after every benchmark at a cost that does not grow with the run.

Rewriting the whole run file after each benchmark costs time in proportion to the records
already in it, so a run of n benchmarks spends O(n^2) saving: a 10,000-benchmark sweep
took 13 ms a benchmark at the start and 72 ms at the 1,500th, about 40 minutes in all.
Instead, :class:`Journal` writes the whole file once (atomically, as before), then appends
each finished record as one JSON line to ``<run file>.journal`` beside it, and writes the
whole file again when the run ends (ratios, derived fields, ``complete``) and removes the
journal. A kill (``kill -9``, the out-of-memory killer) at any moment loses at most the
benchmark in progress:

* the journal's first line names the exact text of the run file it continues (its
  SHA-256), so a journal left beside another version of the file (a kill between the
  final write and the removal, a new run written over an old one) is ignored;
* a last line cut short by a kill is ignored; lines are replayed in order, a later record
  of a benchmark (its next round) replacing the earlier one.

:func:`replay` is what :meth:`benchbench.results.RunResult.read_json` applies, so ``report``,
``compare``, ``history`` and ``--resume`` of a killed run see every benchmark that finished.
The lines are flushed to the operating system at once (a killed process loses nothing
written), not forced to the disk: a power cut may lose the last ones.

This module knows nothing of records beyond their ``benchmark`` name: the runner hands it
the run file's text and JSON-safe records, :mod:`benchbench.results` validates what it reads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import IO, Any

from benchbench.errors import UsageError
from benchbench.outputs import atomic_write_text

SUFFIX = ".journal"
FORMAT = 1


def journal_path(run_file: str | os.PathLike[str]) -> Path:
    """Where the journal of a run file lives: beside it, ``NAME.json.journal``."""
    path = Path(run_file)
    return path.with_name(path.name + SUFFIX)


def fingerprint(text: str) -> str:
    """What a journal's first line says of the run file text it continues."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class Journal:
    """Keeps one run file current: whole at :meth:`start` and :meth:`finish`, a line per record between."""

    def __init__(self, run_file: str | os.PathLike[str]) -> None:
        self.run_file = Path(run_file)
        self.path = journal_path(self.run_file)
        self._handle: IO[str] | None = None

    @property
    def started(self) -> bool:
        return self._handle is not None

    def start(self, text: str) -> None:
        """Write the run file (``text``, the whole of it) and begin an empty journal that continues it.

        The file first, then the journal: a kill in between leaves the new file and the old
        journal, which names the old text and is ignored.
        """
        self._close()
        atomic_write_text(self.run_file, text, what="run file")
        try:
            self._handle = self.path.open("w", encoding="utf-8")
            self._write({"journal": FORMAT, "run_file_sha256": fingerprint(text)})
        except OSError as exc:
            self._close()
            raise UsageError(f"cannot write the run file's journal {str(self.path)!r}: {exc}") from None

    def append(self, record: dict[str, Any]) -> None:
        """Add one finished record (JSON-safe: :func:`benchbench.results.jsonable`); needs :meth:`start` first."""
        if self._handle is None:
            raise RuntimeError("Journal.append before Journal.start")
        try:
            self._write({"record": record})
        except OSError as exc:
            raise UsageError(f"cannot write the run file's journal {str(self.path)!r}: {exc}") from None

    def finish(self, text: str) -> None:
        """Write the whole run file (``text``) and remove the journal, which it now holds."""
        self._close()
        atomic_write_text(self.run_file, text, what="run file")
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)

    def _write(self, entry: dict[str, Any]) -> None:
        assert self._handle is not None
        # One write call per line, flushed: a kill leaves whole lines, or a cut last one.
        self._handle.write(json.dumps(entry, allow_nan=False) + "\n")
        self._handle.flush()

    def _close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()


def replay(run_file: str | os.PathLike[str], text: str, data: Any) -> Any:
    """``data`` (the run file read from ``run_file``, whose text is ``text``) with the records of
    the journal that continues it; ``data`` itself when there is none (or it continues another
    text, or the file is no run file: its reader says what is wrong with it)."""
    try:
        raw = journal_path(run_file).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return data
    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        return data
    *lines, _cut = raw.split("\n")  # what follows the last line end is a line cut short (or nothing)
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            break  # damaged: nothing after it can be trusted to follow in order
        if not isinstance(entry, dict):
            break
        entries.append(entry)
    if not entries or entries[0].get("run_file_sha256") != fingerprint(text):
        return data
    records = list(data["records"])
    where = {r["benchmark"]: i for i, r in enumerate(records) if isinstance(r, dict) and isinstance(r.get("benchmark"), str)}
    for entry in entries[1:]:
        record = entry.get("record")
        name = record.get("benchmark") if isinstance(record, dict) else None
        if not isinstance(name, str):
            continue
        if name in where:
            records[where[name]] = record
        else:
            where[name] = len(records)
            records.append(record)
    return {**data, "records": records}
