"""API-key authentication: ``Authorization: Bearer KEY`` checked in constant time against the configured keys.

Keys never leave this module: requests are logged, routed and counted under a *key id*, a short salted hash
that identifies a key without revealing it. With no keys configured every request is allowed and has no key id.
This module knows headers and hashes, not requests or models.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from ctxops.serve.errors import unauthorized

_KEY_ID_SALT = b"ctxops-key-id:v1:"
_KEY_ID_HEX = 16  # hex chars kept: 64 bits, unique enough to tell keys apart, too short to brute-force a key


def key_id(key: str) -> str:
    """The stable, non-reversible id of an API key (what the request log stores)."""
    return hashlib.sha256(_KEY_ID_SALT + key.encode()).hexdigest()[:_KEY_ID_HEX]


class KeyStore:
    """The configured API keys; :meth:`check` authenticates one request."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._digests = {hashlib.sha256(k.encode()).digest(): key_id(k) for k in keys}

    @property
    def enabled(self) -> bool:
        """Whether requests must carry a key."""
        return bool(self._digests)

    def check(self, authorization: str | None) -> str | None:
        """Return the caller's key id (None when auth is off) or raise a 401.

        Args:
            authorization: the raw ``Authorization`` header, or None when absent.
        """
        if not self.enabled:
            return None
        if not authorization:
            raise unauthorized("Missing API key: send it as 'Authorization: Bearer YOUR_KEY'")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("Malformed Authorization header: expected 'Bearer YOUR_KEY'")
        match = self.identify(token)
        if match is None:
            raise unauthorized("Incorrect API key provided")
        return match

    def identify(self, key: str) -> str | None:
        """The key id of ``key`` if it is one of the configured keys, else None (constant time per key)."""
        digest = hashlib.sha256(key.strip().encode()).digest()
        match = None
        for known, ident in self._digests.items():  # compare against every key: timing reveals nothing
            if hmac.compare_digest(known, digest):
                match = ident
        return match

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of the configured keys."""
        return tuple(self._digests.values())
