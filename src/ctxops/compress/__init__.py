"""Model compression with its cost in effective context: retrieval heads, head-aware KV, pruning, distillation.

One file per concept: ``heads`` (retrieval scores), ``head_report`` (their files), ``dense`` (a forward pass that
exposes attention and activations), ``prune`` / ``prune_job``, ``distill`` with ``trainer`` and ``corpus``,
``model_dir`` (the output directory) and ``comparison`` (the before/after eval table). The engine side of the KV
policy lives in :mod:`ctxops.engine.kv_head_policy`.
"""
