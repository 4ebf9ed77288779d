"""Stop or start a lab node's kubelet: ``python -m lab.kubelet stop|start --kubeconfig K --node N``.

The lab's stand-in for what a real site does on the host (``ssh NODE systemctl stop kubelet``):
the lab's API server stops or resumes that node's heartbeats (``POST /_lab/nodes/N/kubelet``).
The lab's inventory gives these as the cluster's ``kubelet_stop``/``kubelet_start`` commands.
Standard library and PyYAML only, so it starts fast.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import yaml


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.kubelet", description=__doc__.split("\n")[0])
    ap.add_argument("action", choices=("stop", "start"))
    ap.add_argument("--kubeconfig", type=Path, required=True)
    ap.add_argument("--node", required=True)
    args = ap.parse_args(argv)
    doc = yaml.safe_load(args.kubeconfig.read_text())
    server = doc["clusters"][0]["cluster"]["server"]
    token = doc["users"][0]["user"]["token"]
    reporting = "true" if args.action == "start" else "false"
    req = urllib.request.Request(f"{server}/_lab/nodes/{args.node}/kubelet?reporting={reporting}",
                                 method="POST", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            print(r.read().decode())
    except (urllib.error.URLError, OSError) as exc:
        print(f"lab.kubelet: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
