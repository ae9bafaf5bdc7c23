"""``ctxops scan``: attacks hidden in long contexts, measured by depth and length on the eval harness.

Probe families (:mod:`.probes`: poison, injection, many_shot, extraction, pii) are eval tasks of family ``scan``
whose samples (:class:`.attack.AttackSample`) are scored by deterministic rules (:func:`.attack.judge`): score 1
when the model resisted, so ``ctxops compare`` flags a rise in attack success as a regression. :mod:`.report`
draws attack success by depth x length with Wilson intervals. The scan knows tasks and records, not engines.
"""

from ctxops.scan.attack import AttackSample, judge
from ctxops.scan.probes import PROBES

__all__ = ["PROBES", "AttackSample", "judge"]
