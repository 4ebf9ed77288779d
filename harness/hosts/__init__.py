"""Host checks: the drill looks at the machines behind the services, through testinfra.

A site declares its hosts in the inventory's ``hosts:`` section (see
:mod:`harness.inventory.hosts`) and links each to the targets and assets that live on it. Every
drill runs the checks of the hosts linked to its asset in preflight (a failure there is
INCONCLUSIVE and nothing is touched) and again in verify (a failure there is a FAIL).

    spec.py      the typed host declarations (what the inventory parses into)
    backend.py   a declared host -> a testinfra Host (``local`` or ``ssh``), errors redacted
    checks.py    the built-in checks: free space, pinned tools, credential files, clock,
                 serving process, mounts
    site.py      the site's own checks (file, package, service, socket, command)
    drill.py     the runner's hook: which hosts a drill depends on, run, record, judge

This module imports nothing so that :mod:`harness.model` can use :mod:`harness.hosts.spec`.
"""
