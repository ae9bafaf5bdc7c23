"""Where requests go: the embedded engine on this machine, or OpenAI-compatible upstream servers (gateway mode)."""

from ctxops.serve.backends.base import Backend

__all__ = ["Backend"]
