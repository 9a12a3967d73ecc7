"""Where archive files go: a local directory or an S3 bucket and prefix (ARCHIVE_URL), behind one
small interface. A file becomes visible at its final path only whole:

- local: written under a temporary name beside its final path (`.part-0.parquet.<pid>.tmp`, which no
  reader's `*.parquet` glob matches and NGINX refuses to serve), fsynced, then renamed over the final
  path with os.replace (atomic on POSIX), and the directory fsynced;
- S3: uploaded straight to its final key. A PUT, and a multipart upload's completion, is atomic: an
  object is seen whole or not at all, never half written, so a temporary key would add a copy and a
  second failure point without adding a guarantee. A killed upload leaves at most an incomplete
  multipart upload, which is invisible and which the bucket's lifecycle rule aborts after 7 days.
  The day's manifest is written last, after every file of the day was read back and verified.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from rdc_common.archive_layout import PARQUET_MEDIA_TYPE


class StoreError(RuntimeError):
    """The archive could not be read or written; the message names where and why."""


class Store:
    url: str

    def staging(self, key: str) -> Path:
        """A local path to write `key`'s content to before `commit`."""
        raise NotImplementedError

    def commit(self, staged: Path, key: str) -> None:
        raise NotImplementedError

    def discard(self, staged: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            staged.unlink()

    @contextlib.contextmanager
    def fetch(self, key: str) -> Iterator[Path]:
        """A local path holding `key`'s content as stored, for the duration of the block."""
        raise NotImplementedError
        yield  # pragma: no cover

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        raise NotImplementedError

    def get_bytes(self, key: str) -> bytes | None:
        raise NotImplementedError

    def size(self, key: str) -> int | None:
        """The stored size of `key`, None when there is none."""
        raise NotImplementedError

    def remove_leftovers(self) -> list[str]:
        """Delete what a killed run may have left (temporary files); returns what was deleted."""
        return []

    def where(self, key: str) -> str:
        return f"{self.url.rstrip('/')}/{key}"

    def close(self) -> None:
        pass


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_TMP_SUFFIX = ".tmp"


class LocalStore(Store):
    def __init__(self, root: Path):
        self.root = root
        self.url = str(root)

    def _final(self, key: str) -> Path:
        return self.root / key

    def staging(self, key: str) -> Path:
        final = self._final(key)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {final.parent} ({type(exc).__name__}: {exc})") from None
        return final.with_name(f".{final.name}.{os.getpid()}{_TMP_SUFFIX}")

    def commit(self, staged: Path, key: str) -> None:
        final = self._final(key)
        try:
            with open(staged, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(staged, final)
            _fsync_dir(final.parent)
        except OSError as exc:
            raise StoreError(f"cannot write {final} ({type(exc).__name__}: {exc})") from None

    @contextlib.contextmanager
    def fetch(self, key: str) -> Iterator[Path]:
        path = self._final(key)
        if not path.is_file():
            raise StoreError(f"{path} is missing")
        yield path

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        staged = self.staging(key)
        try:
            staged.write_bytes(data)
        except OSError as exc:
            raise StoreError(f"cannot write {staged.parent} ({type(exc).__name__}: {exc})") from None
        self.commit(staged, key)

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self._final(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {self._final(key)} ({type(exc).__name__}: {exc})") from None

    def size(self, key: str) -> int | None:
        try:
            return self._final(key).stat().st_size
        except FileNotFoundError:
            return None

    def remove_leftovers(self) -> list[str]:
        removed = []
        if not self.root.is_dir():
            return removed
        for dirpath, _, names in os.walk(self.root):
            for name in names:
                if name.startswith(".") and name.endswith(_TMP_SUFFIX):
                    path = Path(dirpath) / name
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        removed.append(str(path))
        return removed


class S3Store(Store):
    def __init__(self, bucket: str, prefix: str, client=None):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client = client
        self._scratch = Path(tempfile.mkdtemp(prefix="rdc-archive-"))

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            # Few quick retries: an unreachable bucket should end this run with a clear error (the next
            # run retries), not keep it hanging.
            self._client = boto3.client("s3", config=Config(retries={"max_attempts": 3, "mode": "standard"},
                                                            connect_timeout=10, read_timeout=120))
        return self._client

    def key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, what: str, key: str, exc: Exception) -> StoreError:
        return StoreError(f"cannot {what} {self.where(key)} ({type(exc).__name__}: {exc})")

    def staging(self, key: str) -> Path:
        return self._scratch / (key.replace("/", "_") + _TMP_SUFFIX)

    def commit(self, staged: Path, key: str) -> None:
        try:
            self.client.upload_file(str(staged), self.bucket, self.key(key),
                                    ExtraArgs={"ContentType": PARQUET_MEDIA_TYPE})
        except Exception as exc:  # botocore's connection, credential and service errors
            raise self._fail("upload", key, exc) from None
        finally:
            self.discard(staged)

    @contextlib.contextmanager
    def fetch(self, key: str) -> Iterator[Path]:
        local = self._scratch / (key.replace("/", "_") + ".fetched")
        try:
            self.client.download_file(self.bucket, self.key(key), str(local))
        except Exception as exc:
            self.discard(local)
            raise self._fail("download", key, exc) from None
        try:
            yield local
        finally:
            self.discard(local)

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key(key), Body=data, ContentType=content_type)
        except Exception as exc:
            raise self._fail("write", key, exc) from None

    def get_bytes(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(key))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self._fail("read", key, exc) from None
        except Exception as exc:
            raise self._fail("read", key, exc) from None

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self.key(key))["ContentLength"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise self._fail("read", key, exc) from None
        except Exception as exc:
            raise self._fail("read", key, exc) from None

    def close(self) -> None:
        shutil.rmtree(self._scratch, ignore_errors=True)


def open_store(url: str, base: Path | None = None) -> Store:
    """The store ARCHIVE_URL names: `s3://bucket[/prefix]`, or a directory (absolute, or relative to `base`)."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise StoreError(f"ARCHIVE_URL {url!r} names no bucket: use s3://bucket/prefix")
        return S3Store(parts.netloc, parts.path)
    if parts.scheme == "file":
        return LocalStore(Path(parts.path))
    if parts.scheme:
        raise StoreError(f"ARCHIVE_URL {url!r} is neither s3://bucket/prefix nor a local directory")
    path = Path(url).expanduser()
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    return LocalStore(path)
