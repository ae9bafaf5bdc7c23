"""HTTP serving: an OpenAI-compatible server on the embedded engine, or a gateway in front of upstream servers.

``ctxops serve`` builds a :class:`~ctxops.serve.config.ServerConfig` and a backend and hands them to
:func:`ctxops.serve.server.run`; :func:`ctxops.serve.app.create_app` gives the bare ASGI app for embedding.
"""
