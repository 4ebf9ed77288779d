"""The runbook step library: recovery steps that scenarios compose instead of inheriting.

A scenario's ``runbook()`` returns a list of :class:`harness.scenario.RunbookStep`. The steps here
are built by small factories that take the drill context and a typed per-drill state object and
return a ``RunbookStep``; the state is a dataclass with defaults (never a class attribute set in
a later phase), created in the scenario's ``__init__`` and filled in by preflight, baseline and
the steps. A step returns normally when done, raises ``StepFailed`` when its check says no and
``Inconclusive`` when it could not run.

Modules, by the kind of thing recovered:

- ``objects``: objects in an S3 store restored from restic or from bucket versions (locate the
  restore point, pull, verify SHA-256);
- ``serving``: an inference endpoint (redeploy, smoke test, mark ready, switch traffic);
- ``database``: PostgreSQL dumps (locate the dump, pull, restore, verify tables);
- ``fleet``: serving replicas on nodes (take out, wait for rescheduling, back in rotation);
- ``jobs``: backup and replication jobs (classify, rerun, verify the snapshot).
"""
