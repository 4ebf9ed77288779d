"""The lab's inference fleet: GPU nodes, a CPU fallback pool, HAProxy and the orchestrator.

A lab component (see :mod:`lab.components`). ``lab up`` brings up, in ``<lab>/fleet/``:

- N "GPU nodes" (default 3), each a node agent leading its own process group
  (:mod:`lab.controller`), each running one replica of the lab model (``python -m lab.node``
  pulling from the models bucket, verifying SHA-256, warming up). The lab has no GPU: a replica's
  ``--device-ms`` stands for the accelerator time per batch, so a node has finite capacity;
- a fallback pool: processes serving a smaller model (``lab-mlp-cpu``, its own prefix and golden
  file in the models bucket) under the service's name, with a slower stand-in device (CPU);
- HAProxy (Debian) on 127.0.0.1: the replicas as servers, the fallback processes as ``backup``
  servers (traffic only when no primary is up), active health checks on ``/v2/health/ready``,
  the runtime API on a unix socket in the fleet directory;
- the controller, which reschedules a lost node's replica onto a healthy node and points
  HAProxy's server slot at it.

It contributes to the lab inventory: the HAProxy frontend (an ``inference`` target), its runtime
socket (``loadbalancer``), the controller's state (``orchestrator``), each node (``node``, with
its pid file and the command that powers it back on) and the ``lab-mlp-service`` asset
(kind ``inference-service``) that the fleet scenarios drill.

``python -m lab.fleet power-on --dir <lab>/fleet --node gpu-node-2`` restarts one node agent: the
inventory's power-on command for a node (an IPMI or cloud call at a real site).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import DrillbookError
from harness.targets.loadbalancer import LoadBalancer
from harness.targets.s3 import S3Store
from lab.controller import STATE_NAME, FleetConfig, _atomic_json
from lab.netconfig import ModelConfig
from lab.netmodel import generate_model, write_golden
from lab.procs import free_port, proc_alive, read_pid, spawn_detached

if TYPE_CHECKING:
    from lab.ceph import DaemonState
    from lab.components import Progress
    from lab.stack import Lab

FALLBACK_MODEL = "lab-mlp-cpu"
SERVICE_ASSET = "lab-mlp-service"
BACKEND = "inference"
REPO_ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024


class FleetError(DrillbookError):
    pass


def node_names(count: int) -> list[str]:
    return [f"gpu-node-{i}" for i in range(1, count + 1)]


class Fleet:
    name = "fleet"

    def __init__(self, *, nodes: int = 3, fallback: int = 2, device_ms: float = 20.0,
                 fallback_device_ms: float = 60.0, warmup: int = 10) -> None:
        self.node_count = nodes
        self.fallback_count = fallback
        self.device_ms = device_ms
        self.fallback_device_ms = fallback_device_ms
        self.warmup = warmup

    # -- paths -------------------------------------------------------------------------------

    @staticmethod
    def directory(lab: Lab) -> Path:
        return lab.root / "fleet"

    def _ports_path(self, lab: Lab) -> Path:
        return self.directory(lab) / "ports.json"

    def ports(self, lab: Lab) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = json.loads(self._ports_path(lab).read_text())
            return doc
        except (OSError, ValueError):
            return {}

    def frontend_url(self, lab: Lab) -> str:
        return f"http://127.0.0.1:{self.ports(lab).get('frontend', 0)}"

    def socket_path(self, lab: Lab) -> Path:
        return self.directory(lab) / "haproxy.sock"

    def fallback_names(self) -> list[str]:
        return [f"cpu-{i}" for i in range(1, self.fallback_count + 1)]

    def replica_names(self) -> list[str]:
        return [f"replica-{i}" for i in range(1, self.node_count + 1)]

    def fallback_dir(self, lab: Lab) -> Path:
        return lab.root / "assets" / FALLBACK_MODEL

    def balancer(self, lab: Lab) -> LoadBalancer:
        return LoadBalancer(self.socket_path(lab), BACKEND, name="fleet-lb")

    def _marker(self, lab: Lab) -> bytes:
        return str(self.directory(lab)).encode()

    # -- up ----------------------------------------------------------------------------------

    def up(self, lab: Lab, progress: Progress) -> None:
        from lab.stack import MODELS_BUCKET

        store = S3Store(lab.operator_target())
        self._ensure_fallback_model(lab, store, progress)
        fdir = self.directory(lab)
        if self._all_running(lab):
            self._wait_serving(lab, 60)
            return
        progress("lab: starting the inference fleet (nodes, fallback pool, HAProxy, controller)")
        self.down(lab)
        for stale in ("nodes", "cache", STATE_NAME):
            path = fdir / stale
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        fdir.mkdir(parents=True, exist_ok=True)
        from lab.stack import MODEL_NAME, REGION

        creds = fdir / "credentials.json"
        _atomic_json(creds, {"access_key": lab.state.operator_key,
                             "secret_key": lab.state.operator_secret})
        os.chmod(creds, 0o600)
        nodes = node_names(self.node_count)
        replicas = dict(zip(self.replica_names(), nodes, strict=True))
        config = FleetConfig(
            directory=str(fdir), python=sys.executable, cwd=str(REPO_ROOT),
            endpoint=lab.ceph.endpoint, region=REGION, bucket=MODELS_BUCKET,
            prefix=f"{MODEL_NAME}/", model=MODEL_NAME, credentials_file=str(creds),
            socket=str(self.socket_path(lab)), backend=BACKEND, nodes=nodes, replicas=replicas,
            device_ms=self.device_ms, device_slots=1, warmup=self.warmup)
        config.save()
        ports: dict[str, Any] = {
            "frontend": free_port(),
            "replicas": {r: free_port() for r in replicas},
            "fallback": {f: free_port() for f in self.fallback_names()},
        }
        _atomic_json(self._ports_path(lab), ports)
        # The controller starts from this placement: every replica on its home node.
        _atomic_json(fdir / STATE_NAME, {"replicas": {
            r: {"home": n, "node": n, "port": ports["replicas"][r]} for r, n in replicas.items()}})
        for r, n in replicas.items():
            _atomic_json(config.node_dir(n) / "desired.json", {r: ports["replicas"][r]})
        for name, port in ports["fallback"].items():
            self._start_fallback(lab, name, int(port))
        for n in nodes:
            power_on(config, n)
        (fdir / "haproxy.cfg").write_text(self._haproxy_cfg(lab, ports))

        pid = spawn_detached(["/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists()
                              else "haproxy", "-f", str(fdir / "haproxy.cfg"), "-db"],
                             log=fdir / "log" / "haproxy.log", env=dict(os.environ),
                             cwd=fdir)
        (fdir / "haproxy.pid").write_text(str(pid))
        pid = spawn_detached([sys.executable, "-m", "lab.controller", "run", "--dir", str(fdir)],
                             log=fdir / "log" / "controller.log", env=dict(os.environ),
                             cwd=REPO_ROOT)
        (fdir / "controller.pid").write_text(str(pid))
        self._wait_serving(lab, lab.startup_timeout_s)
        progress(f"lab: fleet serving on {self.frontend_url(lab)} "
                 f"({self.node_count} GPU nodes, {self.fallback_count} fallback)")

    def _ensure_fallback_model(self, lab: Lab, store: S3Store, progress: Progress) -> None:
        from lab.stack import MODELS_BUCKET, Lab

        directory = self.fallback_dir(lab)
        local = directory / "manifest.json"
        if local.exists() and (directory / "golden.json").exists():
            remote = store.read_bytes(MODELS_BUCKET, f"{FALLBACK_MODEL}/manifest.json")
            if remote == local.read_bytes():
                return
        progress(f"lab: generating the CPU fallback model {FALLBACK_MODEL}")
        if directory.exists():
            shutil.rmtree(directory)
        generate_model(directory, name=FALLBACK_MODEL, seed=7, size_bytes=MiB, shard_bytes=MiB)
        Lab._upload_dir(store, directory, f"{FALLBACK_MODEL}/")
        write_golden(directory, ModelConfig.load(directory / "config.json"), directory, count=8)

    def _start_fallback(self, lab: Lab, name: str, port: int) -> None:
        from lab.stack import MODEL_NAME, MODELS_BUCKET, REGION

        fdir = self.directory(lab)
        env = dict(os.environ, AWS_ACCESS_KEY_ID=lab.state.operator_key,
                   AWS_SECRET_ACCESS_KEY=lab.state.operator_secret)
        pid = spawn_detached(
            [sys.executable, "-m", "lab.node", "--endpoint", lab.ceph.endpoint, "--bucket",
             MODELS_BUCKET, "--prefix", f"{FALLBACK_MODEL}/", "--model-name", FALLBACK_MODEL,
             "--serve-as", MODEL_NAME, "--port", str(port), "--region", REGION, "--cache-dir",
             str(fdir / "cache" / name), "--device-ms", str(self.fallback_device_ms)],
            log=fdir / "log" / f"{name}.log", env=env, cwd=REPO_ROOT)
        (fdir / "fallback").mkdir(parents=True, exist_ok=True)
        (fdir / "fallback" / f"{name}.pid").write_text(str(pid))

    def _haproxy_cfg(self, lab: Lab, ports: dict[str, Any]) -> str:
        servers = [f"    server {r} 127.0.0.1:{p}" for r, p in ports["replicas"].items()]
        servers += [f"    server {f} 127.0.0.1:{p} backup" for f, p in ports["fallback"].items()]
        # Short check intervals so a lost node is out of rotation within about a second; a hung
        # node accepts TCP (the kernel completes the handshake) but never answers, so only the
        # check time-out reveals it. http-server-close: no idle server connection outlives a
        # replica that moved.
        return f"""# Written by `drillbook lab up`.
global
    stats socket {self.socket_path(lab)} mode 600 level admin
    stats timeout 10s
    maxconn 2000

defaults
    mode http
    option http-server-close
    option redispatch
    retries 2
    timeout connect 1s
    timeout client 30s
    timeout server 2s
    timeout queue 2s
    timeout check 500ms

frontend inference
    bind 127.0.0.1:{ports['frontend']}
    default_backend {BACKEND}

backend {BACKEND}
    balance leastconn
    option allbackups
    option httpchk GET /v2/health/ready
    http-check expect status 200
    default-server check inter 300ms fastinter 200ms downinter 500ms fall 2 rise 2
{chr(10).join(servers)}
"""

    def _wait_serving(self, lab: Lab, timeout_s: float) -> None:
        lb = self.balancer(lab)
        deadline = time.monotonic() + timeout_s
        last: dict[str, str] = {}
        while time.monotonic() < deadline:
            try:
                last = {s.name: s.status for s in lb.servers().values()}
            except DrillbookError:
                last = {}
            state = _read_state(self.directory(lab))
            settled = bool(state.get("replicas")) and all(
                r.get("node") == r.get("home") and r.get("pending_node") is None
                for r in state["replicas"].values())
            if last and all(v == "UP" for v in last.values()) and settled:
                return
            time.sleep(0.2)
        raise FleetError(f"fleet not serving after {timeout_s:g} s: HAProxy sees {last or 'nothing'}"
                         f"; see {self.directory(lab) / 'log'}")

    # -- processes ---------------------------------------------------------------------------

    def _pids(self, lab: Lab) -> dict[str, int | None]:
        """Every fleet process by role, None where it is not running."""
        fdir = self.directory(lab)
        marker = self._marker(lab)
        out: dict[str, int | None] = {}
        for role, path in [("haproxy", fdir / "haproxy.pid"),
                           ("controller", fdir / "controller.pid")]:
            pid = read_pid(path)
            out[role] = pid if proc_alive(pid, marker) else None
        for n in node_names(self.node_count):
            pid = read_pid(fdir / "nodes" / n / "agent.pid")
            out[n] = pid if proc_alive(pid, marker) else None
        for f in self.fallback_names():
            pid = read_pid(fdir / "fallback" / f"{f}.pid")
            out[f] = pid if proc_alive(pid, marker) else None
        return out

    def _all_running(self, lab: Lab) -> bool:
        return self._ports_path(lab).exists() and all(
            p is not None for p in self._pids(lab).values())

    def down(self, lab: Lab) -> None:
        pids = [p for p in self._pids(lab).values() if p is not None]
        for pid in pids:
            try:
                # a node a drill left frozen must run again to act on SIGTERM
                os.killpg(os.getpgid(pid), signal.SIGCONT)
            except OSError:
                pass
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        marker = self._marker(lab)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(proc_alive(p, marker) for p in pids):
            time.sleep(0.1)
        for pid in pids:
            if proc_alive(pid, marker):
                try:
                    os.killpg(os.getpgid(pid), signal.SIGKILL)
                except OSError:
                    pass
        self._kill_orphan_replicas(lab)

    def _kill_orphan_replicas(self, lab: Lab) -> None:
        """Replicas whose agent was killed outright (a crash drill) are gone with its process
        group; any left over (agent SIGKILLed by hand) are ours by their cache directory."""
        marker = str(self.directory(lab) / "cache").encode()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and proc_alive(int(entry.name), marker):
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                except OSError:
                    pass

    # -- status and inventory ------------------------------------------------------------------

    def status(self, lab: Lab) -> list[DaemonState]:
        from lab.ceph import DaemonState

        if not self._ports_path(lab).exists():
            return [DaemonState("fleet", None, False, "not started")]
        pids = self._pids(lab)
        state = _read_state(self.directory(lab))
        out = [DaemonState("haproxy", pids["haproxy"], pids["haproxy"] is not None,
                           f"{self.frontend_url(lab)} runtime {self.socket_path(lab)}"),
               DaemonState("controller", pids["controller"], pids["controller"] is not None,
                           f"state updated {state.get('updated_utc', 'never')}")]
        replicas = state.get("replicas", {})
        for n in node_names(self.node_count):
            st = state.get("nodes", {}).get(n, {})
            hosted = [f"{r}:{v['port']}" for r, v in replicas.items() if v.get("node") == n]
            ready = "Ready" if st.get("ready") else "NotReady"
            out.append(DaemonState(n, pids[n], pids[n] is not None and bool(st.get("ready")),
                                   f"{ready}; replicas: {', '.join(hosted) or 'none'}"))
        try:
            views = self.balancer(lab).servers()
        except DrillbookError as exc:
            out.append(DaemonState("haproxy-view", None, False, str(exc)))
            return out
        for name, v in views.items():
            where = replicas.get(name, {})
            role = "backup" if v.backup else f"replica on {where.get('node', '?')}"
            out.append(DaemonState(f"lb {name}", pids.get(name), v.up,
                                   f"{v.status} {v.addr} check={v.check} ({role})"))
        return out

    def contribute(self, lab: Lab, inventory: dict[str, Any]) -> None:
        from lab.stack import MODEL_NAME, MODELS_BUCKET

        fdir = self.directory(lab)
        targets = inventory["targets"]
        targets["fleet-frontend"] = {"kind": "inference", "url": self.frontend_url(lab),
                                     "model": MODEL_NAME, "drill_safe": True}
        targets["fleet-lb"] = {"kind": "loadbalancer", "socket": str(self.socket_path(lab)),
                               "backend": BACKEND, "frontend": "fleet-frontend",
                               "drill_safe": True}
        targets["fleet-orchestrator"] = {"kind": "orchestrator",
                                         "state_file": str(fdir / STATE_NAME)}
        nodes = node_names(self.node_count)
        for n in nodes:
            targets[n] = {"kind": "node", "pidfile": str(fdir / "nodes" / n / "agent.pid"),
                          "power_on": [sys.executable, "-m", "lab.fleet", "power-on", "--dir",
                                       str(fdir), "--node", n],
                          "drill_safe": True}
        inventory["assets"].append({
            "id": SERVICE_ASSET, "tier": 1, "kind": "inference-service",
            "store": "artifact-store", "bucket": MODELS_BUCKET, "prefix": f"{MODEL_NAME}/",
            "manifest": "manifest.json", "served_by": "fleet-frontend",
            # absolute: a copy of the inventory elsewhere still finds them
            "golden": str(lab.asset_dir / "golden.json"),
            "balancer": "fleet-lb", "orchestrator": "fleet-orchestrator", "nodes": nodes,
            "fallback_golden": str(self.fallback_dir(lab) / "golden.json"),
        })
        inventory["objectives"].setdefault("assets", {})[SERVICE_ASSET] = {"rto_s": 120}
        slo, load = fleet_slo(lab.state.model_size)
        inventory.setdefault("slo", slo)
        inventory.setdefault("load", load)


def fleet_slo(model_size: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fleet's SLO and load for the lab's model size (written into the lab's inventory
    unless it already states them).

    Up to 64 MiB: p95 150 ms with six users. Six users keep the three replicas' device slots
    busy, so losing one shows as lost throughput; the fallback pool (two slower slots) cannot
    meet the p95 or the throughput: degraded, not full, service.

    Larger models: every inference reads every weight once, so a request costs time in
    proportion to the model (measured here at 1 GiB: about 0.5 s per request at p50 on two busy
    cores, against 20 ms of stand-in device time at 8 MiB). The p95 target grows by 1 ms per
    MiB and the load drops to three users, one per replica: a replica lost still shows as a
    third of the throughput gone, and requests do not queue behind each other into the load
    generator's 2 s request timeout. Above about 1.5 GiB that timeout, not the SLO, is what a
    request must beat on this kind of machine."""
    mib = model_size / MiB
    if mib <= 64:
        return ({"error_rate": 0.01, "p95_ms": 150, "throughput_ratio": 0.8, "sustain_s": 3},
                {"users": 6, "baseline_s": 3, "acceptance_s": 3})
    return ({"error_rate": 0.01, "p95_ms": round(150 + mib), "throughput_ratio": 0.8,
             "sustain_s": 3},
            {"users": 3, "baseline_s": 5, "acceptance_s": 5})


def _read_state(fdir: Path) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads((fdir / STATE_NAME).read_text())
        return doc
    except (OSError, ValueError):
        return {}


def power_on(config: FleetConfig, node: str) -> int:
    """Start a node's agent (detached, its own process group); returns its pid."""

    ndir = config.node_dir(node)
    ndir.mkdir(parents=True, exist_ok=True)
    pid = spawn_detached([config.python, "-m", "lab.controller", "agent", "--dir",
                          config.directory, "--node", node],
                         log=ndir / "agent.log", env=dict(os.environ), cwd=Path(config.cwd))
    (ndir / "agent.pid").write_text(str(pid))
    return pid


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.fleet",
                                     description="Power a lab GPU node back on.")
    parser.add_argument("command", choices=("power-on",))
    parser.add_argument("--dir", type=Path, required=True, help="the fleet directory")
    parser.add_argument("--node", required=True)
    args = parser.parse_args(argv)
    config = FleetConfig.load(args.dir)
    if args.node not in config.nodes:
        parser.error(f"--node must be one of {', '.join(config.nodes)}")
    pid = read_pid(config.node_dir(args.node) / "agent.pid")
    if proc_alive(pid, str(config.root).encode()):
        print(f"{args.node} already on (agent pid {pid})")
        return 0
    print(f"{args.node} powered on (agent pid {power_on(config, args.node)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
