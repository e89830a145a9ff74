#!/usr/bin/env python3
"""How Kura's backups grow with the number of files and chunks (the scale curve).

Each case generates its data, backs it up into a fresh encrypted local vault with
the real ``kura`` binary, backs it up again unchanged, and records for both: wall
time, CPU time and peak RSS (``ru_maxrss`` from ``os.wait4``), and the catalog
(``catalog.db`` with its WAL) and vault sizes after them. Then a small tree of
1 000 files goes into the same, now large, vault: if its time or memory grew with
the vault rather than with its own work, this row shows it. Last, ``kura gc``
runs on the vault (nothing to delete, but it marks every live chunk).

Cases (``--cases``, comma-separated):

- ``files-100k``, ``files-1m``, ``files-3m``: that many distinct small files
  (256 B-4 KiB, random hex text, about 2:1 with zstd), 100 to a directory and
  100 directories to a parent: one chunk per file, one tree per directory.
- ``chunks-1m``: a 4 GiB file of random bytes backed up as an image into a vault
  with 4 KiB image chunks: one million data chunks in one file.

``--restic-case`` (default ``files-1m``) also runs restic on that case's data in
the same run: init, initial and no-change backup, repository size.

Steps are measured as in ``run.py`` (``run_measured``: ``sync`` and, where the
kernel allows, a dropped page cache before each step). Every case's data and
vaults are deleted when the case is done, unless ``--keep``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
import run  # noqa: E402
from image import KuraImage  # noqa: E402
from run import MIB, Kura, Restic, StepFailed, StepResult, fmt, phase, progress, render  # noqa: E402

FILES_PER_DIR = 100
DIRS_PER_PARENT = 100
SMALL_TREE_FILES = 1000
IMAGE_CHUNK = 4096
CASES = {"files-100k": 100_000, "files-1m": 1_000_000, "files-3m": 3_000_000,
         "chunks-1m": 1_000_000}


@dataclass
class CaseResult:
    case: str
    tool: str
    files: int = 0
    source_bytes: int = 0
    generate_s: float = 0.0
    steps: dict[str, StepResult] = field(default_factory=dict)
    catalog_bytes: dict[str, int] = field(default_factory=dict)  # after each step
    vault_bytes: dict[str, int] = field(default_factory=dict)
    chunks: int | None = None  # chunks the initial backup stored (kura's summary)
    error: str | None = None


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
def write_small_files(root: Path, n: int, seed: int) -> int:
    """n distinct files of 256 B-4 KiB: root/dNNN/dNN/fNN.txt. Returns their bytes."""
    rng = random.Random(seed)
    total = 0
    per_parent = FILES_PER_DIR * DIRS_PER_PARENT
    for i in range(n):
        if i % FILES_PER_DIR == 0:
            d = root / f"d{i // per_parent:03d}" / f"d{i // FILES_PER_DIR % DIRS_PER_PARENT:02d}"
            d.mkdir(parents=True, exist_ok=True)
        size = int(math.exp(rng.uniform(math.log(256), math.log(4096))))
        # Hex of random bytes: unique per file, and compressible about 2:1, like text.
        data = rng.randbytes(size // 2 + 1).hex().encode()[:size]
        fd = os.open(d / f"f{i % FILES_PER_DIR:02d}.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        total += size
    return total


def write_random_file(path: Path, size: int, seed: int) -> int:
    rng = random.Random(seed)
    with open(path, "wb") as f:
        for _ in range(size // MIB):
            f.write(rng.randbytes(MIB))
    return size


def catalog_bytes(vault: Path) -> int:
    """The local catalog: catalog.db and its WAL and shared-memory files."""
    return sum(p.stat().st_size for p in vault.glob("catalog.db*"))


# ---------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------
class Case:
    def __init__(self, name: str, work: Path, kura: str, seed: int) -> None:
        self.name = name
        self.work = work / name
        self.kura = kura
        self.seed = seed
        self.data = self.work / "data"
        self.image = name.startswith("chunks-")

    def generate(self) -> tuple[int, int, float]:
        """(files, bytes, seconds) of the case's data."""
        shutil.rmtree(self.work, ignore_errors=True)
        self.data.mkdir(parents=True)
        t0 = time.monotonic()
        n = CASES[self.name]
        if self.image:
            size = write_random_file(self.data / "disk.img", n * IMAGE_CHUNK, self.seed)
            return 1, size, time.monotonic() - t0
        size = write_small_files(self.data, n, self.seed)
        return n, size, time.monotonic() - t0

    def source(self) -> Path:
        return self.data / "disk.img" if self.image else self.data

    def kura_tool(self) -> Kura:
        if self.image:
            tool = KuraImage("kura", self.kura, self.work, encrypt=True)
            tool.chunk_size = f"{IMAGE_CHUNK // 1024}KiB"
            return tool
        return Kura("kura", self.kura, self.work, encrypt=True)

    def step(self, res: CaseResult, tool, label: str, cmd: list[str]) -> StepResult | None:
        progress(f"  {res.case:<11} {res.tool:<7} {label:<9} ", end="")
        try:
            r = run.run_measured(cmd, tool.env(), self.work / "logs" / f"{res.tool}-{label}")
        except (StepFailed, OSError) as e:
            res.error = f"{label}: {e}"
            progress(f"FAILED\n{e}")
            return None
        progress(f"{r.wall_s:8.2f} s  {r.maxrss_kib / 1024:8.1f} MiB RSS  {r.cpu_s:7.2f} s CPU")
        return r

    def measure(self, res: CaseResult, tool, small: Path | None) -> None:
        """init (not kept), initial and no-change backup; then `small` into the vault."""
        tool.repo.parent.mkdir(parents=True, exist_ok=True)
        if not self.step(res, tool, "init", tool.init_cmd()):
            return
        for n, label in enumerate(("initial", "nochange"), start=1):
            r = self.step(res, tool, label, tool.backup_cmd(self.source(), n))
            if r is None:
                return
            r.bytes = res.source_bytes
            res.steps[label] = r
            res.vault_bytes[label] = run.du_bytes(tool.repo)
            if isinstance(tool, Kura):
                res.catalog_bytes[label] = catalog_bytes(tool.repo)
        if isinstance(tool, Kura):
            res.chunks = (res.steps["initial"].summary or {}).get("chunks_added")
        if small is not None:
            r = self.step(res, tool, "small", tool.backup_cmd(small, 3))
            if r:
                res.steps["small"] = r
        if isinstance(tool, Kura):
            # Nothing to delete: GC still marks every live chunk, which is the part of its
            # work (and memory) that grows with the vault.
            r = self.step(res, tool, "gc", [tool.exe, "--repo", str(tool.repo), "gc"])
            if r:
                res.steps["gc"] = r


def run_case(name: str, work: Path, kura: str, seed: int, with_restic: bool,
             small: Path) -> list[CaseResult]:
    case = Case(name, work, kura, seed)
    phase(f"{name}: generating ...")
    files, size, gen_s = case.generate()
    phase(f"{name}: {files} files, {size / MIB:.0f} MiB in {gen_s:.0f} s")
    results = []
    tools = [case.kura_tool()] + ([Restic("restic", shutil.which("restic"), case.work)]
                                  if with_restic else [])
    for tool in tools:
        res = CaseResult(name, tool.name, files=files, source_bytes=size, generate_s=gen_s)
        case.measure(res, tool, None if case.image else small)
        results.append(res)
    return results


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
def rows(results: list[CaseResult]) -> list[list[str]]:
    def step(r: CaseResult, label: str, what: str) -> str:
        s = r.steps.get(label)
        if s is None:
            return "-"
        if what == "wall":
            return f"{s.wall_s:.1f} s ({s.cpu_s:.1f} CPU-s)"
        return fmt(s.maxrss_kib / 1024, ".0f")

    out = []
    for r in results:
        out.append([
            r.case, r.tool, f"{r.files:,}", f"{r.source_bytes / MIB:,.0f}",
            "-" if r.chunks is None else f"{r.chunks:,}",
            step(r, "initial", "wall"), step(r, "initial", "rss"),
            step(r, "nochange", "wall"), step(r, "nochange", "rss"),
            fmt(r.catalog_bytes.get("nochange", 0) / MIB or None, ",.0f"),
            fmt(r.vault_bytes.get("nochange", 0) / MIB or None, ",.0f"),
            step(r, "small", "wall"), step(r, "small", "rss"),
            step(r, "gc", "wall"), step(r, "gc", "rss"),
        ])
    return out


HEADER = ["case", "tool", "files", "data MiB", "chunks stored", "initial backup", "RSS MiB",
          "no-change backup", "RSS MiB", "catalog MiB", "vault MiB",
          f"{SMALL_TREE_FILES} files into it", "RSS MiB", "gc", "RSS MiB"]


def growth(results: list[CaseResult]) -> list[list[str]]:
    """Between consecutive file cases of Kura: how much each figure grew against the files
    (an exponent of 1 is linear, 2 quadratic)."""
    kura = [r for r in results if r.tool == "kura" and r.case.startswith("files-")
            and "nochange" in r.steps]
    out = []
    for a, b in zip(kura, kura[1:]):
        k = math.log(b.files / a.files)

        def exp(x: float, y: float) -> str:
            return fmt(math.log(y / x) / k if x > 0 and y > 0 else None, ".2f")

        out.append([f"{a.case} → {b.case}",
                    exp(a.steps["initial"].wall_s, b.steps["initial"].wall_s),
                    exp(a.steps["initial"].cpu_s, b.steps["initial"].cpu_s),
                    exp(a.steps["initial"].maxrss_kib, b.steps["initial"].maxrss_kib),
                    exp(a.steps["nochange"].wall_s, b.steps["nochange"].wall_s),
                    exp(a.steps["nochange"].maxrss_kib, b.steps["nochange"].maxrss_kib),
                    exp(a.catalog_bytes["nochange"], b.catalog_bytes["nochange"])])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="files-100k,files-1m,chunks-1m",
                    help=f"comma-separated, of {', '.join(CASES)} (default: all but files-3m)")
    ap.add_argument("--restic-case", default="files-1m",
                    help="the case restic also runs on (default files-1m; '' for none)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", type=Path,
                    default=Path(os.environ.get("HOME", "/tmp")) / ".cache" / "kura-scale")
    ap.add_argument("--kura", help="kura binary (default: cargo build --release -p kura)")
    ap.add_argument("--keep-page-cache", action="store_true",
                    help="only sync before each step, do not drop the page cache")
    ap.add_argument("--keep", action="store_true", help="keep every case's data and vaults")
    ap.add_argument("--json", type=Path, metavar="OUT", help="write results as JSON to OUT")
    ap.add_argument("--markdown", action="store_true", help="print markdown tables")
    args = ap.parse_args(argv)
    run.DROP_PAGE_CACHE = not args.keep_page_cache
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(names) - set(CASES)
    if unknown:
        sys.exit(f"unknown cases: {', '.join(sorted(unknown))}")
    if args.restic_case:
        run.ensure_debian_packages({"restic": "restic"})
    kura = str(Path(args.kura).resolve()) if args.kura else str(run.build_release("kura") / "kura")

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    small = work / "small"
    shutil.rmtree(small, ignore_errors=True)
    small.mkdir()
    write_small_files(small, SMALL_TREE_FILES, args.seed + 1)
    load_before = os.getloadavg()[0]
    results: list[CaseResult] = []
    try:
        for name in names:
            results += run_case(name, work, kura, args.seed, name == args.restic_case, small)
            if not args.keep:
                shutil.rmtree(work / name, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(small, ignore_errors=True)
    phase("done")

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": run.host_info(),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "page_cache": run.cache_note(results),
        "kura_revision": run.source_revision(),
        "tool_versions": {"kura": run.Kura("kura", kura, work).version()}
        | ({"restic": Restic("restic", shutil.which("restic"), work).version()}
           if args.restic_case else {}),
    }
    lines = [
        f"Machine: {run.machine()}; load average {meta['load_before']:.2f} at the start, "
        f"{meta['load_after']:.2f} at the end. {meta['page_cache']}. Kura built from "
        f"{meta['kura_revision']}. Date: {meta['date']}.",
        "",
        render(HEADER, rows(results), args.markdown),
    ]
    grown = growth(results)
    if grown:
        lines += ["", "Growth exponents against the number of files (1 = linear):", "",
                  render(["between", "initial wall", "initial CPU", "initial RSS",
                          "no-change wall", "no-change RSS", "catalog"], grown, args.markdown)]
    lines += ["", "Versions: " + ", ".join(f"{k}: {v}" for k, v in meta["tool_versions"].items())]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": [asdict(r) for r in results]},
                                        indent=2) + "\n")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
