"""Optional parts of the lab beyond the core (store, backups, one node).

A component brings up its own processes after the core is up, stops them before the core stops,
reports its parts in ``lab status``, and adds its targets and assets to the lab's inventory.
Register a new one by adding its factory to :data:`COMPONENTS`. A component may also define
``settle(lab, progress)``: called once every component is up, to wait for work its ``up`` started
(so that the wait overlaps the other components' start-up).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from lab.ceph import DaemonState
    from lab.stack import Lab

Progress = Callable[[str], None]


class LabComponent(Protocol):
    name: str

    def up(self, lab: Lab, progress: Progress) -> None: ...

    def down(self, lab: Lab) -> None: ...

    def status(self, lab: Lab) -> list[DaemonState]: ...

    def contribute(self, lab: Lab, inventory: dict[str, Any]) -> None:
        """Add targets, assets and objectives to the inventory document being written."""
        ...


def _data() -> LabComponent:
    from lab.data import DataComponent  # imported late: it imports the stack's helpers
    return DataComponent()


def _postgres() -> LabComponent:
    from lab.postgres_component import PostgresComponent  # imported late: it imports lab.stack
    return PostgresComponent()


def _registry() -> LabComponent:
    from lab.registry import RegistryComponent
    return RegistryComponent()


#: Factories of the components `lab up` starts, in order.
COMPONENTS: list[Callable[[], LabComponent]] = [_data, _postgres, _registry]


def _fleet() -> LabComponent:
    from lab.fleet import Fleet

    return Fleet()


COMPONENTS.append(_fleet)


def _sshd() -> LabComponent:
    from lab.sshd import SshServer  # last: it declares hosts for the other parts' targets

    return SshServer()


COMPONENTS.append(_sshd)


def components() -> list[LabComponent]:
    return [factory() for factory in COMPONENTS]


def _kube() -> LabComponent:
    from lab.kubelab import KubeLab  # the lab's Kubernetes API; needs the fleet's models

    return KubeLab()


COMPONENTS.append(_kube)
