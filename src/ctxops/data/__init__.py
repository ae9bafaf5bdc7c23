"""``ctxops data``: contamination of eval items by training corpora, near-duplicates, personal data, dataset cards.

It reads corpora as streams of documents (:mod:`ctxops.data.corpus`), eval items from ``ctxops.evals``, and
personal data with ``ctxops.detect``; it knows files and text, not engines or HTTP.
"""
