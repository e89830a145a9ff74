#!/usr/bin/env python3
"""Restores alternated: the local vault, then the same snapshot through the server.

Takes the work directory of ``run.py --server --tools kura --keep`` (its local vault
``repos/kura``, the server's data ``repos/kura-server`` and the agent's config
``home/kura-server/agent.toml``), starts ``kura-server quickstart`` again on that data
and on the port the agent was registered with, and restores ``latest`` N times each
way, alternated, each after ``sync`` and a dropped page cache. Per restore it prints the
wall time, the agent's CPU (``ru_utime + ru_stime``), the server's CPU during it
(``/proc/PID/stat``) and how many ``POST /api/v1/vault/blobs`` requests the server
answered (its ``/metrics``); at the end the medians and server/local per pair.

``--target`` should be on tmpfs (``/dev/shm/...``): restored trees are deleted after
every pair, and on ext4 without a journal, creating files right after tens of thousands
were deleted is several times slower (docs/benchmarks.md, 2026-11-26), which moved the
same restore by up to 40 %.

Only the Python standard library is used.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path

PASSWORD = "kura-bench-password"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="run.py's kept work directory")
    ap.add_argument("--kura", required=True, help="kura binary (kura-server beside it)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--target", type=Path, default=Path("/dev/shm/kura-restore-pairs"))
    args = ap.parse_args()

    server_exe = Path(args.kura).with_name("kura-server")
    agent_toml = args.work / "home" / "kura-server" / "agent.toml"
    port = re.search(r"localhost:(\d+)", agent_toml.read_text()).group(1)
    server = subprocess.Popen(
        [server_exe, "quickstart", "--json", "--data", args.work / "repos" / "kura-server",
         "--customer-listen", f"127.0.0.1:{port}", "--management-listen", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    info = json.loads(server.stdout.readline())

    def server_cpu() -> float:
        fields = Path(f"/proc/{server.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def blob_requests() -> int:
        text = subprocess.run(["curl", "-sk", info["management_url"] + "/metrics"],
                              capture_output=True, text=True).stdout
        m = re.search(r'request_duration_seconds_count\{[^}]*route="/api/v1/vault/blobs"'
                      r'[^}]*\} (\d+)', text)
        return int(m.group(1)) if m else 0

    walls: dict[str, list[float]] = {"local": [], "server": []}
    try:
        for run in range(args.runs):
            for kind in ("local", "server"):
                target = args.target / kind
                shutil.rmtree(target, ignore_errors=True)
                env = dict(os.environ, KURA_PASSWORD=PASSWORD)
                if kind == "local":
                    cmd = [args.kura, "--repo", str(args.work / "repos" / "kura")]
                else:
                    cmd = [args.kura]
                    env["KURA_CONFIG"] = str(agent_toml)
                cmd += ["restore", "latest", "--target", str(target)]
                subprocess.run(["sync"], check=True)
                Path("/proc/sys/vm/drop_caches").write_text("3\n")
                cpu0, req0 = server_cpu(), blob_requests()
                start = time.perf_counter()
                proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
                _, status, usage = os.wait4(proc.pid, 0)
                wall = time.perf_counter() - start
                if status != 0:
                    raise SystemExit(f"{kind} restore failed (status {status})")
                walls[kind].append(wall)
                srv = server_cpu() - cpu0 if kind == "server" else 0.0
                print(f"{run} {kind:6} {wall:5.2f} s  agent {usage.ru_utime + usage.ru_stime:.2f}"
                      f" CPU-s  server {srv:.2f} CPU-s  blobs requests {blob_requests() - req0}",
                      flush=True)
            shutil.rmtree(args.target, ignore_errors=True)
    finally:
        server.terminate()
        server.wait()
    local, remote = statistics.median(walls["local"]), statistics.median(walls["server"])
    print(f"median local {local:.2f} s, through the server {remote:.2f} s: "
          f"server/local throughput {local / remote:.2f}x")
    print("per pair: " + " ".join(f"{a / b:.2f}" for a, b in zip(walls["local"], walls["server"])))


if __name__ == "__main__":
    main()
