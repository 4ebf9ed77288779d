"""The lab's periodic jobs: scheduled restic backups and replication to the secondary site.

Run as ``python -m lab.backup_scheduler --config CONFIG --job backup|replication [--once]``.

- ``backup``: every ``period_s`` seconds, mirror each configured S3 prefix into a staging
  directory and take one restic snapshot of them into the scheduled repository. Restore points
  therefore keep appearing while the lab runs, so a drill's RPO is measured against a real one.
- ``replication``: every ``period_s`` seconds, copy every changed object of the configured
  prefixes (server-side) into the replica bucket on the secondary site, and propagate deletions;
  each key keeps its ``keep_noncurrent`` newest noncurrent versions (default 1), so the replica's
  history is bounded as a lifecycle rule would bound it.

Both read their S3 keys from an AWS-style credentials file at every run (a key rotation only has
to rewrite that file), re-read the configuration at every run (a test can shorten the period),
and append one JSON line per run to their status file: ``started_utc``, ``ended_utc``, ``ok``,
``error`` (the store's own error text) and what the run made. A run that meets an error retrying
cannot fix (revoked key, suspended user, quota exceeded) stops at once instead of letting restic
back off for most of a minute. Runs of the same job never overlap (a lock file).
"""

from __future__ import annotations

import argparse
import configparser
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: S3 error codes that no retry will cure: the job reports them at once.
PERMANENT_ERRORS = ("QuotaExceeded", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                    "UserSuspended", "AccessDenied", "Access Denied",
                    "does not exist in our records")
_SNAPSHOT_SAVED = re.compile(r"snapshot ([0-9a-f]{8,}) saved")


class JobError(Exception):
    pass


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def read_credentials(path: Path) -> tuple[str, str]:
    parser = configparser.ConfigParser()
    parser.read_string(path.read_text(encoding="utf-8"))
    section = parser["default"]
    return section["aws_access_key_id"], section["aws_secret_access_key"]


def s3_client(cfg: dict[str, Any]) -> Any:
    import boto3
    from botocore.config import Config

    key, secret = read_credentials(Path(cfg["credentials_file"]))
    return boto3.session.Session().client(
        "s3", endpoint_url=cfg["endpoint"], region_name=cfg.get("region", "default"),
        aws_access_key_id=key, aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                      connect_timeout=3, read_timeout=60,
                      retries={"max_attempts": 1, "mode": "standard"},
                      request_checksum_calculation="when_required",
                      response_checksum_validation="when_required"))


def check_credentials(cfg: dict[str, Any]) -> Any:
    """A client, after one authenticated call that involves no bucket policy: a revoked key or a
    suspended account is then reported as such, not as AccessDenied on some bucket."""
    client = s3_client(cfg)
    try:
        client.list_buckets()
    except Exception as exc:
        raise JobError(f"the store refused the job's credentials: {describe(exc)}") from exc
    return client


def list_objects(client: Any, bucket: str, prefix: str) -> dict[str, str]:
    """key -> ETag of every current object under prefix."""
    out: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"]] = str(o.get("ETag", "")).strip('"')
    return out


def describe(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error") or {}
        if err.get("Code"):
            return f"{err['Code']}: {err.get('Message') or ''}".strip()
    return f"{type(exc).__name__}: {exc}"


@contextmanager
def job_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def record(status_file: Path, entry: dict[str, Any]) -> None:
    status_file.parent.mkdir(parents=True, exist_ok=True)
    with status_file.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


# -- backup -------------------------------------------------------------------------------------


def mirror(client: Any, bucket: str, prefix: str, dest: Path, index: dict[str, str]) -> None:
    """Make dest hold exactly the current objects under prefix (changed ones re-downloaded)."""
    current = list_objects(client, bucket, prefix)
    dest.mkdir(parents=True, exist_ok=True)
    for key, etag in current.items():
        path = dest / key[len(prefix):]
        if index.get(f"{bucket}/{key}") == etag and path.is_file():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        tmp = path.with_name(path.name + ".part")
        with tmp.open("wb") as fh:
            shutil.copyfileobj(body, fh, 8 * 1024 * 1024)
        os.replace(tmp, path)
        index[f"{bucket}/{key}"] = etag
    wanted = {dest / k[len(prefix):] for k in current}
    for path in sorted(dest.rglob("*"), reverse=True):
        if path.is_file() and path not in wanted:
            path.unlink()
            index.pop(f"{bucket}/{prefix}{path.relative_to(dest).as_posix()}", None)
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def restic_env(cfg: dict[str, Any], job: dict[str, Any]) -> dict[str, str]:
    key, secret = read_credentials(Path(cfg["credentials_file"]))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "AWS_"))}
    env.update(RESTIC_REPOSITORY=job["repository"], RESTIC_PASSWORD=job["password"],
               RESTIC_CACHE_DIR=job["cache_dir"], AWS_ACCESS_KEY_ID=key,
               AWS_SECRET_ACCESS_KEY=secret)
    return env


def run_restic(args: list[str], env: dict[str, str], timeout_s: float = 600) -> str:
    """Run restic; stop it at the first error no retry can cure and raise with that line."""
    proc = subprocess.Popen(["restic", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    stderr_lines: list[str] = []
    permanent: list[str] = []

    def watch() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            stderr_lines.append(line.rstrip())
            if not permanent and any(code in line for code in PERMANENT_ERRORS):
                permanent.append(line.strip())
                proc.kill()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        out = proc.stdout.read()
        rc = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.wait()
        raise JobError(f"restic {args[0]} timed out after {timeout_s:.0f} s") from exc
    watcher.join(timeout=5)
    if permanent:
        raise JobError(f"restic {args[0]}: {permanent[0]}")
    if rc != 0:
        tail = " | ".join([ln for ln in stderr_lines if ln.strip()][-3:])
        raise JobError(f"restic {args[0]} exited {rc}: {tail}")
    return out


def backup_once(cfg: dict[str, Any]) -> dict[str, Any]:
    job = cfg["backup"]
    stage = Path(job["stage_root"])
    index_path = stage / ".etags.json"
    with job_lock(stage.parent / f"{stage.name}.lock"):
        started = utc_now()
        entry: dict[str, Any] = {"job": "backup", "started_utc": started}
        try:
            index: dict[str, str] = {}
            if index_path.exists():
                index = json.loads(index_path.read_text())
            client = check_credentials(cfg)
            paths = []
            for src in job["sources"]:
                dest = stage / src["bucket"] / src["prefix"].rstrip("/")
                try:
                    mirror(client, src["bucket"], src["prefix"], dest, index)
                except Exception as exc:
                    raise JobError(f"reading s3://{src['bucket']}/{src['prefix']}: "
                                   f"{describe(exc)}") from exc
                paths.append(str(dest))
            index_path.write_text(json.dumps(index))
            env = restic_env(cfg, job)
            out = run_restic(["backup", "--host", job.get("host", "drillbook-lab"),
                              "--tag", "drillbook-scheduled", *paths], env)
            found = _SNAPSHOT_SAVED.search(out)
            if not found:
                raise JobError(f"restic backup printed no snapshot id: {out[-200:]!r}")
            entry.update(ok=True, error="", snapshot=found.group(1), paths=paths)
        except JobError as exc:
            entry.update(ok=False, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - the scheduler must outlive one bad run
            entry.update(ok=False, error=describe(exc))
        entry["ended_utc"] = utc_now()
        record(Path(job["status_file"]), entry)
        return entry


# -- replication --------------------------------------------------------------------------------


def expire_noncurrent(client: Any, bucket: str, key: str, keep: int) -> int:
    """Remove the versions of ``key`` older than its ``keep`` newest noncurrent ones (what a
    lifecycle rule with NewerNoncurrentVersions does on a real replica). Without it every purge
    drill leaves one more full copy of the model in the replica (the copy the drill restored,
    which the replica took while the replayed one has the same ETag), until the store is full."""
    versions = client.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
    mine = sorted((v for v in versions if v["Key"] == key and not v["IsLatest"]),
                  key=lambda v: v["LastModified"], reverse=True)
    for v in mine[keep:]:
        client.delete_object(Bucket=bucket, Key=key, VersionId=v["VersionId"])
    return max(0, len(mine) - keep)


def replicate_once(cfg: dict[str, Any]) -> dict[str, Any]:
    job = cfg["replication"]
    status = Path(job["status_file"])
    with job_lock(status.with_suffix(".lock")):
        entry: dict[str, Any] = {"job": "replication", "started_utc": utc_now()}
        copied = deleted = expired = 0
        state_path = status.with_suffix(".state.json")
        try:
            state: dict[str, str] = json.loads(state_path.read_text()) if \
                state_path.exists() else {}
            client = check_credentials(cfg)
            replica = job["replica_bucket"]
            for src in job["sources"]:
                bucket, prefix = src["bucket"], src["prefix"]
                source = list_objects(client, bucket, prefix)
                there = list_objects(client, replica, f"{bucket}/{prefix}")
                for key, etag in source.items():
                    dest = f"{bucket}/{key}"
                    if dest in there and state.get(dest) == etag:
                        continue
                    client.copy_object(Bucket=replica, Key=dest,
                                       CopySource={"Bucket": bucket, "Key": key})
                    state[dest] = etag
                    copied += 1
                    expired += expire_noncurrent(client, replica, dest,
                                                 int(job.get("keep_noncurrent", 1)))
                for dest in there:
                    if dest[len(bucket) + 1:] not in source:
                        client.delete_object(Bucket=replica, Key=dest)
                        state.pop(dest, None)
                        deleted += 1
            state_path.write_text(json.dumps(state))
            entry.update(ok=True, error="", copied=copied, deleted=deleted, expired=expired)
        except Exception as exc:  # noqa: BLE001 - the replicator must outlive one bad run
            entry.update(ok=False, error=describe(exc), copied=copied, deleted=deleted)
        entry["ended_utc"] = utc_now()
        record(status, entry)
        return entry


# -- the loop -----------------------------------------------------------------------------------

RUNNERS = {"backup": backup_once, "replication": replicate_once}


def load_config(path: Path) -> dict[str, Any]:
    cfg: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return cfg


def serve(config: Path, job: str) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    next_due = 0.0
    while not stop.is_set():
        cfg = load_config(config)
        period = float(cfg[job]["period_s"])
        now = time.monotonic()
        if now >= next_due:
            RUNNERS[job](cfg)
            next_due = time.monotonic() + period
        # short waits: a shortened period and a SIGTERM both take effect quickly
        stop.wait(min(0.2, max(0.0, next_due - time.monotonic())))
        next_due = min(next_due, time.monotonic() + period)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.backup_scheduler",
                                description=__doc__.split("\n")[0])
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--job", choices=sorted(RUNNERS), required=True)
    p.add_argument("--once", action="store_true",
                   help="run the job once now; exit 0 if it succeeded, 1 if not")
    args = p.parse_args(argv)
    if args.once:
        entry = RUNNERS[args.job](load_config(args.config))
        print(json.dumps(entry))
        if not entry["ok"]:
            print(entry["error"], file=sys.stderr)
        return 0 if entry["ok"] else 1
    return serve(args.config, args.job)


if __name__ == "__main__":
    sys.exit(main())
