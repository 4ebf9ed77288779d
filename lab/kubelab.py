"""The lab's Kubernetes cluster: a lab component that serves the fleet as the Kubernetes API.

``lab up`` starts, in ``<lab>/kube/``, ``python -m lab.kubeapi serve``: the lab's API server
(:mod:`lab.kubeapi`) with four one-GPU nodes and a CPU node, the ``lab-mlp`` predictor
Deployment (three replicas, one GPU each) whose pods are real ``lab.node`` processes
(:mod:`lab.kuberuntime`: each pulls the model from the lab's S3 store, verifies it, loads, warms
up), a one-replica CPU fallback Deployment on the CPU node serving the smaller fallback model
under the same name, and the ``lab-mlp`` LoadBalancer Service on 127.0.0.1 that forwards to the
predictor's ready endpoints, failing over to the fallback's. It writes a kubeconfig with a bearer
token. Control-plane timings are short so drills finish in seconds: a node is NotReady after 2 s
without heartbeats (40 s on a real cluster) and pods tolerate it for 5 s (300 s).

It contributes to the lab's inventory the ``lab-cluster`` target (``kind: kubernetes``, the
kubeconfig and context, ``kubelet_stop``/``kubelet_start`` through :mod:`lab.kubelet`),
``cluster-frontend`` (the Service's address, an ``inference`` target) and the asset
``lab-mlp-k8s`` (``kube-inference-service``) that the kube drills run on.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.procs import free_port, live_pid, spawn_detached

if TYPE_CHECKING:
    from lab.ceph import DaemonState
    from lab.components import Progress
    from lab.stack import Lab

ASSET = "lab-mlp-k8s"
CLUSTER = "lab-cluster"
FRONTEND = "cluster-frontend"
CONTEXT = "drillbook-lab"
REPO_ROOT = Path(__file__).resolve().parent.parent
MARKER = b"lab.kubeapi"


class KubeLab:
    name = "kube"

    @staticmethod
    def directory(lab: Lab) -> Path:
        return lab.root / "kube"

    def _config(self, lab: Lab) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = json.loads((self.directory(lab) / "config.json").read_text())
            return doc
        except (OSError, ValueError):
            return {}

    def _pid(self, lab: Lab) -> int | None:
        return live_pid(self.directory(lab) / "api.pid", MARKER)

    def up(self, lab: Lab, progress: Progress) -> None:
        from lab.fleet import FALLBACK_MODEL
        from lab.stack import MODEL_NAME, MODELS_BUCKET, REGION

        d = self.directory(lab)
        if self._pid(lab) is not None and self._serving(lab, 5):
            return
        self.down(lab)
        progress("lab: starting the Kubernetes API and its cluster (pods are lab.node processes)")
        d.mkdir(parents=True, exist_ok=True)
        config = {"endpoint": lab.ceph.endpoint, "bucket": MODELS_BUCKET, "region": REGION,
                  "access_key": lab.state.operator_key, "secret_key": lab.state.operator_secret,
                  "model": MODEL_NAME, "prefix": f"{MODEL_NAME}/",
                  "fallback_prefix": f"{FALLBACK_MODEL}/", "fallback_model": FALLBACK_MODEL,
                  "service_port": free_port(), "kubeconfig": str(d / "kubeconfig"),
                  "directory": str(d), "device_ms": 20.0, "fallback_device_ms": 60.0}
        path = d / "config.json"
        path.write_text(json.dumps(config))
        path.chmod(0o600)
        pid = spawn_detached([sys.executable, "-m", "lab.kubeapi", "serve", "--config",
                              str(path)], log=d / "api.log", env=dict(os.environ),
                             cwd=REPO_ROOT)
        (d / "api.pid").write_text(str(pid))
        if not self._serving(lab, lab.startup_timeout_s):
            raise RuntimeError(f"the lab's Kubernetes service did not serve within "
                               f"{lab.startup_timeout_s:g} s (see {d / 'api.log'})")
        progress(f"lab: Kubernetes API up, service on {self.url(lab)}")

    def url(self, lab: Lab) -> str:
        return f"http://127.0.0.1:{self._config(lab).get('service_port', 0)}"

    def _serving(self, lab: Lab, timeout_s: float) -> bool:
        """The Service answers ready through a predictor endpoint (not only the fallback)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url(lab)}/_lab/serving", timeout=2) as r:
                    if r.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            if self._pid(lab) is None and time.monotonic() > deadline - timeout_s + 5:
                return False
            time.sleep(0.3)
        return False

    def down(self, lab: Lab) -> None:
        pid = self._pid(lab)
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if self._pid(lab) is None:
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)

    def status(self, lab: Lab) -> list[DaemonState]:
        from lab.ceph import DaemonState

        pid = self._pid(lab)
        return [DaemonState("kube api", pid, pid is not None,
                            f"kubeconfig {self.directory(lab) / 'kubeconfig'}, service "
                            f"{self.url(lab)}")]

    def contribute(self, lab: Lab, inventory: dict[str, Any]) -> None:
        from lab.fleet import Fleet
        from lab.stack import MODEL_NAME

        d = self.directory(lab)
        cfg = str(d / "kubeconfig")
        kubelet = [sys.executable, "-m", "lab.kubelet"]
        targets = inventory["targets"]
        targets[CLUSTER] = {
            "kind": "kubernetes", "kubeconfig": cfg, "context": CONTEXT,
            "namespaces": ["inference"], "max_nodes": 4, "drill_safe": True,
            "kubelet_stop": [*kubelet, "stop", "--kubeconfig", cfg, "--node", "{node}"],
            "kubelet_start": [*kubelet, "start", "--kubeconfig", cfg, "--node", "{node}"]}
        targets[FRONTEND] = {"kind": "inference", "url": self.url(lab), "model": MODEL_NAME,
                             "drill_safe": True}
        inventory["assets"].append({
            "id": ASSET, "tier": 1, "kind": "kube-inference-service", "cluster": CLUSTER,
            "namespace": "inference", "deployment": "lab-mlp-predictor",
            "inference_service": "lab-mlp", "served_by": FRONTEND,
            "golden": str(lab.asset_dir / "golden.json"),
            "fallback_deployment": "lab-mlp-cpu",
            "fallback_golden": str(Fleet().fallback_dir(lab) / "golden.json")})
        inventory["objectives"].setdefault("assets", {})[ASSET] = {"rto_s": 120}
