"""Reads credentials from AWS Secrets Manager (the collector's only boto3 calls)."""

from __future__ import annotations

import json
from typing import Any


class SecretError(RuntimeError):
    """A secret could not be read or is not the JSON object we expect."""


def read_json_secret(secret_id: str, client=None, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON object stored in `secret_id`; SecretError naming the secret (never its value)."""
    if client is None:
        import boto3  # imported here so local runs without AWS never load it

        client = boto3.client("secretsmanager")
    try:
        raw = client.get_secret_value(SecretId=secret_id)["SecretString"]
    except Exception as exc:  # botocore raises many shapes; the user needs the id and the reason
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        raise SecretError(f"cannot read secret {secret_id}: {code}") from None
    try:
        value = json.loads(raw)
    except ValueError:
        raise SecretError(f"secret {secret_id} is not a JSON object") from None
    if not isinstance(value, dict):
        raise SecretError(f"secret {secret_id} is not a JSON object")
    missing = [k for k in required if not value.get(k)]
    if missing:
        raise SecretError(f"secret {secret_id} lacks the key(s) {', '.join(missing)}")
    return value
