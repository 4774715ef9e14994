"""Background jobs: ``sagestack … --json`` commands run in their own processes, tracked in SQLite.

The web console starts long work (a bias job, an AutoML job, a pipeline run) through this
package, never inside its own process: the pipeline runner swaps stdout and global state, and a
job must not take the server down with it. Each job is one row of a SQLite table under
``SAGESTACK_HOME``; a small runner process (:mod:`sagestack.jobs.runner`) starts the command,
and records its outcome itself, so the table is right even when nobody is watching.
"""

from sagestack.jobs.store import Job, JobConflict, JobStore

__all__ = ["Job", "JobConflict", "JobStore"]
