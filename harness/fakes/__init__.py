"""In-memory fakes of drillbook's adapters, one module per adapter kind.

Unit tests (and a site's own scenario tests) hand them to ``run_drill(..., adapters=...)`` by
target name. Each fake is kept honest by the contract tests in ``tests/contracts/``, which run the
same assertions against the fake and against the real adapter on the lab.
"""
