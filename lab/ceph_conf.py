"""The lab cluster's ceph.conf: what each daemon is told, and why (the comments)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from lab.ceph_proc import RGW_ENTITY

if TYPE_CHECKING:
    from lab.ceph_daemons import CephDaemons

#: Ceph refuses an osd_memory_target below this (896 MiB); it is a target, not a hard limit.
OSD_MEMORY_TARGET = 939_524_096


def conf_sections(self: CephDaemons, fsid: str) -> dict[str, dict[str, object]]:
    """Every section of the cluster's ceph.conf, for this root, these ports and this OSD size."""
    r = self.root
    asok = self._asok_dir
    per_daemon = {
        "pid_file": f"{self.run_dir}/$name.pid",
        "admin_socket": f"{asok}/$name.asok",
        "log_file": f"{self.log_dir}/$name.log",
    }
    rgw: dict[str, object] = {
        **per_daemon,
        "rgw_frontends": f"beast endpoint=127.0.0.1:{self.rgw_port}",
        "rgw_data": f"{r}/rgw",
        "rgw_thread_pool_size": 64,
        # Deleted objects are reclaimed by garbage collection: make it run soon (default 2 h).
        "rgw_gc_obj_min_wait": 10,
        "rgw_gc_processor_period": 15,
        "rgw_gc_processor_max_time": 15,
        **self.extra_rgw_conf,
    }
    return {
        "global": {
            "fsid": fsid,
            "mon_host": f"v2:127.0.0.1:{self.mon_port}",
            "ms_bind_msgr1": "false",
            "ms_bind_msgr2": "true",
            "public_addr": "127.0.0.1",
            "cluster_addr": "127.0.0.1",
            "auth_cluster_required": "none",
            "auth_service_required": "none",
            "auth_client_required": "none",
            "run_dir": str(self.run_dir),
            "crash_dir": f"{r}/crash",
            "mon_cluster_log_file": f"{self.log_dir}/cluster.log",
            "osd_pool_default_size": 1,
            "osd_pool_default_min_size": 1,
            "osd_pool_default_pg_num": 8,
            "osd_pool_default_pgp_num": 8,
            "osd_pool_default_pg_autoscale_mode": "off",
            "mon_allow_pool_size_one": "true",
            "mon_warn_on_pool_no_redundancy": "false",
            "mon_max_pg_per_osd": 1000,
            "osd_crush_chooseleaf_type": 0,
            "paxos_propose_interval": 0.05,
            # A nearly full host disk must not make the mon shut itself down mid-drill.
            "mon_data_avail_crit": 0,
            "mon_data_avail_warn": 1,
            # Without cephx these warnings are noise in `ceph health`.
            "mon_warn_on_insecure_global_id_reclaim": "false",
            "mon_warn_on_insecure_global_id_reclaim_allowed": "false",
        },
        "client": {
            "ms_mon_client_mode": "crc",
            "client_mount_timeout": 30,
            "rados_mon_op_timeout": 60,
            "rados_osd_op_timeout": 60,
        },
        "mon": {
            **per_daemon,
            "mon_data": f"{r}/mon/$id",
        },
        "osd": {
            **per_daemon,
            "osd_data": f"{r}/osd/$id",
            "osd_objectstore": "bluestore",
            "bluestore_block_create": "true",
            "bluestore_block_size": self.osd_size_bytes,
            "osd_memory_target": OSD_MEMORY_TARGET,
            "osd_memory_target_autotune": "false",
            "bluestore_cache_autotune": "true",
        },
        RGW_ENTITY: rgw,
    }


def render_conf(sections: Mapping[str, Mapping[str, object]]) -> str:
    out: list[str] = ["# Written by drillbook lab/ceph.py; rewritten on every up().", ""]
    for section, options in sections.items():
        out.append(f"[{section}]")
        out.extend(f"{key} = {value}" for key, value in options.items())
        out.append("")
    return "\n".join(out)
