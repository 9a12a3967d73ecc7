"""Download links of archived Parquet files: presigned S3 GET URLs when the archive is a bucket (no
call to AWS: a presigned URL is computed from the Lambda's own credentials), URLs through NGINX's
/archive/ location when it is a local directory (`make run`, compose)."""

from __future__ import annotations

import threading
from urllib.parse import quote, urlsplit

from .config import Settings

_lock = threading.Lock()
_s3 = None


def _client():
    global _s3
    if _s3 is None:
        with _lock:
            if _s3 is None:
                import boto3
                from botocore.config import Config

                # SigV4, so links work in every region and for SSE-encrypted objects.
                _s3 = boto3.client("s3", config=Config(signature_version="s3v4"))
    return _s3


def forget_client() -> None:
    """Tests and benchmarks change the AWS environment between requests."""
    global _s3
    with _lock:
        _s3 = None


def download_url(settings: Settings, path: str) -> str | None:
    """A URL a client can GET (pandas.read_parquet, DuckDB, curl) for the file at `path` (relative to
    ARCHIVE_URL); None when the deployment publishes no download location."""
    archive = settings.archive_url or ""
    if archive.startswith("s3://"):
        parts = urlsplit(archive)
        prefix = parts.path.strip("/")
        key = f"{prefix}/{path}" if prefix else path
        return _client().generate_presigned_url("get_object", Params={"Bucket": parts.netloc, "Key": key},
                                                ExpiresIn=settings.archive_url_expires_s)
    if settings.archive_download_url:
        return f"{settings.archive_download_url}/{quote(path, safe='/=')}"
    return None


def expires_in(settings: Settings) -> int | None:
    return settings.archive_url_expires_s if (settings.archive_url or "").startswith("s3://") else None
