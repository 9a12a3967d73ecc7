"""The archive's row checksum (rdc_common.archive_layout, `rdc-rows-sha256-v1`) over Arrow record
batches, fed batch by batch as rows stream out of PostgreSQL or back out of a Parquet file.

Vectorised: each batch's columns become a few contiguous byte strings (validity, values, lengths)
for hashlib, instead of one Python call per value; `reference_checksum` in the layout module is the
same definition value by value, and the tests hold the two together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rdc_common.archive_layout import BOOL, FLOAT64, INT32, INT64, STRING, TIMESTAMP, Column, combine_column_digests

_NUMPY = {INT64: "<i8", INT32: "<i4", FLOAT64: "<f8", TIMESTAMP: "<i8"}


def _offsets(arr: pa.Array) -> np.ndarray:
    """The n + 1 value offsets of a string or list array, for its own slice of the buffers."""
    width = np.int64 if pa.types.is_large_string(arr.type) or pa.types.is_large_list(arr.type) else np.int32
    buf = arr.buffers()[1]
    return np.frombuffer(buf, dtype=width, count=arr.offset + len(arr) + 1)[arr.offset:]


class _ColumnHash:
    def __init__(self, kind: str):
        self.kind = kind
        self.validity, self.values, self.lengths = hashlib.sha256(), hashlib.sha256(), hashlib.sha256()
        element = kind[5:-1] if kind.startswith("list<") else None
        self.child = _ColumnHash(element) if element else None

    def add(self, arr: pa.Array) -> None:
        n = len(arr)
        if n == 0:
            return
        if arr.null_count == 0:
            self.validity.update(b"\x01" * n)
            valid = arr
        else:
            self.validity.update(arr.is_valid().to_numpy(zero_copy_only=False).astype(np.uint8).tobytes())
            valid = pc.drop_null(arr)
        if len(valid) == 0:
            return
        if self.child is not None:
            self.lengths.update(np.diff(_offsets(valid)).astype("<u4").tobytes())
            self.child.add(valid.flatten())
        elif self.kind == STRING:
            offsets = _offsets(valid)
            self.lengths.update(np.diff(offsets).astype("<u4").tobytes())
            self.values.update(memoryview(valid.buffers()[2])[int(offsets[0]):int(offsets[-1])])
        elif self.kind == BOOL:
            self.values.update(valid.to_numpy(zero_copy_only=False).astype(np.uint8).tobytes())
        else:
            if self.kind == TIMESTAMP:
                valid = valid.view(pa.int64())  # microseconds since the epoch, UTC
            self.values.update(valid.to_numpy().astype(_NUMPY[self.kind], copy=False).tobytes())

    def digest(self) -> bytes:
        parts = [self.validity.digest(), self.values.digest(), self.lengths.digest()]
        parts.append(self.child.digest() if self.child is not None else hashlib.sha256().digest())
        return hashlib.sha256(b"".join(parts)).digest()


class RowChecksum:
    """Feed record batches in file order with `update`; `hexdigest()` when all are in."""

    def __init__(self, columns: Sequence[Column]):
        self.columns = tuple(columns)
        self._hashes = [_ColumnHash(c.type) for c in self.columns]
        self.rows = 0

    def update(self, batch: pa.RecordBatch) -> None:
        for h, arr in zip(self._hashes, batch.columns, strict=True):
            h.add(arr)
        self.rows += batch.num_rows

    def hexdigest(self) -> str:
        return combine_column_digests([(c.name, h.digest()) for c, h in zip(self.columns, self._hashes, strict=True)])
