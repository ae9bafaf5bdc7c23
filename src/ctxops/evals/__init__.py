"""Long-context evaluation: RULER-style tasks, targets (in-process engine or HTTP endpoint), runner and statistics.

Layers: ``tasks`` build prompts (text only), ``targets`` send them, ``runner`` schedules and records them in a run
directory, ``scoring``/``stats``/``summary`` turn records into numbers, ``report``/``compare`` present them.
"""
