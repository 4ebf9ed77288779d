"""The database and registry adapters translate failures into drillbook's errors (no lab needed)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from harness.errors import Inconclusive, TargetUnreachable
from harness.inventory import MlflowTarget, PostgresTarget, Secret
from harness.targets.database import Database, ToolFailed
from harness.targets.registry import MlflowRegistry, RegistryError
from lab.procs import free_port


def test_database_on_a_closed_port_is_unreachable() -> None:
    port = free_port()
    db = Database(PostgresTarget("pg", "127.0.0.1", port, "postgres", Secret("pw"), True),
                  connect_timeout=2)
    with pytest.raises(TargetUnreachable) as err:
        db.ping()
    assert f"127.0.0.1:{port}" in str(err.value)
    assert "pw" not in str(err.value)


def test_a_file_that_is_not_a_dump_is_a_tool_failure(tmp_path: Path) -> None:
    junk = tmp_path / "junk.dump"
    junk.write_bytes(b"not a pg_dump archive")
    db = Database(PostgresTarget("pg", "127.0.0.1", free_port(), "postgres", Secret("pw"), True))
    with pytest.raises(ToolFailed) as err:
        db.list_archive(junk)
    assert isinstance(err.value, Inconclusive)
    assert "pg_restore --list failed" in str(err.value)


def test_registry_on_a_closed_port_is_unreachable() -> None:
    reg = MlflowRegistry(MlflowTarget("mlflow", f"http://127.0.0.1:{free_port()}", True),
                         timeout_s=2)
    with pytest.raises(TargetUnreachable):
        reg.ping()
    assert reg.wait_ready(0.3, interval_s=0.1) is not None


class _Broken(BaseHTTPRequestHandler):
    """Answers like an MLflow server whose database is gone."""

    def do_GET(self) -> None:
        body = json.dumps({"error_code": "INTERNAL_ERROR",
                           "message": 'database "mlflow" does not exist'}).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def broken_registry() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Broken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_registry_error_answer_carries_status_and_code(broken_registry: str) -> None:
    reg = MlflowRegistry(MlflowTarget("mlflow", broken_registry, True))
    with pytest.raises(RegistryError) as err:
        reg.registered_models()
    assert err.value.status == 500 and err.value.code == "INTERNAL_ERROR"
    assert 'database "mlflow" does not exist' in str(err.value)
