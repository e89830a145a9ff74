#!/usr/bin/env python3
"""Benchmark Kura's image backups against restic and borg on the same disk image.

One run builds a disk image: an ext4 file system made with ``mkfs.ext4 -d`` from
the generated dataset (``gen_dataset.py``), in a sparse file larger than the
data, as a virtual machine's disk would be. Then every tool goes through the
same phases on that image, phase by phase (the peers back it up as a file):

1. init (not timed);
2. initial backup of the image;
3. no-change backup;
4. 2 % of the image's 4 KiB blocks are rewritten with random bytes, in runs of
   16 blocks (64 KiB, the way a file system writes extents) at random 4 KiB
   aligned places, then each tool backs the image up again; repository growth
   (``du -sb``) is the "bytes added";
5. restore of the latest snapshot to a file, compared with the image by
   SHA-256; ``cp --sparse=always`` of the image is timed beside it.

Throughput is the image's size over wall time for every tool. The same
measuring code as ``run.py`` is used (child processes, ``wait4`` peak RSS).
``--chunk-sizes`` additionally measures the bytes Kura adds after the same
mutation at other image chunk sizes, which is how the default was chosen.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
import run  # noqa: E402
from run import MIB, Borg, Kura, Restic, StepFailed, ToolResult, fmt, phase, progress, render  # noqa: E402

STEPS = ("initial", "nochange", "mutation")


class KuraImage(Kura):
    """kura --image; the vault's image chunk size may be set at init."""

    chunk_size: str | None = None

    def init_cmd(self) -> list[str]:
        cmd = super().init_cmd()
        return cmd + (["--image-chunk-size", self.chunk_size] if self.chunk_size else [])

    def backup_cmd(self, data: Path, n: int) -> list[str]:
        return [self.exe, "--repo", str(self.repo), "--json", "backup", "--image", str(data)]


def make_image(work: Path, size_mib: int, seed: int) -> Path:
    """An ext4 image of 2 × the dataset's size holding the dataset."""
    tree = work / "tree"
    run.generate_data(tree, size_mib, seed)
    image = work / "disk.img"
    image.unlink(missing_ok=True)
    with open(image, "wb") as f:
        f.truncate(2 * size_mib * MIB)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-b", "4096", "-d", str(tree), str(image)],
                   check=True)
    shutil.rmtree(tree)
    return image


def mutate_image(image: Path, percent: float, seed: int) -> int:
    """Rewrites percent % of the 4 KiB blocks in 64 KiB runs; returns bytes written."""
    size = image.stat().st_size
    rng = random.Random(seed)
    run_bytes = 16 * 4096
    runs = int(size * percent / 100 / run_bytes)
    with open(image, "r+b") as f:
        for _ in range(runs):
            f.seek(rng.randrange(0, (size - run_bytes) // 4096) * 4096)
            f.write(rng.randbytes(run_bytes))
    return runs * run_bytes


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 * MIB):
            h.update(chunk)
    return h.hexdigest()


def restored_file(target: Path, image: Path) -> Path:
    """Where a tool put the restored image below (or at) target."""
    if target.is_file():
        return target
    for candidate in (target / str(image).lstrip("/"), target / image.name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no restored image below {target}")


class ImageBench(run.Bench):
    def backup_image(self, n: int) -> None:
        label = STEPS[n - 1]
        size = self.data.stat().st_size
        phase(f"backup {n} ({label}, image of {size / MIB:.0f} MiB)")
        for tool in self.live():
            res = self.results[tool.name]
            res.repo_bytes[f"before_{label}"] = run.du_bytes(tool.repo)
            r = self.step(tool, label, tool.backup_cmd(self.data, n), data_bytes=size)
            if r:
                res.steps[label] = r
                res.repo_bytes[f"after_{label}"] = run.du_bytes(tool.repo)

    def restore_image(self, n: int) -> float:
        """Restores with every tool and checks the result; returns cp's time."""
        expected = sha256(self.data)
        size = self.data.stat().st_size
        phase(f"restore (image of {size / MIB:.0f} MiB)")
        for tool in self.live():
            base = self.work / "restore" / tool.name
            shutil.rmtree(base, ignore_errors=True)
            base.mkdir(parents=True)
            kura = isinstance(tool, KuraImage)
            target = base / "disk.img" if kura else base
            res = self.results[tool.name]
            r = self.step(tool, "restore", tool.restore_cmd(target, n),
                          cwd=tool.cwd_for_restore(target), data_bytes=size)
            if r:
                res.steps["restore"] = r
                got = sha256(restored_file(target, self.data))
                res.restore_ok = got == expected
                if not res.restore_ok:
                    res.restore_problems = [f"sha256 {got} != {expected}"]
                    progress(f"  {tool.name}: RESTORE MISMATCH")
            shutil.rmtree(base, ignore_errors=True)
            res.repo_bytes["final"] = run.du_bytes(tool.repo)
        copy = self.work / "restore" / "cp.img"
        r = run.run_measured(["cp", "--sparse=always", str(self.data), str(copy)], dict(os.environ),
                             self.work / "logs" / "cp")
        progress(f"  {'cp':<10} {'restore':<10} {r.wall_s:8.2f} s")
        copy.unlink()
        return r.wall_s


def ratios(results: dict[str, ToolResult], cp_s: float) -> list[list[str]]:
    k = results.get("kura")
    restic, borg = results.get("restic"), results.get("borg")
    rows = []

    def add(label, target, value, ok):
        rows.append([label, target, fmt(value, ".2f", "x"),
                     "-" if value is None else ("met" if ok(value) else "NOT met")])

    if k is None:
        return rows
    peers = [p for p in (restic, borg) if p and p.throughput("initial")]
    if peers:
        best = max(peers, key=lambda p: p.throughput("initial"))
        v = k.throughput("initial") / best.throughput("initial") if k.throughput("initial") else None
        add(f"image backup vs best peer ({best.name})", ">= 2", v, lambda x: x >= 2)
    if restic:
        v = run.ratio(k, restic, "nochange")
        add("unchanged re-backup vs restic", ">= 2", v, lambda x: x >= 2)
        v = run.ratio(k, restic, "added")
        add("bytes added after 2 % block rewrite vs restic", "<= 0.5", v, lambda x: x <= 0.5)
        v = run.ratio(k, restic, "restore")
        add("restore vs restic", ">= 1.5", v, lambda x: x >= 1.5)
    if "restore" in k.steps:
        v = cp_s / k.steps["restore"].wall_s
        add("restore vs cp --sparse=always (speed)", ">= 1", v, lambda x: x >= 1)
    return rows


def chunk_size_study(args, kura_exe: str, work: Path, image: Path, pristine: Path) -> list[list[str]]:
    """Bytes Kura adds after the same mutation, per image chunk size."""
    rows = []
    for size in args.chunk_sizes.split(","):
        shutil.copyfile(pristine, image)
        tool = KuraImage(f"kura-{size}", kura_exe, work)
        tool.chunk_size = size
        shutil.rmtree(tool.repo, ignore_errors=True)
        tool.repo.parent.mkdir(parents=True, exist_ok=True)
        env = tool.env()
        log = work / "logs" / tool.name
        try:
            run.run_measured(tool.init_cmd(), env, log.with_name(tool.name + "-init"))
            first = run.run_measured(tool.backup_cmd(image, 1), env, log.with_name(tool.name + "-1"))
            before = run.du_bytes(tool.repo)
            written = mutate_image(image, args.percent, args.seed + 1)
            run.run_measured(tool.backup_cmd(image, 2), env, log.with_name(tool.name + "-2"))
        except StepFailed as e:
            progress(f"  {tool.name} FAILED: {e}")
            continue
        added = run.du_bytes(tool.repo) - before
        rows.append([size, f"{first.wall_s:.2f} s", f"{added / MIB:.1f}", f"{added / written:.2f}x"])
        progress(f"  {tool.name}: initial {first.wall_s:.2f} s, added {added / MIB:.1f} MiB")
        shutil.rmtree(tool.repo, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024,
                    help="dataset size; the image is twice as large (default 1024)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--percent", type=float, default=2.0, help="blocks rewritten, %% (default 2)")
    ap.add_argument("--work", type=Path,
                    default=Path(os.environ.get("HOME", "/tmp")) / ".cache" / "kura-bench-image")
    ap.add_argument("--tools", default="kura,restic,borg")
    ap.add_argument("--kura", help="kura binary (default: cargo build --release -p kura)")
    ap.add_argument("--borg-compression", default="lz4")
    ap.add_argument("--chunk-sizes", default="",
                    help="also measure bytes added at these image chunk sizes, e.g. 64KiB,256KiB,1MiB")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--keep-page-cache", action="store_true",
                    help="only sync before each step, do not drop the page cache")
    args = ap.parse_args(argv)
    run.DROP_PAGE_CACHE = not args.keep_page_cache
    args.kura_unencrypted = False
    args.server = False
    args.kura_server = None

    work = args.work.resolve()
    for sub in ("repos", "restore", "home", "logs"):
        shutil.rmtree(work / sub, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    run.ensure_debian_packages({"mkfs.ext4": "e2fsprogs"})
    tools = []
    for t in run.make_tools(args, work):
        if isinstance(t, Kura):
            t = KuraImage(t.name, t.exe, work, encrypt=t.encrypt)
        tools.append(t)

    phase(f"building a {2 * args.size_mib} MiB ext4 image from {args.size_mib} MiB of data ...")
    image = make_image(work, args.size_mib, args.seed)
    allocated = image.stat().st_blocks * 512
    pristine = work / "pristine.img"
    if args.chunk_sizes:
        shutil.copyfile(image, pristine)

    bench = ImageBench(tools, work, image)
    bench.init()
    bench.backup_image(1)
    bench.backup_image(2)
    written = mutate_image(image, args.percent, args.seed + 1)
    phase(f"mutated: {written / MIB:.1f} MiB rewritten")
    bench.backup_image(3)
    cp_s = bench.restore_image(3)

    study = []
    kura_exe = next((t.exe for t in tools if isinstance(t, KuraImage)), None)
    if args.chunk_sizes and kura_exe:
        phase("chunk size study")
        study = chunk_size_study(args, kura_exe, work, image, pristine)
        pristine.unlink()

    results = bench.results
    size = image.stat().st_size
    lines = [
        f"Image: {size / MIB:.0f} MiB ext4 holding {args.size_mib} MiB of generated data "
        f"(seed {args.seed}), {allocated / MIB:.0f} MiB allocated; mutation rewrote "
        f"{written / MIB:.1f} MiB ({args.percent} % of 4 KiB blocks, 64 KiB runs).",
        f"Machine: {run.machine()}. {run.cache_note(results.values())}. Kura built from "
        f"{run.source_revision()}. Date: "
        f"{datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}. "
        f"cp --sparse=always of the image: {cp_s:.2f} s.",
        "",
        render(["step"] + list(results), run.result_rows(results, {"final": size}), args.markdown),
        "",
        render(["ratio", "target", "value", ""], ratios(results, cp_s), args.markdown),
    ]
    if study:
        lines += ["", render(["image chunk size", "initial backup", "added (MiB)",
                              "added / rewritten"], study, args.markdown)]
    print("\n".join(lines))
    shutil.rmtree(work / "repos", ignore_errors=True)
    image.unlink()
    return 1 if any(r.error or r.restore_ok is False for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
