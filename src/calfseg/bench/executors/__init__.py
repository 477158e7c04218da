"""Where the runs of a benchmark train: in this process one after another (``--jobs 1``),
in worker processes on this machine (:mod:`.local`, ``--jobs N``) or as Ray tasks on a
cluster (:mod:`.ray_tasks`, ``--executor ray``). Every executor calls the same
:func:`.task.execute` per run, so a run trains, fails and resumes the same way everywhere
(docs/scale.md)."""

from calfseg.bench.executors.dispatch import Execution, ExecutionError, plan_execution
from calfseg.bench.executors.task import RunEvent, RunTask, execute

__all__ = ["Execution", "ExecutionError", "RunEvent", "RunTask", "execute", "plan_execution"]
