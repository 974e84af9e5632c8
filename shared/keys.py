"""API keys: ``sh_`` + 32 random URL-safe bytes; only the SHA-256 and a display prefix are stored."""

from __future__ import annotations

import hashlib
import secrets

from shared.constants import API_KEY_DISPLAY_CHARS, API_KEY_PREFIX


def hash_key(key: str) -> bytes:
    # Keys carry 256 random bits, so a fast hash suffices: there is nothing to brute-force.
    return hashlib.sha256(key.encode()).digest()


def new_key() -> tuple[str, str, bytes]:
    """A new key, its display prefix and its hash."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key[:API_KEY_DISPLAY_CHARS], hash_key(key)
