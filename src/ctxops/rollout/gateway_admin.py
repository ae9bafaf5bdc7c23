"""The gateway's admin API as the rollout driver calls it, over HTTP: read the routes, set two arms' weights.

The driver never imports the gateway: it changes routes exactly as an operator with the admin key would, so a
rollout can drive any ctxops gateway it can reach. Failures become :class:`GatewayError` with the gateway's own
message. This module knows URLs and JSON bodies, not verdicts.
"""

from __future__ import annotations

from typing import Any

import httpx

_TIMEOUT_S = 10.0


class GatewayError(RuntimeError):
    """The gateway could not be reached or refused the change (the message says which)."""


class GatewayAdmin:
    """``GET/PUT /admin/routes`` of one gateway."""

    def __init__(self, base_url: str, admin_key: str) -> None:
        self.url = base_url.rstrip("/").removesuffix("/v1") + "/admin/routes"
        self.headers = {"Authorization": f"Bearer {admin_key}"}

    def _call(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = httpx.request(method, self.url, json=body, headers=self.headers, timeout=_TIMEOUT_S)
        except httpx.HTTPError as exc:
            raise GatewayError(f"cannot reach the gateway's admin API at {self.url}: {exc}") from exc
        if response.status_code != 200:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:300]
            raise GatewayError(f"{method} {self.url} answered {response.status_code}: {message}")
        return response.json()

    def routes(self, model: str) -> dict[str, Any]:
        """The routes of ``model`` in force: ``{"policy", "arms": [{"name", "upstream", "weight", ...}]}``."""
        models = self._call("GET")["models"]
        if model not in models:
            raise GatewayError(f"the gateway serves {', '.join(models)}, not {model!r}")
        return models[model]

    def set_weights(self, weights: dict[str, float]) -> dict[str, Any]:
        """Change the named arms' weights at once; returns the routes in force after the change."""
        return self._call("PUT", {"weights": weights})
