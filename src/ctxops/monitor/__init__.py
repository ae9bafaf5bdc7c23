"""Watching a deployment: drift, SLOs, canaries and incidents over the store's request log and eval runs."""
