"""Load mode of ``run.py`` (``--load-agents N``): N agents back up at once through one server.

Each agent is the real ``kura`` binary registered as its own machine (its own
``KURA_CONFIG``) of one tenant, created through the operator CLI with room for N
machines, and backs up its own generated dataset (``--load-size-mib`` each, seeds
distinct so nothing dedups across agents). All N start together; the aggregate
throughput is the sum of their source bytes over the wall time from the first start
to the last exit.

The baseline is one agent alone backing up the same N datasets in one run, into a
second tenant's vault on the same server: the same bytes, the same server, one
process instead of N, so the ratio aggregate/solo shows what concurrency costs (or
gains) on this machine. Afterwards every agent must list exactly one snapshot of the
right size, ``kura check`` must pass on both vaults, and one agent's snapshot is
restored and compared file by file. Errors are counted, never hidden: any makes the
exit status 1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import gen_dataset
from server import KuraServer, ServerError

MIB = 1024 * 1024
PASSWORD = "kura-bench-password"
TARGET = 0.80  # aggregate / solo throughput


@dataclass
class Run:
    """One `kura backup` process."""

    agent: str
    bytes: int
    wall_s: float = 0.0
    end_s: float = 0.0  # since the start of the load phase
    cpu_s: float = 0.0
    maxrss_kib: int = 0
    returncode: int | None = None
    stderr_tail: str = ""


class Agent:
    def __init__(self, name: str, root: Path, kura: str, data: list[Path]) -> None:
        self.name = name
        self.home = root / "home" / name
        self.kura = kura
        self.data = data
        self.home.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(KURA_CONFIG=str(self.home / "agent.toml"), KURA_PASSWORD=PASSWORD,
                   XDG_CACHE_HOME=str(self.home / "cache"),
                   XDG_CONFIG_HOME=str(self.home / "config"))
        env.pop("KURA_REPO", None)
        return env

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([self.kura, *args], capture_output=True, text=True,
                              env=self.env(), timeout=timeout, stdin=subprocess.DEVNULL)

    def start_backup(self, logs: Path) -> subprocess.Popen:
        out = open(logs / f"{self.name}-backup.out", "wb")
        err = open(logs / f"{self.name}-backup.err", "wb")
        proc = subprocess.Popen([self.kura, "--json", "backup", *map(str, self.data)],
                                env=self.env(), stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        out.close()
        err.close()
        return proc

    def snapshots(self) -> list[dict]:
        out = self.run("--json", "snapshots")
        if out.returncode != 0:
            raise RuntimeError(f"{self.name}: kura snapshots failed: {out.stderr.strip()[-500:]}")
        value = json.loads(out.stdout)
        return value if isinstance(value, list) else value.get("snapshots", [])


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def generate(dirs: list[tuple[Path, int]], size_mib: int) -> None:
    """Generates the datasets, two at a time (the machine has 2 cores)."""
    script = [sys.executable, str(Path(__file__).with_name("gen_dataset.py")), "generate"]

    def one(item: tuple[Path, int]) -> None:
        path, seed = item
        subprocess.run(script + [str(path), "--size-mib", str(size_mib), "--seed", str(seed)],
                       check=True, capture_output=True)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(one, dirs))


def wait_all(procs: dict[str, subprocess.Popen], runs: dict[str, Run], t0: float) -> None:
    """Waits for every process in its own thread, recording its wall time and rusage."""

    def wait(name: str) -> None:
        proc = procs[name]
        _, status, usage = os.wait4(proc.pid, 0)
        end = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        run = runs[name]
        run.end_s = end
        run.wall_s = end  # every process started within milliseconds of t0
        run.cpu_s = usage.ru_utime + usage.ru_stime
        run.maxrss_kib = usage.ru_maxrss
        run.returncode = proc.returncode

    threads = [threading.Thread(target=wait, args=(n,)) for n in procs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()[-1000:]
    except OSError:
        return ""


def main(args: argparse.Namespace, work: Path, kura: str, kura_server: str) -> int:
    n = args.load_agents
    size = args.load_size_mib
    root = work / "load"
    shutil.rmtree(root, ignore_errors=True)
    logs = root / "logs"
    logs.mkdir(parents=True)
    started = time.monotonic()

    progress(f"generating {n} datasets of {size} MiB into {root / 'data'} ...")
    dirs = [(root / "data" / f"agent-{i:02d}", args.seed * 1000 + i) for i in range(n)]
    generate(dirs, size)
    data_bytes = {p.name: sum(s for _, s in gen_dataset.list_files(p)) for p, _ in dirs}
    total = sum(data_bytes.values())
    progress(f"  {total / MIB:.1f} MiB in {time.monotonic() - started:.0f} s")

    server = KuraServer(kura_server, root / "service", logs)
    errors: list[str] = []
    try:
        info = server.start()
        progress(f"server at {info['customer_url']} (pid {server.proc.pid})")
        # One tenant for the N machines (the machine quota must allow them), one for the
        # solo baseline so that its vault shares nothing with theirs.
        load = server.operator("create", "--service-code", "LOAD-0001", "--name", "load test",
                               "--quota", "1TiB", "--max-machines", str(n + 4))
        solo_tenant = server.operator("create", "--service-code", "SOLO-0001",
                                      "--name", "load test baseline", "--quota", "1TiB",
                                      "--max-machines", "2")
        agents = [Agent(p.name, root, kura, [p]) for p, _ in dirs]
        solo = Agent("solo", root, kura, [p for p, _ in dirs])
        tokens = [load["registration_token"]] + [
            server.registration_token(load["tenant_id"]) for _ in range(n - 1)]
        for agent, token in zip(agents, tokens):
            server.register(kura, agent.env(), token, agent.name)
        server.register(kura, solo.env(), solo_tenant["registration_token"], "solo")
        for first in (agents[0], solo):
            out = first.run("init", "--encrypt")
            if out.returncode != 0:
                raise ServerError(f"kura init failed: {out.stderr.strip()[-1000:]}")
        # Each further machine gets a key slot of its own once (as `kura key add --machine`
        # does on a real fleet), so the measured backups unlock without Argon2.
        for agent in agents[1:]:
            out = agent.run("key", "add", "--machine")
            if out.returncode != 0:
                raise ServerError(f"kura key add --machine failed: {out.stderr.strip()[-1000:]}")

        # The baseline: one agent, all the data, alone.
        progress(f"solo: one agent backs up {total / MIB:.1f} MiB ...")
        cpu0 = server.cpu_s()
        t0 = time.perf_counter()
        solo_runs = {"solo": Run("solo", total)}
        wait_all({"solo": solo.start_backup(logs)}, solo_runs, t0)
        solo_run = solo_runs["solo"]
        solo_server_cpu = server.cpu_s() - cpu0
        solo_peak = server.peak_rss_kib()
        if solo_run.returncode != 0:
            errors.append(f"solo backup exited {solo_run.returncode}: "
                          f"{tail(logs / 'solo-backup.err')}")
        progress(f"  {solo_run.wall_s:.2f} s, {total / MIB / solo_run.wall_s:.1f} MiB/s")

        # The load: N agents at once.
        progress(f"load: {n} agents back up {size} MiB each, all at once ...")
        runs = {a.name: Run(a.name, data_bytes[a.name]) for a in agents}
        cpu0 = server.cpu_s()
        t0 = time.perf_counter()
        procs = {a.name: a.start_backup(logs) for a in agents}
        wait_all(procs, runs, t0)
        load_wall = max(r.end_s for r in runs.values())
        load_server_cpu = server.cpu_s() - cpu0
        load_peak = server.peak_rss_kib()
        for r in runs.values():
            if r.returncode != 0:
                r.stderr_tail = tail(logs / f"{r.agent}-backup.err")
                errors.append(f"{r.agent} backup exited {r.returncode}: {r.stderr_tail}")
        progress(f"  {load_wall:.2f} s, {total / MIB / load_wall:.1f} MiB/s aggregate")

        # Verification: one snapshot per machine, each of its agent's data; both vaults
        # check; one snapshot restored byte for byte.
        progress("verifying ...")
        for a in agents + [solo]:
            try:
                snaps = a.snapshots()
            except (RuntimeError, ValueError) as e:
                errors.append(str(e))
                continue
            want = sum(data_bytes[p.name] for p in a.data)
            if len(snaps) != 1:
                errors.append(f"{a.name}: {len(snaps)} snapshots, expected 1")
            elif snaps[0].get("bytes") != want:
                errors.append(f"{a.name}: snapshot of {snaps[0].get('bytes')} bytes, "
                              f"expected {want}")
        checked = 0
        for a in (agents[0], solo):
            out = a.run("check", timeout=1200)
            if out.returncode != 0:
                errors.append(f"kura check ({a.name}'s vault) failed: {out.stderr.strip()[-500:]}")
            else:
                checked += 1
        target = root / "restore"
        out = agents[-1].run("restore", "latest", "--target", str(target), timeout=1200)
        restored_ok = False
        if out.returncode != 0:
            errors.append(f"restore of {agents[-1].name} failed: {out.stderr.strip()[-500:]}")
        else:
            src = agents[-1].data[0]
            got = target / str(src).lstrip("/")
            restored_ok = gen_dataset.tree_digests(src) == gen_dataset.tree_digests(got)
            if not restored_ok:
                errors.append(f"restore of {agents[-1].name} does not match its data")
        shutil.rmtree(target, ignore_errors=True)
        vault_bytes = du_bytes(root / "service" / "vaults")
    except (ServerError, OSError, ValueError, subprocess.SubprocessError) as e:
        errors.append(f"set-up failed: {e}")
        progress(f"FAILED: {e}")
        print_errors(errors)
        return 1
    finally:
        server.stop()

    walls = sorted(r.wall_s for r in runs.values())
    agents_cpu = sum(r.cpu_s for r in runs.values())
    solo_tp = total / MIB / solo_run.wall_s
    agg_tp = total / MIB / load_wall
    ratio = agg_tp / solo_tp
    from run import host_info
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": host_info(),
        "agents": n,
        "size_mib_per_agent": size,
        "source_bytes": total,
        "solo": asdict(solo_run) | {"server_cpu_s": solo_server_cpu,
                                    "server_peak_rss_kib": solo_peak},
        "load": {"wall_s": load_wall, "server_cpu_s": load_server_cpu,
                 "server_peak_rss_kib": load_peak, "agents_cpu_s": agents_cpu,
                 "runs": [asdict(r) for r in runs.values()]},
        "aggregate_mib_s": agg_tp,
        "solo_mib_s": solo_tp,
        "ratio": ratio,
        "target": TARGET,
        "errors": errors,
        "vaults_checked": checked,
        "restore_verified": restored_ok,
        "vault_bytes": vault_bytes,
    }
    print(report(result, walls, args.markdown))
    print_errors(errors)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(root / "data", ignore_errors=True)
        shutil.rmtree(root / "service", ignore_errors=True)
    return 1 if errors else 0


def du_bytes(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], check=True, capture_output=True, text=True)
    return int(out.stdout.split()[0])


def print_errors(errors: list[str]) -> None:
    for e in errors:
        progress(f"ERROR: {e}")


def report(r: dict, walls: list[float], markdown: bool) -> str:
    from run import fmt, machine, render

    n = r["agents"]
    total_mib = r["source_bytes"] / MIB
    solo, load = r["solo"], r["load"]
    rows = [
        ["source data (MiB)", f"{total_mib:.1f}", f"{total_mib:.1f} ({n} × {total_mib / n:.1f})"],
        ["wall time (s)", f"{solo['wall_s']:.2f}", f"{load['wall_s']:.2f}"],
        ["throughput (MiB/s of source data)", f"{r['solo_mib_s']:.1f}",
         f"{r['aggregate_mib_s']:.1f}"],
        ["agent wall min / median / max (s)", f"{solo['wall_s']:.2f}",
         f"{walls[0]:.2f} / {statistics.median(walls):.2f} / {walls[-1]:.2f}"],
        ["agent CPU (s, all agents)", f"{solo['cpu_s']:.2f}", f"{load['agents_cpu_s']:.2f}"],
        ["server CPU (s)", f"{solo['server_cpu_s']:.2f}", f"{load['server_cpu_s']:.2f}"],
        ["cores busy (agents + server CPU / wall)",
         f"{(solo['cpu_s'] + solo['server_cpu_s']) / solo['wall_s']:.2f}",
         f"{(load['agents_cpu_s'] + load['server_cpu_s']) / load['wall_s']:.2f}"],
        ["agent peak RSS (MiB, largest)", f"{solo['maxrss_kib'] / 1024:.1f}",
         f"{max(x['maxrss_kib'] for x in load['runs']) / 1024:.1f}"],
        ["server peak RSS (MiB, VmHWM so far)", f"{solo['server_peak_rss_kib'] / 1024:.1f}",
         f"{load['server_peak_rss_kib'] / 1024:.1f}"],
        ["errors", "", str(len(r["errors"]))],
    ]
    status = "met" if r["ratio"] >= r["target"] else "NOT met"
    ratio_rows = [["aggregate / solo throughput", f">= {r['target']:.2f}",
                   f"{fmt(r['ratio'], '.2f', 'x')} {status}"]]
    snapshots_ok = not any("snapshot" in e for e in r["errors"])
    return "\n".join([
        f"Load: {n} agents (one tenant, one machine each, encrypted vault) through one "
        f"kura-server quickstart on loopback (TLS), {total_mib / n:.1f} MiB of distinct "
        f"data each; solo: one agent backs up the same {n} datasets in one run.",
        f"Machine: {machine()}. Date: {r['date']}.",
        "",
        render(["", "solo (1 agent)", f"load ({n} agents)"], rows, markdown),
        "",
        render(["ratio", "target", "value"], ratio_rows, markdown),
        "",
        f"Verified: {n + 1} agents list one snapshot each of their data: "
        f"{'ok' if snapshots_ok else 'NO'}; kura check on both vaults: "
        f"{r['vaults_checked']}/2 ok; restore of one agent's snapshot matches: "
        f"{'ok' if r['restore_verified'] else 'NO'}. Vaults on the server: "
        f"{r['vault_bytes'] / MIB:.1f} MiB.",
    ])
