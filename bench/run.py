#!/usr/bin/env python3
"""Benchmark Kura against restic and borg on the same generated data.

One run generates a dataset (``gen_dataset.py``), then walks every tool through
the same phases, phase by phase, so that all tools see the same bytes:

1. init a repository (not timed);
2. initial backup of the dataset;
3. a second backup of the untouched dataset (no-change backup);
4. the dataset is mutated once (about 2 % of its bytes), then each tool backs
   it up again; the repository growth (``du -sb`` after minus before) is the
   "bytes added by the mutation", measured the same way for every tool;
5. restore of the latest snapshot into an empty directory, verified against
   the dataset by hashing every file;
6. final repository size (``du -sb``).

Every timed step runs as a child process; its wall time is measured with
``time.perf_counter`` and its peak RSS is ``ru_maxrss`` from ``os.wait4``. Before
every step, for every tool alike, dirty pages are written out (``sync``) and the
page cache is dropped where the kernel allows it (``/proc/sys/vm/drop_caches``);
the report says which it was, with the host's CPU model, cores, kernel and the
tools' versions (also in the JSON).
Results are printed as a table with Kura/peer ratios and the project's
targets; ``--json`` writes them to a file, ``--markdown`` prints markdown.

``--server`` adds a ``kura-server`` column: the same ``kura`` binary registered
with a ``kura-server quickstart`` on loopback (TLS, HTTP/2, SQLite), so the
vault sits behind the service; its ratios to local Kura are printed too, with
the server's own CPU time and peak RSS (``VmHWM``).

``--load-agents N`` is a separate mode: N agents, each its own registered
machine with its own data, back up at once through one server; it reports the
aggregate throughput against one agent alone (see ``load.py``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
import gen_dataset  # noqa: E402
from server import KuraServer, ServerError  # noqa: E402

MIB = 1024 * 1024
PASSWORD = "kura-bench-password"
KURA_TOOLS = ("kura", "kura-plain", "kura-server")
PEERS = ("restic", "borg")
BACKUP_STEPS = ("initial", "nochange", "mutation")


# ---------------------------------------------------------------------------
# tools
# ---------------------------------------------------------------------------
@dataclass
class Tool:
    """How to drive one backup program; subclasses fill in the commands."""

    name: str
    exe: str
    work: Path

    @property
    def repo(self) -> Path:
        return self.work / "repos" / self.name

    def env(self) -> dict[str, str]:
        """Environment with caches and config kept inside the work directory."""
        base = self.work / "home" / self.name
        env = dict(os.environ)
        env.update(XDG_CACHE_HOME=str(base / "cache"), XDG_CONFIG_HOME=str(base / "config"))
        return env

    def cwd_for_restore(self, target: Path) -> Path | None:
        return None

    def prepare(self) -> None:
        """Set-up before init (not timed): e.g. start a server and register."""

    def stop(self) -> None:
        """Tear-down after the run."""

    def version_cmd(self) -> list[str]:
        return [self.exe, "--version"]

    def version(self) -> str:
        try:
            out = subprocess.run(self.version_cmd(), capture_output=True, text=True,
                                 env=self.env(), timeout=30)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "unknown"

    def init_cmd(self) -> list[str]:
        raise NotImplementedError

    def backup_cmd(self, data: Path, n: int) -> list[str]:
        raise NotImplementedError

    def restore_cmd(self, target: Path, n: int) -> list[str]:
        raise NotImplementedError


class Restic(Tool):
    """restic: always encrypted; repository format 2 (zstd, compression auto)."""

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(RESTIC_PASSWORD=PASSWORD,
                   RESTIC_CACHE_DIR=str(self.work / "home" / self.name / "restic-cache"))
        return env

    def version_cmd(self) -> list[str]:
        return [self.exe, "version"]

    def init_cmd(self) -> list[str]:
        return [self.exe, "--repo", str(self.repo), "init", "--repository-version", "2"]

    def backup_cmd(self, data: Path, n: int) -> list[str]:
        return [self.exe, "--repo", str(self.repo), "backup", "--json", str(data)]

    def restore_cmd(self, target: Path, n: int) -> list[str]:
        return [self.exe, "--repo", str(self.repo), "restore", "latest", "--target", str(target)]


@dataclass
class Borg(Tool):
    """borg 1.x: repokey-blake2 encryption, compression given by --borg-compression."""

    compression: str = "lz4"

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(BORG_PASSPHRASE=PASSWORD,
                   BORG_BASE_DIR=str(self.work / "home" / self.name),
                   BORG_RELOCATED_REPO_ACCESS_IS_OK="yes",
                   BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes")
        return env

    def init_cmd(self) -> list[str]:
        return [self.exe, "init", "--encryption=repokey-blake2", str(self.repo)]

    def backup_cmd(self, data: Path, n: int) -> list[str]:
        return [self.exe, "create", "--json", "--compression", self.compression,
                f"{self.repo}::snap{n}", str(data)]

    def restore_cmd(self, target: Path, n: int) -> list[str]:
        return [self.exe, "extract", f"{self.repo}::snap{n}"]

    def cwd_for_restore(self, target: Path) -> Path | None:
        return target


@dataclass
class Kura(Tool):
    """kura CLI (see the contract in README.md); encrypted unless encrypt=False."""

    encrypt: bool = True

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(KURA_PASSWORD=PASSWORD)
        env.pop("KURA_REPO", None)
        return env

    def init_cmd(self) -> list[str]:
        return [self.exe, "--repo", str(self.repo), "init"] + (["--encrypt"] if self.encrypt else [])

    def backup_cmd(self, data: Path, n: int) -> list[str]:
        return [self.exe, "--repo", str(self.repo), "--json", "backup", str(data)]

    def restore_cmd(self, target: Path, n: int) -> list[str]:
        return [self.exe, "--repo", str(self.repo), "restore", "latest", "--target", str(target)]


@dataclass
class KuraRemote(Kura):
    """The same kura binary, registered with a kura-server on loopback (no --repo).

    The server is ``kura-server quickstart`` (TLS, HTTP/2, SQLite) in its own data
    directory; the vault is encrypted, like the ``kura`` column's. The vault size is
    that of the tenant's vault directory on the server (its catalog and objects)."""

    server_exe: str = ""
    server: KuraServer | None = None

    @property
    def service_dir(self) -> Path:
        return self.work / "repos" / self.name

    @property
    def repo(self) -> Path:
        return self.service_dir / "vaults"

    def env(self) -> dict[str, str]:
        env = super().env()
        env["KURA_CONFIG"] = str(self.work / "home" / self.name / "agent.toml")
        return env

    def version(self) -> str:
        try:
            out = subprocess.run([self.server_exe, "--version"], capture_output=True, text=True,
                                 timeout=30)
            return f"{super().version()} + {out.stdout.strip()}"
        except (OSError, subprocess.SubprocessError):
            return super().version()

    def prepare(self) -> None:
        self.server = KuraServer(self.server_exe, self.service_dir, self.work / "logs")
        info = self.server.start()
        self.server.register(self.exe, self.env(), info["registration_token"], "bench-01")

    def stop(self) -> None:
        if self.server:
            self.server.stop()

    def init_cmd(self) -> list[str]:
        return [self.exe, "init", "--encrypt"]

    def backup_cmd(self, data: Path, n: int) -> list[str]:
        return [self.exe, "--json", "backup", str(data)]

    def restore_cmd(self, target: Path, n: int) -> list[str]:
        return [self.exe, "restore", "latest", "--target", str(target)]


# ---------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------
@dataclass
class StepResult:
    wall_s: float = 0.0
    maxrss_kib: int = 0
    cpu_s: float = 0.0  # the child's user + system CPU time
    server_cpu_s: float | None = None  # CPU time the server spent during the step
    returncode: int = 0
    bytes: int = 0  # dataset bytes the step processed
    summary: dict | None = None  # the tool's own JSON summary, when it printed one
    cache_dropped: bool = False  # the page cache was dropped before the step


@dataclass
class ToolResult:
    name: str
    version: str = ""
    steps: dict[str, StepResult] = field(default_factory=dict)
    repo_bytes: dict[str, int] = field(default_factory=dict)
    restore_ok: bool | None = None
    restore_problems: list[str] = field(default_factory=list)
    error: str | None = None
    server_peak_rss_kib: int | None = None  # kura-server only: VmHWM at the end

    def throughput(self, step: str) -> float | None:
        s = self.steps.get(step)
        return s.bytes / s.wall_s / MIB if s and s.wall_s > 0 else None

    @property
    def mutation_added(self) -> int | None:
        rb = self.repo_bytes
        if "after_mutation" in rb and "before_mutation" in rb:
            return rb["after_mutation"] - rb["before_mutation"]
        return None

    def peak_rss_kib_of(self, steps: tuple[str, ...]) -> int | None:
        rss = [s.maxrss_kib for name, s in self.steps.items() if name in steps]
        return max(rss) if rss else None

    @property
    def peak_rss_kib(self) -> int | None:
        """Peak RSS over the backups and the restore (init is not counted)."""
        return self.peak_rss_kib_of(BACKUP_STEPS + ("restore",))


_START = time.monotonic()


def progress(msg: str, end: str = "\n") -> None:
    """A progress line on stderr; phase headers carry the elapsed time."""
    print(msg, end=end, flush=True, file=sys.stderr)


def phase(msg: str) -> None:
    elapsed = int(time.monotonic() - _START)
    progress(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {msg}")


class StepFailed(Exception):
    pass


DROP_CACHES = Path("/proc/sys/vm/drop_caches")
# Cleared by --keep-page-cache (how every figure before 2026-12-03 was taken).
DROP_PAGE_CACHE = True


def settle() -> bool:
    """Writes out dirty pages, then drops the page cache if the kernel lets this process.
    Returns whether the cache was dropped.

    Without the ``sync`` a step pays for writing back what the step before it wrote (the
    generated dataset, another tool's repository), and which tool pays depends on the
    order the tools run in. Without the drop every tool reads warm data; that is the same
    for all of them, but it is not a first backup of data nobody has read lately."""
    os.sync()
    if not DROP_PAGE_CACHE:
        return False
    try:
        DROP_CACHES.write_text("3\n")
    except OSError:
        return False
    return True


def run_measured(cmd: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
                 ) -> StepResult:
    """Run cmd with stdout/stderr to log files; wall time and the child's peak RSS. The
    machine is settled first (not timed, see ``settle``)."""
    dropped = settle()
    log.parent.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log.with_suffix(".out"), log.with_suffix(".err")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    result = StepResult(wall_s=wall, maxrss_kib=usage.ru_maxrss,
                        cpu_s=usage.ru_utime + usage.ru_stime, returncode=proc.returncode,
                        summary=last_json_line(out_path), cache_dropped=dropped)
    if proc.returncode != 0:
        tail = err_path.read_text(errors="replace")[-2000:]
        raise StepFailed(f"{' '.join(cmd)} exited with {proc.returncode}:\n{tail}")
    return result


def last_json_line(path: Path) -> dict | None:
    """The last stdout line that parses as a JSON object, or the whole output."""
    text = path.read_text(errors="replace").strip()
    candidates = [text] + text.splitlines()[::-1][:5]
    for chunk in candidates:
        try:
            value = json.loads(chunk)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def du_bytes(path: Path) -> int:
    """Apparent size of a directory tree in bytes (du -sb)."""
    out = subprocess.run(["du", "-sb", str(path)], check=True, capture_output=True, text=True)
    return int(out.stdout.split()[0])


def tree_bytes(path: Path) -> int:
    return sum(size for _, size in gen_dataset.list_files(path))


# ---------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------
def ensure_debian_packages(packages: dict[str, str]) -> None:
    """Install missing programs ({program: package}) with apt-get, idempotently."""
    missing = sorted({pkg for prog, pkg in packages.items() if not shutil.which(prog)})
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    apt = sudo + ["apt-get", "-o", "DPkg::Lock::Timeout=900"]
    install = apt + ["install", "-y", "--no-install-recommends"] + missing
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    phase(f"installing {' '.join(missing)} ...")
    if subprocess.run(install, env=env).returncode != 0:
        subprocess.run(apt + ["update"], env=env, check=True)
        subprocess.run(install, env=env, check=True)


def build_release(*packages: str) -> Path:
    """cargo build --release -p PACKAGE...; returns the release directory."""
    flags = [a for p in packages for a in ("-p", p)]
    phase(f"building {', '.join(packages)} (cargo build --release {' '.join(flags)}) ...")
    subprocess.run(["cargo", "build", "--release", *flags], cwd=REPO_ROOT, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    if not target.is_absolute():
        target = REPO_ROOT / target
    return target / "release"


def find_binaries(args: argparse.Namespace, server: bool) -> tuple[str, str | None]:
    """The kura binary, and kura-server when server is true: the given paths, else
    kura-server beside the given kura, else built with cargo."""
    kura, kura_server = args.kura, args.kura_server
    if server and not kura_server and kura:
        sibling = Path(kura).resolve().parent / "kura-server"
        kura_server = str(sibling) if os.access(sibling, os.X_OK) else None
    if not kura or (server and not kura_server):
        release = build_release("kura", "kura-server") if server else build_release("kura")
        kura = kura or str(release / "kura")
        kura_server = kura_server or (str(release / "kura-server") if server else None)
    for exe in (kura, kura_server):
        if exe and not os.access(exe, os.X_OK):
            sys.exit(f"binary not found or not executable: {exe}")
    return str(Path(kura).resolve()), str(Path(kura_server).resolve()) if kura_server else None


def make_tools(args: argparse.Namespace, work: Path) -> list[Tool]:
    names = [t.strip() for t in args.tools.split(",") if t.strip()]
    if args.kura_unencrypted and "kura-plain" not in names:
        names.insert(names.index("kura") + 1 if "kura" in names else 0, "kura-plain")
    if args.server and "kura-server" not in names:
        after = [n for n in ("kura", "kura-plain") if n in names]
        names.insert(names.index(after[-1]) + 1 if after else 0, "kura-server")
    unknown = set(names) - set(KURA_TOOLS) - set(PEERS)
    if unknown:
        sys.exit(f"unknown tools: {', '.join(sorted(unknown))}")
    ensure_debian_packages({p: pkg for p, pkg in (("restic", "restic"), ("borg", "borgbackup"))
                            if p in names})
    kura = kura_server = None
    if any(n in KURA_TOOLS for n in names):
        kura, kura_server = find_binaries(args, "kura-server" in names)
    tools: list[Tool] = []
    for n in names:
        if n == "restic":
            tools.append(Restic(n, shutil.which("restic"), work))
        elif n == "borg":
            tools.append(Borg(n, shutil.which("borg"), work, compression=args.borg_compression))
        elif n == "kura-server":
            tools.append(KuraRemote(n, kura, work, encrypt=True, server_exe=kura_server))
        else:
            tools.append(Kura(n, kura, work, encrypt=(n == "kura")))
    return tools


def prepare_work(work: Path, size_mib: int) -> None:
    """Remove what an earlier run left in the work directory; check free space."""
    work.mkdir(parents=True, exist_ok=True)
    for sub in ("data", "repos", "restore", "home", "logs"):
        shutil.rmtree(work / sub, ignore_errors=True)
    free = shutil.disk_usage(work).free
    need = 8 * size_mib * MIB  # data, four vaults, four restored trees
    if free < need:
        progress(f"warning: {free // MIB} MiB free in {work}, the run may need ~{need // MIB} MiB")


# ---------------------------------------------------------------------------
# the phases
# ---------------------------------------------------------------------------
class Bench:
    def __init__(self, tools: list[Tool], work: Path, data: Path) -> None:
        self.tools = tools
        self.work = work
        self.data = data
        self.results = {t.name: ToolResult(t.name, version=t.version()) for t in tools}

    def live(self) -> list[Tool]:
        """Tools that have not failed yet."""
        return [t for t in self.tools if self.results[t.name].error is None]

    def step(self, tool: Tool, label: str, cmd: list[str], cwd: Path | None = None,
             data_bytes: int = 0) -> StepResult | None:
        """Run one step of one tool; a failure marks the tool as failed."""
        res = self.results[tool.name]
        progress(f"  {tool.name:<11} {label:<10} ", end="")
        server = getattr(tool, "server", None)
        cpu0 = server.cpu_s() if server else None
        try:
            r = run_measured(cmd, tool.env(), self.work / "logs" / f"{tool.name}-{label}", cwd)
        except (StepFailed, OSError) as e:
            res.error = f"{label}: {e}"
            progress(f"FAILED\n{e}")
            return None
        r.bytes = data_bytes
        extra = ""
        if server:
            r.server_cpu_s = server.cpu_s() - cpu0
            extra = f"  (server: {r.server_cpu_s:.2f} s CPU, {server.rss_kib() / 1024:.1f} MiB RSS)"
        progress(f"{r.wall_s:8.2f} s  {r.maxrss_kib / 1024:8.1f} MiB RSS  "
                 f"{r.cpu_s:7.2f} s CPU{extra}")
        return r

    def init(self) -> None:
        phase("init")
        for tool in self.live():
            tool.repo.parent.mkdir(parents=True, exist_ok=True)
            try:
                tool.prepare()
            except (ServerError, OSError, subprocess.SubprocessError) as e:
                self.results[tool.name].error = f"prepare: {e}"
                progress(f"  {tool.name}: set-up FAILED: {e}")
                continue
            self.step(tool, "init", tool.init_cmd())

    def finish(self) -> None:
        """Records what the servers cost over the whole run, then stops them."""
        for tool in self.tools:
            server = getattr(tool, "server", None)
            if server and server.proc and server.proc.poll() is None:
                self.results[tool.name].server_peak_rss_kib = server.peak_rss_kib()
            tool.stop()

    def backup(self, n: int) -> None:
        label = BACKUP_STEPS[n - 1]
        size = tree_bytes(self.data)
        phase(f"backup {n} ({label}, {size / MIB:.1f} MiB)")
        for tool in self.live():
            res = self.results[tool.name]
            res.repo_bytes[f"before_{label}"] = du_bytes(tool.repo)
            r = self.step(tool, label, tool.backup_cmd(self.data, n), data_bytes=size)
            if r:
                res.steps[label] = r
                res.repo_bytes[f"after_{label}"] = du_bytes(tool.repo)

    def restore(self, n: int) -> None:
        """Each tool restores into its own empty directory; the restored trees are deleted
        only after every tool has restored. (On ext4 without a journal, as here, creating
        files soon after tens of thousands were deleted is several times slower: inode
        allocation skips inodes deleted in the last minutes. Deleting one tool's restore
        before the next tool's would slow the next one down.)"""
        expected = gen_dataset.tree_digests(self.data)
        size = tree_bytes(self.data)
        phase(f"restore ({size / MIB:.1f} MiB)")
        for tool in self.live():
            target = self.work / "restore" / tool.name
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            res = self.results[tool.name]
            r = self.step(tool, "restore", tool.restore_cmd(target, n),
                          cwd=tool.cwd_for_restore(target), data_bytes=size)
            if r:
                res.steps["restore"] = r
                t0 = time.monotonic()
                res.restore_problems = compare_trees(expected, restored_root(target, self.data))
                res.restore_ok = not res.restore_problems
                if res.restore_ok:
                    progress(f"  {tool.name:<10} verified in {time.monotonic() - t0:.1f} s")
                else:
                    progress(f"  {tool.name}: RESTORE MISMATCH: {res.restore_problems[:5]}")
            res.repo_bytes["final"] = du_bytes(tool.repo)
        shutil.rmtree(self.work / "restore", ignore_errors=True)


def restored_root(target: Path, data: Path) -> Path:
    """Where the dataset landed below the restore target.

    restic and borg recreate the absolute source path below the target; a tool
    may also restore the directory by its base name, or its contents directly.
    """
    for candidate in (target / str(data).lstrip("/"), target / data.name):
        if candidate.is_dir():
            return candidate
    return target


def compare_trees(expected: dict[str, str], root: Path, limit: int = 20) -> list[str]:
    """Differences between the expected digests and the tree at root."""
    got = gen_dataset.tree_digests(root)
    problems = []
    for rel in sorted(expected.keys() | got.keys()):
        if expected.get(rel) != got.get(rel):
            problems.append(f"{rel}: expected {expected.get(rel)}, got {got.get(rel)}")
            if len(problems) >= limit:
                break
    return problems


def generate_data(data: Path, size_mib: int, seed: int, percent: float | None = None) -> dict:
    """Run gen_dataset.py generate (percent None) or mutate; returns its JSON."""
    script = [sys.executable, str(BENCH_DIR / "gen_dataset.py")]
    if percent is None:
        cmd = script + ["generate", str(data), "--size-mib", str(size_mib), "--seed", str(seed)]
    else:
        cmd = script + ["mutate", str(data), "--percent", str(percent), "--seed", str(seed)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
# (label, metric, peer, comparison, target); metric names are ratio() keys.
TARGETS = (
    ("initial backup throughput", "initial", "restic", ">=", 2.0),
    ("initial backup throughput", "initial", "borg", ">=", 3.0),
    ("no-change backup throughput", "nochange", "restic", ">=", 2.0),
    ("no-change backup throughput", "nochange", "borg", None, None),
    ("mutation backup throughput", "mutation", "restic", None, None),
    ("mutation backup throughput", "mutation", "borg", None, None),
    ("restore throughput", "restore", "restic", ">=", 1.5),
    ("restore throughput", "restore", "borg", None, None),
    ("bytes added by mutation", "added", "restic", "<=", 0.5),
    ("bytes added by mutation", "added", "borg", None, None),
    ("vault size", "vault", "restic", "<=", 1.0),
    ("vault size", "vault", "borg", None, None),
    ("peak RSS", "rss", "restic", "<=", 1.0),
    ("peak RSS", "rss", "borg", None, None),
)


def ratio(kura: ToolResult, peer: ToolResult, metric: str) -> float | None:
    """Kura/peer: throughput ratios (higher is better) or size ratios (lower is better)."""
    if metric in BACKUP_STEPS or metric == "restore":
        a, b = kura.throughput(metric), peer.throughput(metric)
    elif metric == "added":
        a, b = kura.mutation_added, peer.mutation_added
    elif metric == "vault":
        a, b = kura.repo_bytes.get("final"), peer.repo_bytes.get("final")
    else:
        a, b = kura.peak_rss_kib, peer.peak_rss_kib
    if a is None or not b:
        return None
    return a / b


def ratio_rows(results: dict[str, ToolResult]) -> list[dict]:
    rows = []
    for k in (n for n in KURA_TOOLS if n in results):
        for label, metric, peer, cmp, target in TARGETS:
            if peer not in results:
                continue
            value = ratio(results[k], results[peer], metric)
            met = None
            if value is not None and target is not None:
                met = value >= target if cmp == ">=" else value <= target
            rows.append({"kura": k, "metric": label, "peer": peer, "ratio": value,
                         "target": f"{cmp} {target}" if target is not None else "",
                         "met": met})
    return rows


def ratio_table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Ratios grouped by metric: one column per Kura variant and peer."""
    pairs = list(dict.fromkeys((r["kura"], r["peer"]) for r in rows))
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    cells = {(r["metric"], r["kura"], r["peer"]): r for r in rows}
    header = ["ratio (Kura/peer)", "target"] + [f"{k}/{p}" for k, p in pairs]
    table = []
    for metric in metrics:
        targets = dict.fromkeys(f"{r['target']} vs {r['peer']}" for r in rows
                                if r["metric"] == metric and r["target"])
        line = [metric, ", ".join(targets)]
        for k, p in pairs:
            r = cells.get((metric, k, p))
            if r is None:
                line.append("")
                continue
            status = "" if r["met"] is None else (" met" if r["met"] else " NOT met")
            line.append(fmt(r["ratio"], ".2f", "x") + status)
        table.append(line)
    return header, table


def fmt(value, spec: str = ".2f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def result_rows(results: dict[str, ToolResult], sizes: dict[str, int]) -> list[list[str]]:
    """Rows of the main table: one column per tool."""
    rs = list(results.values())

    def mib(v):
        return None if v is None else v / MIB

    def mib_k(kib):
        return None if kib is None else kib / 1024

    def step_cells(step):
        return [f"{fmt(r.steps[step].wall_s)} s ({fmt(r.throughput(step), '.1f')} MiB/s)"
                if step in r.steps else "-" for r in rs]

    rows = [
        ["initial backup"] + step_cells("initial"),
        ["no-change backup"] + step_cells("nochange"),
        ["mutation backup"] + step_cells("mutation"),
        ["restore latest"] + step_cells("restore"),
        ["added by mutation (MiB)"] + [fmt(mib(r.mutation_added), ".1f") for r in rs],
        ["vault size (MiB)"] + [fmt(mib(r.repo_bytes.get("final")), ".1f") for r in rs],
        ["vault / data"] + [fmt(r.repo_bytes["final"] / sizes["final"])
                            if "final" in r.repo_bytes else "-" for r in rs],
        ["peak RSS backup (MiB)"] + [fmt(mib_k(r.peak_rss_kib_of(BACKUP_STEPS)), ".1f")
                                     for r in rs],
        ["peak RSS restore (MiB)"] + [fmt(mib_k(r.peak_rss_kib_of(("restore",))), ".1f")
                                      for r in rs],
        ["restore verified"] + ["-" if r.restore_ok is None else ("ok" if r.restore_ok
                                                                  else "MISMATCH") for r in rs],
    ]
    if any(r.server_peak_rss_kib for r in rs):
        rows.append(["server peak RSS (MiB)"] + [fmt(mib_k(r.server_peak_rss_kib), ".1f")
                                                 for r in rs])
    if any(r.error for r in rs):
        rows.append(["failed step"] + [r.error.split(":")[0] if r.error else "" for r in rs])
    return rows


# (label, metric, target): kura-server/kura, higher is better for every throughput.
SERVER_TARGETS = (
    ("initial backup throughput", "initial", 0.80),
    ("no-change backup throughput", "nochange", 0.80),
    ("mutation backup throughput", "mutation", None),
    ("restore throughput", "restore", 0.80),
)


def server_ratio_rows(results: dict[str, ToolResult]) -> list[dict]:
    """kura-server/kura: what going through the service costs against a local vault."""
    if "kura-server" not in results or "kura" not in results:
        return []
    remote, local = results["kura-server"], results["kura"]
    rows = []
    for label, metric, target in SERVER_TARGETS:
        a, b = remote.throughput(metric), local.throughput(metric)
        value = a / b if a is not None and b else None
        met = None if value is None or target is None else value >= target
        rows.append({"metric": label, "ratio": value, "target": target, "met": met})
    return rows


def server_ratio_table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    table = []
    for r in rows:
        status = "" if r["met"] is None else (" met" if r["met"] else " NOT met")
        table.append([r["metric"], "" if r["target"] is None else f">= {r['target']:.2f}",
                      fmt(r["ratio"], ".2f", "x") + status])
    return ["ratio (server/local)", "target", "kura-server/kura"], table


def cpu_rows(results: dict[str, ToolResult]) -> list[list[str]]:
    """CPU seconds per step: the tool's own, plus the server's for kura-server."""
    rows = []
    for step, label in (("initial", "initial backup"), ("nochange", "no-change backup"),
                        ("mutation", "mutation backup"), ("restore", "restore latest")):
        line = [label]
        for r in results.values():
            st = r.steps.get(step)
            if st is None:
                line.append("-")
            elif st.server_cpu_s is not None:
                line.append(f"{st.cpu_s:.2f} + {st.server_cpu_s:.2f} "
                            f"({(st.cpu_s + st.server_cpu_s) / st.wall_s:.2f} cores)")
            else:
                line.append(f"{st.cpu_s:.2f} ({st.cpu_s / st.wall_s:.2f} cores)")
        rows.append(line)
    return rows


def render(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


def report(meta: dict, results: dict[str, ToolResult], markdown: bool) -> str:
    sizes = meta["data_bytes"]
    out = [
        f"Dataset: {sizes['initial'] / MIB:.1f} MiB, {meta['dataset']['files']} files "
        f"(seed {meta['seed']}); mutation changed {meta['mutation']['changed_bytes'] / MIB:.1f} "
        f"MiB ({meta['mutation']['changed_percent']} %); after it {sizes['final'] / MIB:.1f} MiB.",
        f"Machine: {meta['machine']}; load average {meta['load_before']:.2f} at the start, "
        f"{meta['load_after']:.2f} at the end. {meta['page_cache']}. Kura built from "
        f"{meta['kura_revision']}."
        + (" restic: repo v2, compression auto." if "restic" in results else "")
        + (f" borg: compression {meta['borg_compression']}." if "borg" in results else ""),
        "",
        render(["step"] + list(results), result_rows(results, sizes), markdown),
    ]
    rows = ratio_rows(results)
    if rows:
        out += ["", render(*ratio_table(rows), markdown)]
    server_rows = server_ratio_rows(results)
    if server_rows:
        out += ["", render(*server_ratio_table(server_rows), markdown)]
    out += ["", "CPU seconds (user + system) of each step; for kura-server the agent's "
                "+ the server's, and the cores they kept busy on average:", "",
            render(["CPU s"] + list(results), cpu_rows(results), markdown)]
    versions = ", ".join(f"{r.name}: {r.version}" for r in results.values())
    out += ["", f"Versions: {versions}"]
    return "\n".join(out)


def host_info() -> dict:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu_model": cpu, "cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
            "memory_gib": round(mem, 1), "kernel": f"{platform.system()} {platform.release()}",
            "python": platform.python_version()}


def machine() -> str:
    h = host_info()
    return f"{h['cpus']} CPUs ({h['cpu_model']}), {h['memory_gib']:.0f} GiB RAM, {h['kernel']}"


def cache_note(results: Iterable[ToolResult]) -> str:
    """How the page cache was treated, from what the steps of `results` recorded."""
    dropped = [s.cache_dropped for r in results for s in r.steps.values()]
    if dropped and all(dropped):
        return "sync and page cache dropped before every step"
    if any(dropped):
        return "sync before every step; page cache dropped before some steps only"
    why = "--keep-page-cache" if not DROP_PAGE_CACHE else "drop_caches not permitted here"
    return f"sync before every step; page cache not dropped ({why}): data warm for every tool"


def source_revision() -> str:
    """The commit of this checkout, marked dirty when tracked files differ from it."""
    try:
        head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short=10", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "an unknown revision"
    return head + ("-dirty" if dirty.strip() else "")


# ---------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024, help="dataset size (default 1024)")
    ap.add_argument("--seed", type=int, default=1, help="dataset seed (default 1)")
    ap.add_argument("--percent", type=float, default=2.0, help="mutation size in %% (default 2)")
    ap.add_argument("--work", type=Path,
                    default=Path(os.environ.get("HOME", "/tmp")) / ".cache" / "kura-bench",
                    help="work directory (default ~/.cache/kura-bench)")
    ap.add_argument("--tools", default="kura,restic,borg",
                    help="comma-separated subset of kura,restic,borg (default all)")
    ap.add_argument("--kura", help="kura binary (default: cargo build --release -p kura)")
    ap.add_argument("--kura-server", help="kura-server binary (default: beside --kura, or "
                    "cargo build --release -p kura-server)")
    ap.add_argument("--server", action="store_true",
                    help="add a 'kura-server' column: kura through a kura-server on loopback (TLS)")
    ap.add_argument("--load-agents", type=int, metavar="N",
                    help="load mode instead of the comparison: N agents back up at once "
                    "through one server (see bench/load.py)")
    ap.add_argument("--load-size-mib", type=int, default=64,
                    help="load mode: dataset size per agent (default 64)")
    ap.add_argument("--kura-unencrypted", action="store_true",
                    help="add a 'kura-plain' column with an unencrypted vault")
    ap.add_argument("--borg-compression", default="lz4", help="borg --compression (default lz4)")
    ap.add_argument("--keep", action="store_true", help="keep data and repositories")
    ap.add_argument("--keep-page-cache", action="store_true",
                    help="only sync before each step, do not drop the page cache (data warm "
                    "for every tool, as in the figures before 2026-12-03)")
    ap.add_argument("--json", type=Path, metavar="OUT", help="write results as JSON to OUT")
    ap.add_argument("--markdown", action="store_true", help="print markdown tables")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    global DROP_PAGE_CACHE
    DROP_PAGE_CACHE = not args.keep_page_cache
    work = args.work.resolve()
    if args.load_agents:
        import load
        kura, kura_server = find_binaries(args, server=True)
        return load.main(args, work, kura, kura_server)
    tools = make_tools(args, work)
    prepare_work(work, args.size_mib)
    data = work / "data"

    load_before = os.getloadavg()[0]
    phase(f"generating {args.size_mib} MiB into {data} ...")
    dataset = generate_data(data, args.size_mib, args.seed)
    bench = Bench(tools, work, data)
    try:
        bench.init()
        bench.backup(1)
        bench.backup(2)
        initial_bytes = tree_bytes(data)
        mutation = generate_data(data, args.size_mib, args.seed, percent=args.percent)
        phase(f"mutated: {json.dumps(mutation)}")
        bench.backup(3)
        bench.restore(3)
    finally:
        bench.finish()

    phase("done")
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "host": host_info(),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "page_cache": cache_note(bench.results.values()),
        "kura_revision": source_revision(),
        "tool_versions": {n: r.version for n, r in bench.results.items()},
        "size_mib": args.size_mib,
        "seed": args.seed,
        "borg_compression": args.borg_compression,
        "dataset": dataset,
        "mutation": mutation,
        "data_bytes": {"initial": initial_bytes, "final": tree_bytes(data)},
    }
    print(report(meta, bench.results, args.markdown))
    if args.json:
        args.json.write_text(json.dumps({
            "meta": meta,
            "results": {n: asdict(r) | {"mutation_added": r.mutation_added,
                                        "peak_rss_kib": r.peak_rss_kib}
                        for n, r in bench.results.items()},
            "ratios": ratio_rows(bench.results),
            "server_ratios": server_ratio_rows(bench.results),
        }, indent=2) + "\n")
    if not args.keep:
        for sub in ("data", "repos", "restore", "home"):
            shutil.rmtree(work / sub, ignore_errors=True)
    failed = any(r.error or r.restore_ok is False for r in bench.results.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
