"""Services in the lab cluster: the endpoints controller's view, and the service proxy.

:func:`endpoints_for` computes a Service's Endpoints from its pods (the lab store keeps them
current). :class:`ServiceProxy` plays what a real site's load balancer (MetalLB) and kube-proxy
do together for a ``type: LoadBalancer`` Service: it listens on the Service's port on
127.0.0.1 and forwards each HTTP request to one of the ready endpoints, round robin, read from
the API's own Endpoints objects. A Service annotated ``lab.drillbook.io/fallback-service``
sends traffic to that Service's endpoints while it has none ready itself, as a gateway with a
priority failover (Envoy, an Istio DestinationRule, HAProxy ``backup``) would: this is how
inference degrades to the CPU fallback when every GPU node is lost.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Obj = dict[str, Any]
POD_PORT = "lab.drillbook.io/port"
FALLBACK = "lab.drillbook.io/fallback-service"


def endpoints_for(pods: list[Obj], svc: Obj) -> Obj:
    """The Endpoints the endpoints controller keeps for a Service: one subset per pod (every
    lab pod listens on 127.0.0.1, each on its own port), ready and not-ready addresses."""
    meta = svc["metadata"]
    sel = svc["spec"].get("selector") or {}
    port_name = (svc["spec"].get("ports") or [{}])[0].get("name")
    subsets = []
    pods = [p for p in pods
            if sel and all(p["metadata"].get("labels", {}).get(k) == v for k, v in sel.items())
            and p["spec"].get("nodeName") and not p["metadata"].get("deletionTimestamp")
            and POD_PORT in (p["metadata"].get("annotations") or {})]
    for p in sorted(pods, key=lambda p: p["metadata"]["name"]):
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in p["status"].get("conditions", []))
        addr = {"ip": p["status"].get("podIP", "127.0.0.1"), "nodeName": p["spec"]["nodeName"],
                "targetRef": {"kind": "Pod", "namespace": meta["namespace"],
                              "name": p["metadata"]["name"], "uid": p["metadata"]["uid"]}}
        port = {"port": int(p["metadata"]["annotations"][POD_PORT]), "protocol": "TCP",
                **({"name": port_name} if port_name else {})}
        subsets.append({"addresses" if ready else "notReadyAddresses": [addr],
                        "ports": [port]})
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                         "labels": dict(meta.get("labels") or {})},
            "subsets": subsets}




def ready_backends(endpoints: Obj | None) -> list[tuple[str, int]]:
    out = []
    for sub in (endpoints or {}).get("subsets") or []:
        for addr in sub.get("addresses") or []:
            for port in sub.get("ports") or []:
                out.append((str(addr["ip"]), int(port["port"])))
    return out


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer
    # the reply goes out as headers, then body: with Nagle on, the body waits for the client's
    # delayed ACK (40 ms on Linux), which was most of the Service's p95 under load
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._forward("GET")

    def do_POST(self) -> None:
        self._forward("POST")

    def _forward(self, method: str) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        if self.path == "/_lab/serving":  # lab up's wait: the Service's own pods answer
            ok = bool(ready_backends(self.server.proxy.read(self.server.proxy.namespace,
                                                            self.server.proxy.name)[1]))
            self._reply(200 if ok else 503, b"{}", "application/json")
            return
        backend = self.server.proxy.pick()
        if backend is None:
            self._reply(503, b'{"error": "no ready endpoints"}', "application/json")
            return
        conns: dict[tuple[str, int], http.client.HTTPConnection] = \
            self.server.local.__dict__.setdefault("conns", {})
        for attempt in (0, 1):  # a kept-alive connection the pod closed: reconnect once
            conn = conns.get(backend) or http.client.HTTPConnection(*backend, timeout=10)
            conns[backend] = conn
            try:
                conn.request(method, self.path, body=body, headers={
                    "Content-Type": self.headers.get("Content-Type") or "application/json"})
                r = conn.getresponse()
                data = r.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conns.pop(backend, None)
                if attempt:
                    # what a client sees from kube-proxy when the pod is gone
                    self._reply(502, b'{"error": "endpoint unreachable"}', "application/json")
                    return
                continue
            self._reply(r.status, data, r.getheader("Content-Type") or "application/json")
            return

    def _reply(self, code: int, data: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    proxy: ServiceProxy
    local: threading.local


class ServiceProxy:
    """One LoadBalancer Service on 127.0.0.1:``port``; ``endpoints`` reads the current
    Endpoints object of a Service by name (the store's, under its lock)."""

    def __init__(self, namespace: str, name: str, port: int,
                 read: Any) -> None:
        self.namespace, self.name, self.port = namespace, name, port
        self.read = read
        self._next = 0
        self._lock = threading.Lock()
        self.httpd = _ProxyServer(("127.0.0.1", port), _ProxyHandler)
        self.httpd.proxy = self
        self.httpd.local = threading.local()
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={
            "poll_interval": 0.05}, daemon=True)

    def pick(self) -> tuple[str, int] | None:
        svc, eps = self.read(self.namespace, self.name)
        backends = ready_backends(eps)
        fallback = ((svc or {}).get("metadata", {}).get("annotations") or {}).get(FALLBACK)
        if not backends and fallback:
            backends = ready_backends(self.read(self.namespace, fallback)[1])
        if not backends:
            return None
        with self._lock:
            self._next += 1
            return backends[self._next % len(backends)]

    def start(self) -> ServiceProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
