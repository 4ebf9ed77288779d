"""Adapters, one per real system. Scenarios and runbook steps get them from the drill context and
never build clients themselves; each adapter translates its library's errors into drillbook's."""
