"""The job system: job rows and their state machine (`repository`), the request each job
kind carries (`specs`), the queue that dispatches jobs to an executor, in-process or
Celery (`queue`), and the runner that claims a job and calls its pipeline (`runner`).

Nothing is re-exported here: `repository` sits below `pipelines/` (pipelines report
progress through it), while `specs`, `queue` and `runner` sit above it (they run
pipelines), so importing this package must not pull in either side.
"""
