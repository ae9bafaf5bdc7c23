"""Targets: the in-process engine (:class:`LocalTarget`) and OpenAI-compatible endpoints (:class:`EndpointTarget`).

``LocalTarget`` is imported lazily (it loads torch); the endpoint target needs only httpx.
"""

from ctxops.evals.targets.base import Completion, Target, TargetError
from ctxops.evals.targets.endpoint import Api, EndpointConfig, EndpointTarget

__all__ = ["Api", "Completion", "EndpointConfig", "EndpointTarget", "Target", "TargetError"]
