"""Proof, for the type checker, that each real adapter and its fake satisfy the same protocol.

Nothing here runs: ``mypy --strict`` (``make typecheck``) reads the functions below, and an
adapter or a fake that drifts from its protocol in harness/targets/protocols.py (a method
missing, renamed, or with another signature) fails the type check. Whether they also *mean*
the same is what the contract tests in tests/contracts/ check at run time.
"""

from __future__ import annotations

from harness.fakes.database import FakeDatabase
from harness.fakes.fleet import (
    FakeFrontend,
    FakeLoadBalancer,
    FakeNodeHost,
    FakeOrchestrator,
    FakeReplica,
)
from harness.fakes.inference import FakeEndpoint
from harness.fakes.job import FakeJob
from harness.fakes.registry import FakeRegistry
from harness.fakes.restic import FakeRepo
from harness.fakes.rgwadmin import FakeRgwAdmin
from harness.fakes.store import FakeStore
from harness.targets.database import Database
from harness.targets.fleet import NodeHost, Orchestrator
from harness.targets.inference import InferenceEndpoint
from harness.targets.job import Job
from harness.targets.loadbalancer import LoadBalancer
from harness.targets.protocols import (
    BackupRepo,
    DatabaseAPI,
    EndpointAPI,
    JobAPI,
    LoadBalancerAPI,
    NodeHostAPI,
    ObjectStore,
    OrchestratorAPI,
    RegistryAPI,
    RgwAdminAPI,
    ServingEndpoint,
)
from harness.targets.registry import MlflowRegistry
from harness.targets.restic import ResticRepo
from harness.targets.rgwadmin import RgwAdmin
from harness.targets.s3 import S3Store


def stores(real: S3Store, fake: FakeStore) -> list[ObjectStore]:
    return [real, fake]


def backup_repos(real: ResticRepo, fake: FakeRepo) -> list[BackupRepo]:
    return [real, fake]


def rgw_admins(real: RgwAdmin, fake: FakeRgwAdmin) -> list[RgwAdminAPI]:
    return [real, fake]


def jobs(real: Job, fake: FakeJob) -> list[JobAPI]:
    return [real, fake]


def serving_endpoints(real: InferenceEndpoint, fake: FakeEndpoint) -> list[ServingEndpoint]:
    return [real, fake]


def fleet_endpoints(real: InferenceEndpoint, frontend: FakeFrontend,
                    replica: FakeReplica) -> list[EndpointAPI]:
    return [real, frontend, replica]


def databases(real: Database, fake: FakeDatabase) -> list[DatabaseAPI]:
    return [real, fake]


def registries(real: MlflowRegistry, fake: FakeRegistry) -> list[RegistryAPI]:
    return [real, fake]


def balancers(real: LoadBalancer, fake: FakeLoadBalancer) -> list[LoadBalancerAPI]:
    return [real, fake]


def orchestrators(real: Orchestrator, fake: FakeOrchestrator) -> list[OrchestratorAPI]:
    return [real, fake]


def nodes(real: NodeHost, fake: FakeNodeHost) -> list[NodeHostAPI]:
    return [real, fake]
