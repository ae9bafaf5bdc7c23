"""The task registry: RULER's 13 task names (our generators) and QA over the user's documents, one file per family.

``build_sample(task, length, depth, seed, count_tokens)`` builds one item, deterministic by seed; ``TASKS`` maps
every registered name to its :class:`TaskInfo`. Importing this package registers the built-in families.
"""

from ctxops.evals.ruler_data import RULER_13
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
from ctxops.evals.tasks.qa import DATASET_TASKS, read_qa_dataset, read_qa_file

RULER_TASKS = RULER_13  # RULER's 13 names, qa_1 and qa_2 included (other modules may register more tasks)

__all__ = [
    "DATASET_TASKS",
    "RULER_TASKS",
    "TASKS",
    "BuildContext",
    "QARecord",
    "TaskError",
    "TaskInfo",
    "build_sample",
    "get_task",
    "read_qa_dataset",
    "read_qa_file",
    "register_task",
]
