"""Signatures of stored runs and of the accepted-records snapshot: HMAC-SHA256 under the same secret
that signs the model cache (``PYTEST_PRIVACY_STORE_KEY``).

A signature covers the canonical JSON of what was stored (keys sorted, no whitespace), so it holds
for any re-indentation of the file but not for any change of a value. Without a key nothing is
signed and nothing is checked: a stored run is then only as trustworthy as the storage's write
permissions (a team member, or any CI job with write access, can edit it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any

__all__ = ["SIGNATURE_FIELD", "SIGNING_KEY_ENV", "SignatureError", "sign", "signing_key", "verify"]

SIGNING_KEY_ENV = "PYTEST_PRIVACY_STORE_KEY"  # the model store's variable (engine/store.py): one secret for both
SIGNATURE_FIELD = "signature"


class SignatureError(ValueError):
    """A stored file is unsigned or its signature does not match its content under this run's key."""


def signing_key() -> bytes | None:
    """This process's secret (``PYTEST_PRIVACY_STORE_KEY``), or None when it is not set."""
    secret = os.environ.get(SIGNING_KEY_ENV)
    return secret.encode() if secret else None


def _canonical(payload: dict[str, Any]) -> bytes:
    body = {k: v for k, v in payload.items() if k != SIGNATURE_FIELD}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


def sign(payload: dict[str, Any], key: bytes | None) -> dict[str, Any]:
    """``payload`` with its signature under ``key`` added (unchanged when ``key`` is None)."""
    if key is None:
        return {k: v for k, v in payload.items() if k != SIGNATURE_FIELD}
    return {**payload, SIGNATURE_FIELD: hmac.new(key, _canonical(payload), hashlib.sha256).hexdigest()}


def verify(payload: dict[str, Any], key: bytes | None, where: str) -> dict[str, Any]:
    """``payload`` without its signature, after checking it under ``key`` (no check when ``key`` is
    None); a :class:`SignatureError` naming ``where`` when it is missing or does not match."""
    body = {k: v for k, v in payload.items() if k != SIGNATURE_FIELD}
    if key is None:
        return body
    signature = payload.get(SIGNATURE_FIELD)
    if not isinstance(signature, str):
        raise SignatureError(
            f"{where} is not signed, but {SIGNING_KEY_ENV} is set: it was stored without the key (or its "
            "signature was removed); refusing to trust it. Store it again with the key set."
        )
    expected = hmac.new(key, _canonical(payload), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature, expected):
        raise SignatureError(
            f"{where} fails its signature under {SIGNING_KEY_ENV}: it was edited after it was stored, or "
            "signed with another key; refusing to trust it. Restore the file, or set the key it was signed with."
        )
    return body
