"""The probe families; importing this package registers them as eval tasks (family ``scan``)."""

from ctxops.scan.probes import extraction, injection, many_shot, pii, poison  # noqa: F401  (registers)
from ctxops.scan.probes.base import SCAN_FAMILY

PROBES = ("poison", "injection", "many_shot", "extraction", "pii")

__all__ = ["PROBES", "SCAN_FAMILY"]
