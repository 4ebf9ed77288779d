"""The HTML reports in a real browser: headless Chromium (Debian package) opens them from disk
and must log nothing to the console (the reports carry a Content-Security-Policy that forbids
every fetch, so an external asset would show up as a refused load) and must draw the charts."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from test_evidence import scripted

from harness import history
from reports.index import write_index

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    # a missing browser is a broken set-up (make test installs it), never a skipped test
    assert exe is not None, "chromium is not installed: run `make test-deps`"
    return exe


def load(page: Path, profile: Path) -> tuple[str, list[str]]:
    """The DOM after load, and every console line Chromium logged."""
    proc = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                           page.resolve().as_uri()], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines()
               if re.search(r":CONSOLE[:(]|Uncaught|Refused to", line)]
    return proc.stdout, console


def test_the_console_check_sees_a_refused_external_asset(tmp_path: Path) -> None:
    """Control: the same check does catch what a report must never do."""
    page = tmp_path / "bad.html"
    page.write_text('<!doctype html><html><head><meta http-equiv="Content-Security-Policy" '
                    'content="default-src \'none\'"></head><body>'
                    '<img src="http://127.0.0.1:9/x.png"></body></html>')
    _, console = load(page, tmp_path / "profile")
    assert console, "the browser logged nothing for a refused external image"


def test_drill_report_renders_with_no_console_errors_and_its_charts(tmp_path: Path) -> None:
    section = {"slo": {"met": True, "summary": "p95 within 500 ms"},
               "rps": [3, 8, 12, 12, 11, 12], "per_second": [{"t": 0, "ok": 10}]}
    result = scripted(tmp_path, section=section)
    dom, console = load(result.directory / "report.html", tmp_path / "profile")
    assert console == []
    assert 'id="verdict"' in dom and ">PASS<" in dom
    timeline = re.search(r'<svg[^>]*id="timeline-chart"[^>]*data-bars="(\d+)"', dom)
    assert timeline is not None and int(timeline.group(1)) >= 3
    assert len(re.findall(r'<rect class="bar"', dom)) == int(timeline.group(1))
    assert 'class="chart spark"' in dom  # the generic section's numeric series


def test_history_index_renders_its_trend_charts(tmp_path: Path) -> None:
    root = tmp_path / "ev"
    for _ in range(3):
        scripted(tmp_path, evidence_root=root)
    rows = history.load(root)
    page = write_index(root, rows, history.regressions(rows), tolerance=0.2, min_delta_s=1.0)
    dom, console = load(page, tmp_path / "profile")
    assert console == []
    # three drills on each of the service RTO, verified RTO and RPO trends
    assert 'id="rto-trend"' in dom and 'id="rto-verified-trend"' in dom
    assert len(re.findall(r'<circle class="point"', dom)) == 9
