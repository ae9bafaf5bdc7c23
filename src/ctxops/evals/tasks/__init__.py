"""The task registry: RULER-equivalent synthetic tasks and QA over the user's documents, one file per family.

``build_sample(task, length, depth, seed, count_tokens)`` builds one item, deterministic by seed; ``TASKS`` maps
every registered name to its :class:`TaskInfo`. Importing this package registers the built-in families.
"""

from ctxops.evals.tasks import common_words, frequent_words, niah, qa, variable_tracking  # noqa: F401  (registers)
from ctxops.evals.tasks.base import (
    TASKS,
    BuildContext,
    QARecord,
    TaskError,
    TaskInfo,
    build_sample,
    get_task,
    register_task,
)
from ctxops.evals.tasks.qa import read_qa_file

RULER_TASKS = tuple(name for name in TASKS if name != "qa")

__all__ = [
    "RULER_TASKS",
    "TASKS",
    "BuildContext",
    "QARecord",
    "TaskError",
    "TaskInfo",
    "build_sample",
    "get_task",
    "read_qa_file",
    "register_task",
]
