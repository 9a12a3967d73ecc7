"""A bounded on-disk queue of row batches for when PostgreSQL cannot take them.

Each batch is one fsynced file named by a sequence number, so replay keeps arrival
order and a crash leaves only whole files. When the size limit is reached the batch is
not written; the caller records what was dropped as a gap, never silently.
"""

from __future__ import annotations

import os
import pickle
import uuid
from pathlib import Path

from .writer import Batch

_SUFFIX = ".batch"


class Spool:
    def __init__(self, directory: Path | str, max_bytes: int):
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self._seq = 0
        self._bytes = 0

    def open(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        for tmp in self.dir.glob("*.tmp"):  # a write cut short by a crash never completed
            tmp.unlink()
        files = self._files()
        self._bytes = sum(f.stat().st_size for f in files)
        self._seq = int(files[-1].name.split(".")[0]) if files else 0

    def _files(self) -> list[Path]:
        return sorted(self.dir.glob("*" + _SUFFIX))

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._files())

    def put(self, batch: Batch) -> bool:
        """Store the batch durably; False (nothing written) when it would exceed the limit."""
        data = pickle.dumps((batch.table, batch.batch_id.bytes, batch.rows), protocol=5)
        if self._bytes + len(data) > self.max_bytes:
            return False
        self._seq += 1
        final = self.dir / f"{self._seq:012d}.{batch.table}{_SUFFIX}"
        tmp = final.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._bytes += len(data)
        return True

    def peek(self) -> tuple[Path, Batch] | None:
        """The oldest spooled batch, or None when the spool is empty."""
        files = self._files()
        if not files:
            return None
        table, batch_id, rows = pickle.loads(files[0].read_bytes())
        return files[0], Batch(table, rows, uuid.UUID(bytes=batch_id))

    def remove(self, path: Path) -> None:
        size = path.stat().st_size
        path.unlink()
        self._bytes -= size
