"""Model versions (registry), A/B verdicts with statistics, and progressive rollout through the gateway's admin API."""
