"""The pieces of ``scripts/train_builtin.py``: its recipe, training documents and model (not part of ctxops)."""
