"""The lab's Kubernetes API: a protocol-faithful stand-in on 127.0.0.1, not a cluster.

No kube-apiserver can run on the lab's machines, so this small HTTP server serves the subset of
the Kubernetes API the ``kube`` adapter uses, with the same paths, verbs, content types, list
and watch semantics and Status errors: core/v1 nodes (and their status), pods (all namespaces
or one, field and label selectors) and the pod ``eviction`` subresource; apps/v1 Deployments
and StatefulSets with their ``scale`` subresource; policy/v1 PodDisruptionBudgets (a budget
that allows no disruption answers an eviction with 429); coordination.k8s.io/v1 Leases (create,
replace with resourceVersion preconditions: 409 on a stale one); KServe InferenceServices
(serving.kserve.io/v1beta1). Watches stream from a resourceVersion with bookmarks, and answer
410 Gone once that version left the bounded history (``POST /_lab/compact`` forces it). Every
stored object is checked against the official schemas (:mod:`lab.kubeschema`): a request that
would make an object the real API would not accept gets 422.

The controllers (:class:`lab.kubestore.KubeStore`) run in a thread: pods leave NoExecute
tainted and NotReady nodes, Deployments replace lost pods, pending pods are bound to a Ready,
schedulable node with a free GPU and become Ready after a delay. What it does not do: admission,
RBAC (one bearer token allows everything), server-side apply, real strategic merge semantics
(merge patch is used), garbage collection of ReplicaSets (pods are owned by a named ReplicaSet
that is never served), containers.

Run alone: ``python -m lab.kubeapi --kubeconfig PATH [--port N]`` (seeds a small GPU fleet).
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

from lab.kubeerrors import ApiError
from lab.kubepatch import json_patch, match_fields, match_labels, merge_patch, strategic_merge
from lab.kubepods import Obj
from lab.kubeschema import SchemaError
from lab.kubeseed import seed_fleet
from lab.kubeservice import ServiceProxy
from lab.kubestore import KINDS, KubeStore

_PATH = re.compile(r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<ver>[^/]+))"
                   r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<res>[a-z]+)"
                   r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>[a-z]+))?$")
_KINDS = KINDS
_GROUPS = {"nodes": "v1", "pods": "v1", "services": "v1", "endpoints": "v1",
           "deployments": "apps/v1", "statefulsets": "apps/v1",
           "poddisruptionbudgets": "policy/v1", "leases": "coordination.k8s.io/v1",
           "inferenceservices": "serving.kserve.io/v1beta1"}
BOOKMARK_EVERY_S = 1.0


def status(code: int, reason: str, message: str) -> Obj:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Success" if code < 400 else "Failure", "message": message,
            "reason": reason, "code": code}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    # headers and body are separate writes: without TCP_NODELAY each reply waited for the
    # client's delayed ACK (about 40 ms per API call)
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing -------------------------------------------------------------------------------

    def _send(self, code: int, body: Obj, headers: dict[str, str] | None = None) -> None:
        self.server.api.responses.append((urlparse(self.path).path, body))
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"null")

    def _handle(self, method: str) -> None:
        api = self.server.api
        api.calls.append((method, self.path))
        if self.headers.get("Authorization") != f"Bearer {api.token}":
            self._send(401, status(401, "Unauthorized", "Unauthorized"))
            return
        try:
            self._route(method)
        except ApiError as exc:
            hdr = {"Retry-After": "1"} if exc.code == 429 else None
            self._send(exc.code, status(exc.code, exc.reason, exc.message), hdr)
        except SchemaError as exc:
            self._send(422, status(422, "Invalid", str(exc)))
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            self._send(400, status(400, "BadRequest", f"{type(exc).__name__}: {exc}"))

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # -- routes ---------------------------------------------------------------------------------

    def _route(self, method: str) -> None:
        url = urlparse(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        store = self.server.api.store
        if url.path in ("/version", "/version/"):
            self._send(200, {"major": "1", "minor": "37", "gitVersion": "v1.37.0-drillbook-lab",
                             "gitCommit": "", "gitTreeState": "clean", "buildDate": "",
                             "goVersion": "", "compiler": "", "platform": "linux/amd64"})
            return
        if url.path == "/_lab/compact" and method == "POST":
            store.compact()
            self._send(200, status(200, "", "compacted"))
            return
        kubelet = re.match(r"^/_lab/nodes/([^/]+)/kubelet$", url.path)
        if kubelet and method == "POST":
            self._kubelet(kubelet[1], q.get("reporting") in ("true", "1"), store)
            return
        m = _PATH.match(url.path)
        if m is None or m["res"] not in _KINDS:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource "
                           f"({url.path})")
        res, ns, name, sub = m["res"], m["ns"], m["name"], m["sub"]
        if _GROUPS[res] != (m["core"] or f"{m['group']}/{m['ver']}"):
            raise ApiError(404, "NotFound", f"{res} is not served under {url.path}")
        if name is None:
            if method == "GET" and q.get("watch") in ("true", "1"):
                self._watch(res, ns, q)
            elif method == "GET":
                self._list(res, ns, q)
            elif method == "POST":
                body = self._body()
                if ns is not None:  # the API server takes the namespace from the path
                    meta = body.setdefault("metadata", {})
                    if meta.get("namespace", ns) != ns:
                        raise ApiError(400, "BadRequest", "the namespace of the provided "
                                       "object does not match the namespace sent on the request")
                    meta["namespace"] = ns
                with store.cond:
                    self._send(201, store.create(res, body))
            else:
                raise ApiError(405, "MethodNotAllowed", f"{method} on a collection")
            return
        with store.cond:
            self._item(method, res, ns, name, sub, store)

    def _item(self, method: str, res: str, ns: str | None, name: str, sub: str | None,
              store: KubeStore) -> None:
        if sub == "eviction" and res == "pods" and method == "POST":
            store.validate_request("eviction", self._body())
            store.evict(ns or "", name)
            self._send(201, status(201, "", "evicted"))
            return
        if sub == "scale" and res in ("deployments", "statefulsets"):
            self._scale(method, res, ns, name, store)
            return
        if sub not in (None, "status"):
            raise ApiError(404, "NotFound", f"no subresource {sub}")
        if method == "GET":
            self._send(200, store.get(res, ns, name))
        elif method == "DELETE":
            options = self._body() or {}
            pre = (options.get("preconditions") or {}) if isinstance(options, dict) else {}
            obj = store.delete(res, ns, name, expect_rv=pre.get("resourceVersion"))
            self._send(200, obj if res == "pods" else status(200, "", "deleted"))
        elif method == "PUT":
            body = self._body()
            self._send(200, store.replace(res, body,
                                          expect_rv=body["metadata"].get("resourceVersion")))
        elif method == "PATCH":
            self._send(200, self._patch(res, store.get(res, ns, name), store))
        else:
            raise ApiError(405, "MethodNotAllowed", method)

    def _kubelet(self, node: str, reporting: bool, store: KubeStore) -> None:
        """The lab's stand-in for stopping or starting a node's kubelet (a real site does it
        on the host: ``systemctl stop kubelet``): its heartbeats stop or resume."""
        with store.cond:
            store.get("nodes", None, node)
            if reporting:
                store.heartbeat.pop(node, None)
            else:
                store.heartbeat[node] = None
        self._send(200, status(200, "", f"kubelet on {node} "
                               f"{'reporting' if reporting else 'stopped'}"))

    def _patch(self, res: str, old: Obj, store: KubeStore) -> Obj:
        kind = (self.headers.get("Content-Type") or "").split(";")[0]
        body = self._body()
        if kind == "application/json-patch+json":
            new = json_patch(old, body)
            expect = None
        elif kind in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            new = (merge_patch(old, body) if kind == "application/merge-patch+json"
                   else strategic_merge(old, body))
            expect = (body.get("metadata") or {}).get("resourceVersion")
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        else:
            raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an "
                           f"unknown format - accepted media types include: "
                           f"application/json-patch+json, application/merge-patch+json, "
                           f"application/strategic-merge-patch+json (got {kind!r})")
        return store.replace(res, new, expect_rv=expect)

    def _scale(self, method: str, res: str, ns: str | None, name: str,
               store: KubeStore) -> None:
        obj = store.get(res, ns, name)
        if method == "PATCH":
            body = self._body()
            replicas = int(merge_patch({"spec": {"replicas": obj["spec"].get("replicas", 1)}},
                                       body)["spec"]["replicas"])
            obj = store.replace(res, merge_patch(obj, {"spec": {"replicas": replicas}}))
        elif method != "GET":
            raise ApiError(405, "MethodNotAllowed", method)
        meta = obj["metadata"]
        scale = {"apiVersion": "autoscaling/v1", "kind": "Scale",
                 "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                              "uid": meta["uid"], "resourceVersion": meta["resourceVersion"],
                              "creationTimestamp": meta["creationTimestamp"]},
                 "spec": {"replicas": obj["spec"].get("replicas", 1)},
                 "status": {"replicas": (obj.get("status") or {}).get("replicas", 0)}}
        store.validate_request("scale", scale)
        self._send(200, scale)

    def _list(self, res: str, ns: str | None, q: dict[str, str]) -> None:
        store = self.server.api.store
        with store.cond:
            items = store.select(res, ns, q.get("labelSelector"), q.get("fieldSelector"))
            api_version, kind = _KINDS[res]
            self._send(200, {"apiVersion": api_version, "kind": f"{kind}List",
                             "metadata": {"resourceVersion": str(store.rv)}, "items": items})

    def _watch(self, res: str, ns: str | None, q: dict[str, str]) -> None:
        store = self.server.api.store
        labels, fields = q.get("labelSelector"), q.get("fieldSelector")
        end = time.monotonic() + float(q.get("timeoutSeconds") or 1800)
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(ev: Obj) -> None:
            self.server.api.responses.append((urlparse(self.path).path, ev))
            data = json.dumps(ev).encode() + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def sel(obj: Obj) -> bool:
            return ((ns is None or obj["metadata"].get("namespace") == ns)
                    and match_labels(obj["metadata"].get("labels") or {}, labels)
                    and match_fields(obj, fields))

        api_version, kind = _KINDS[res]
        try:
            with store.cond:
                start = q.get("resourceVersion")
                if not start or start == "0":
                    for obj in store.select(res, ns, labels, fields):
                        chunk({"type": "ADDED", "object": obj})
                    cursor = store.rv
                else:
                    cursor = int(start)
                last_mark = time.monotonic()
                while not self.server.api.stopping.is_set():
                    if cursor + 1 < store.oldest_rv:
                        chunk({"type": "ERROR", "object": status(
                            410, "Expired", f"too old resource version: {cursor} "
                                            f"({store.oldest_rv - 1})")})
                        break
                    for rv, r, typ, obj in list(store.history):
                        if rv > cursor and r == res and sel(obj):
                            chunk({"type": typ, "object": obj})
                    cursor = store.rv
                    t = time.monotonic()
                    if bookmarks and t - last_mark >= BOOKMARK_EVERY_S:
                        chunk({"type": "BOOKMARK", "object": {
                            "kind": kind, "apiVersion": api_version,
                            "metadata": {"resourceVersion": str(cursor)}}})
                        last_mark = t
                    if t >= end:
                        break
                    store.cond.wait(min(0.25, end - t))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: KubeApi


class KubeApi:
    """The server and its controller thread; ``calls`` records every (verb, path) served."""

    def __init__(self, store: KubeStore | None = None, *, port: int = 0,
                 token: str | None = None, tick_s: float = 0.05) -> None:
        self.store = store or KubeStore()
        self.token = token or secrets.token_hex(16)
        self.tick_s = tick_s
        #: every request as (verb, path with query): the RBAC test maps them to verbs
        self.calls: list[tuple[str, str]] = []
        self.proxies: dict[str, ServiceProxy] = {}
        #: every body served (path, JSON), watch events included: the contract tests check them
        self.responses: list[tuple[str, Obj]] = []
        self.stopping = threading.Event()
        self.httpd = _Server(("127.0.0.1", port), _Handler)
        self.httpd.api = self
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> KubeApi:
        for fn in (lambda: self.httpd.serve_forever(poll_interval=0.05), self._controllers):
            t = threading.Thread(target=fn, daemon=True)
            t.start()
            self._threads.append(t)
        self.expose()
        return self

    def expose(self) -> None:
        """A proxy for every LoadBalancer Service not yet served (the lab's MetalLB and
        kube-proxy, :class:`lab.kubeservice.ServiceProxy`)."""
        with self.store.cond:
            services = list(self.store.objects.get("services", {}).values())
        for svc in services:
            meta, spec = svc["metadata"], svc["spec"]
            key = f"{meta['namespace']}/{meta['name']}"
            if spec.get("type") != "LoadBalancer" or key in self.proxies:
                continue
            self.proxies[key] = ServiceProxy(meta["namespace"], meta["name"],
                                             int(spec["ports"][0]["port"]),
                                             self._read_service).start()

    def _read_service(self, ns: str, name: str) -> tuple[Obj | None, Obj | None]:
        with self.store.cond:
            return (self.store.objects.get("services", {}).get(f"{ns}/{name}"),
                    self.store.objects.get("endpoints", {}).get(f"{ns}/{name}"))

    def _controllers(self) -> None:
        while not self.stopping.wait(self.tick_s):
            self.store.reconcile()

    def stop(self) -> None:
        self.stopping.set()
        with self.store.cond:
            self.store.cond.notify_all()
        for proxy in self.proxies.values():
            proxy.stop()
        self.httpd.shutdown()
        self.httpd.server_close()
        for t in self._threads:
            t.join(timeout=5)

    def write_kubeconfig(self, path: Path, context: str = "drillbook-lab") -> Path:
        doc = {"apiVersion": "v1", "kind": "Config", "current-context": context,
               "clusters": [{"name": context, "cluster": {"server": self.url}}],
               "users": [{"name": "drillbook", "user": {"token": self.token}}],
               "contexts": [{"name": context, "context": {"cluster": context,
                                                          "user": "drillbook"}}]}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(doc))
        path.chmod(0o600)
        return path


def serve(config_path: Path) -> None:
    """``lab up``'s API server: pods are lab.node processes (see :mod:`lab.kubelab`)."""
    import signal

    from lab.kuberuntime import ProcessRuntime, RuntimeConfig

    c = json.loads(config_path.read_text())
    runtime = ProcessRuntime(RuntimeConfig(
        endpoint=c["endpoint"], bucket=c["bucket"], region=c["region"],
        access_key=c["access_key"], secret_key=c["secret_key"], directory=Path(c["directory"])))
    api = KubeApi(KubeStore(runtime=runtime, notready_after_s=2.0, toleration_s=5,
                            evict_grace_s=0.2))
    model = {"MODEL_PREFIX": c["prefix"], "MODEL_NAME": c["model"],
             "DEVICE_MS": str(c["device_ms"])}
    fallback = {"MODEL_PREFIX": c["fallback_prefix"], "MODEL_NAME": c["fallback_model"],
                "SERVE_AS": c["model"], "DEVICE_MS": str(c["fallback_device_ms"])}
    # three replicas on four GPU nodes: as much serving capacity per user as the process
    # fleet has (three replicas), with one node spare so that losing one keeps capacity
    seed_fleet(api.store, gpu_nodes=4, replicas=3, service_port=int(c["service_port"]),
               model=model, fallback_model=fallback)
    api.start()
    api.write_kubeconfig(Path(c["kubeconfig"]))
    signal.signal(signal.SIGTERM, lambda *_: api.stopping.set())
    print(f"serving the lab Kubernetes API on {api.url}", flush=True)
    try:
        api.stopping.wait()
    except KeyboardInterrupt:
        pass
    finally:
        api.stop()
        runtime.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m lab.kubeapi", description=__doc__.split("\n")[0])
    ap.add_argument("mode", nargs="?", choices=("seeded", "serve"), default="seeded",
                    help="seeded: a small fleet without containers; serve: lab up's cluster")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--kubeconfig", type=Path)
    ap.add_argument("--config", type=Path, help="serve: the JSON config lab up writes")
    args = ap.parse_args(argv)
    if args.mode == "serve":
        if args.config is None:
            ap.error("serve needs --config")
        serve(args.config)
        return
    if args.kubeconfig is None:
        ap.error("--kubeconfig is required")
    api = KubeApi(port=args.port)
    seed_fleet(api.store)
    api.start()
    api.write_kubeconfig(args.kubeconfig)
    print(f"serving the lab Kubernetes API on {api.url}; kubeconfig {args.kubeconfig}",
          flush=True)
    try:
        api.stopping.wait()
    except KeyboardInterrupt:
        api.stop()


if __name__ == "__main__":
    main()
