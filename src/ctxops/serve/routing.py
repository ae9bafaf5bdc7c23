"""Which upstream serves a request: weighted rendezvous hashing, sticky per user or API key.

Every upstream gets a score ``-weight / ln(u)`` where ``u`` in (0, 1) is a hash of (sticky key, upstream); the
highest score wins. A key therefore always lands on the same upstream (a user stays on one model version), each
upstream wins a share of keys proportional to its weight, adding or removing an upstream moves only the keys it
wins or held, and the full ranking is the fallback order when an upstream fails. Requests with no key are spread at
random by the same rule. This module knows names and weights, not HTTP.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Sequence

_SCALE = 2**64


def _uniform(key: str, node: str) -> float:
    """A deterministic number in (0, 1) for (key, node)."""
    digest = hashlib.sha256(f"{key}\x00{node}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") + 1) / (_SCALE + 1)


def rank(nodes: Sequence[str], weights: Sequence[float], sticky_key: str | None) -> list[int]:
    """Indices of ``nodes`` from first choice to last resort for this key (random order when it is None)."""
    if len(nodes) != len(weights):
        raise ValueError(f"got {len(weights)} weights for {len(nodes)} upstreams")
    key = sticky_key if sticky_key is not None else secrets.token_hex(8)
    scores = [-w / math.log(_uniform(key, node)) for node, w in zip(nodes, weights, strict=True)]
    return sorted(range(len(nodes)), key=lambda i: scores[i], reverse=True)
