"""Detectors over text, shared by the gateway's guard, ``ctxops scan`` and ``ctxops data``.

Pure functions of a string: no files, no HTTP, no models. ``pii`` finds personal data; ``injection`` finds
instructions hidden in context.
"""
