#!/usr/bin/env python3
"""Deterministic benchmark dataset for Kura and its peers (restic, borg).

Commands
--------
``generate DIR --size-mib N --seed S``
    Create a tree of about N MiB under DIR (which must not exist or be empty).
    The same N and S always give the same tree (paths, contents, symlinks), so
    ``hash`` prints the same digest on every machine.

``mutate DIR --percent P --seed S``
    Change about P % of the tree's bytes the way a day of work would: overwrite
    ranges inside files, insert blocks in the middle of files (shifting the rest),
    append to files, edit small source files, add new files and delete a few.
    Prints ``{"changed_bytes": N, ...}`` as JSON, where ``changed_bytes`` counts
    the bytes overwritten, inserted, appended or newly created.

``hash DIR``
    Print a digest of the tree (relative paths, kinds, contents, link targets).

What ``generate`` writes (shares of N; sizes of the large files scale with N):

* ``src/``      many small source-like text files (0.5-20 KiB) in nested
                directories, built from a vocabulary of keywords and identifiers
                so that they compress about 3-4x with zstd;
* ``data/``     medium files (100 KiB-4 MiB) of semi-compressible data;
* ``large/``    a few large files (20-100 MiB at N=2048): logs, binary records
                with a repeating layout, semi-compressible archives;
* ``media/``    incompressible files (random bytes);
* ``copies/``   exact duplicates of other files;
* ``variants/`` near-duplicates: a copy with a few bytes changed or a block inserted;
* ``versions/`` copies with a larger block inserted in the middle;
* a few empty files and two symlinks.

Only the Python 3.11 standard library is used.  Data is produced in large pieces
(``random.Random.randbytes`` in 64 KiB calls, pre-built line pools, slice
assignment on arrays) so that a 1 GiB tree takes well under a minute.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import math
import os
import random
import sys
from array import array
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB

# File kinds are recognised by extension so that ``mutate`` writes data of the
# same nature into a file as ``generate`` did.
TEXT_EXTS = (".rs", ".py", ".c", ".h", ".go", ".js", ".md", ".toml", ".txt")
LOG_EXTS = (".log",)
MEDIA_EXTS = (".jpg", ".mp4", ".zst", ".png")
RECORD_EXTS = (".db",)

KEYWORDS = (
    "fn let mut if else return struct impl pub use match for while loop in as "
    "const static enum trait where self Self type mod crate super async await "
    "def class import from try except raise with yield lambda None True False "
    "int void char unsigned long double float sizeof typedef switch case break "
    "continue default goto func var package interface map chan go defer select"
).split()

WORDS = (
    "chunk index pack blob tree node entry file dir path name size offset len "
    "buffer reader writer stream hash key value cache store vault tenant user "
    "session token config option error result status state count total limit "
    "start end begin next prev parent child root item list queue stack table "
    "row column field record header footer trailer magic version flags mode "
    "time stamp date owner group perm link target source dest input output "
    "request response client server handler router listener socket addr port "
    "encode decode compress encrypt verify check parse format write read open "
    "close flush sync lock unlock commit abort retry timeout policy plan job"
).split()

PUNCT = ("(", ")", "{", "}", ";", ",", ".", "::", "->", "=", "==", "+", "&", "[", "]")


def log_uniform(rng: random.Random, lo: float, hi: float) -> int:
    """An integer between lo and hi, uniform on a log scale."""
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))


class Generator:
    """Deterministic producers of byte strings of a given size and nature."""

    LINE_POOL = 6000
    CORPUS_SIZE = 1 * MIB

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.idents = self._make_identifiers(1500)
        self.lines = [self._make_line() for _ in range(self.LINE_POOL)]
        self.line_weights = self._zipf_weights(len(self.lines))
        self.corpus = self.text(self.CORPUS_SIZE)
        self.log_messages = [self._make_log_message() for _ in range(4000)]

    # -- building blocks ---------------------------------------------------
    @staticmethod
    def _zipf_weights(n: int) -> list[float]:
        """Cumulative weights for a Zipf-like choice (some lines are common)."""
        acc, out = 0.0, []
        for i in range(n):
            acc += 1.0 / (i + 10)
            out.append(acc)
        return out

    def _make_identifiers(self, n: int) -> list[str]:
        rng, out = self.rng, []
        for _ in range(n):
            parts = rng.choices(WORDS, k=rng.randint(1, 3))
            style = rng.random()
            if style < 0.5:
                out.append("_".join(parts))
            elif style < 0.8:
                out.append(parts[0] + "".join(p.capitalize() for p in parts[1:]))
            else:
                out.append("".join(p.capitalize() for p in parts))
        return out

    def _make_line(self) -> str:
        rng = self.rng
        indent = " " * (4 * rng.choice((0, 1, 1, 2, 2, 2, 3, 3, 4)))
        shape = rng.random()
        ids = rng.choices(self.idents, k=4)
        kw = rng.choice(KEYWORDS)
        if shape < 0.25:
            body = f"{kw} {ids[0]} = {ids[1]}({ids[2]}, {rng.randint(0, 4096)});"
        elif shape < 0.45:
            body = f"{kw} {ids[0]}.{ids[1]}({ids[2]}) {rng.choice(PUNCT)} {ids[3]}"
        elif shape < 0.6:
            body = f"if {ids[0]} {rng.choice(('==', '!=', '<', '>='))} {ids[1]} {{"
        elif shape < 0.7:
            body = "}"
        elif shape < 0.8:
            words = " ".join(rng.choices(WORDS, k=rng.randint(3, 10)))
            body = f"// {words}"
        elif shape < 0.9:
            body = f"{kw} {ids[0]}: {ids[1]}<{ids[2]}> = {ids[3]}::new();"
        else:
            body = f"return {ids[0]}({ids[1]}, \"{ids[2]}\");"
        return indent + body + "\n"

    def _make_log_message(self) -> str:
        rng = self.rng
        level = rng.choice(("INFO ", "INFO ", "INFO ", "DEBUG", "WARN ", "ERROR"))
        worker = rng.randint(0, 15)
        ids = rng.choices(self.idents, k=2)
        return (
            f"{level} [worker-{worker}] {ids[0]}: path=/api/v1/{ids[1]} "
            f"id={rng.getrandbits(32):08x} status={rng.choice((200, 200, 201, 404, 500))} "
            f"dur_ms={rng.randint(0, 900)}\n"
        )

    # -- producers ------------------------------------------------------------
    def random_bytes(self, size: int) -> bytes:
        """Incompressible bytes (64 KiB calls are the fastest for randbytes)."""
        rb = self.rng.randbytes
        parts = [rb(64 * KIB) for _ in range(size // (64 * KIB))]
        parts.append(rb(size % (64 * KIB)))
        return b"".join(parts)

    def text(self, size: int) -> bytes:
        """Source-code-like text, about 3-4x compressible with zstd.

        Like real code, a file reuses its own lines: each file draws its lines
        from a local set half as large as the file, itself drawn from the pool.
        """
        rng = self.rng
        n_lines = max(8, size // 38 + 1)
        local = rng.choices(self.lines, cum_weights=self.line_weights, k=max(6, n_lines // 2))
        out, have = [], 0
        while have < size:
            out.append("".join(rng.choices(local, k=n_lines)).encode())
            have += len(out[-1])
        return b"".join(out)[:size]

    def semi(self, size: int) -> bytes:
        """Semi-compressible bytes: random runs, text slices and byte runs."""
        rng, corpus, rb = self.rng, self.corpus, self.rng.randbytes
        span = len(corpus) - 8192
        out, have = [], 0
        while have < size:
            n = rng.randint(64, 4096)
            kind = rng.random()
            if kind < 0.4:
                piece = rb(n)
            elif kind < 0.85:
                start = rng.randrange(span)
                piece = corpus[start : start + n]
            else:
                piece = bytes((rng.randrange(256),)) * n
            out.append(piece)
            have += n
        return b"".join(out)[:size]

    def log(self, size: int) -> bytes:
        """Log-file text: increasing timestamps and templated messages."""
        rng, out, have = self.rng, [], 0
        msgs = self.log_messages
        second = 1_700_000_000
        while have < size:
            second += rng.randint(0, 2)
            stamp = _iso_second(second)
            k = rng.randint(5, 60)
            lines = "".join(
                f"{stamp}.{ms:03d}Z {m}"
                for ms, m in zip(sorted(rng.choices(range(1000), k=k)), rng.choices(msgs, k=k))
            )
            out.append(lines.encode())
            have += len(out[-1])
        return b"".join(out)[:size]

    def records(self, size: int) -> bytes:
        """Binary records of 64 bytes: magic, counter, small ints, padding, payload."""
        words_per_record = 8
        n = size // (8 * words_per_record) + 1
        words = array("Q")
        words.frombytes(self.random_bytes(n * 8 * words_per_record))
        words[0::words_per_record] = array("Q", [0x4B555241_52454301]) * n
        start = self.rng.randrange(1 << 40)
        words[1::words_per_record] = array("Q", range(start, start + n))
        words[2::words_per_record] = array("Q", self.rng.choices(range(256), k=n))
        words[3::words_per_record] = array("Q", [0]) * n
        return words.tobytes()[:size]

    def for_path(self, path: str, size: int) -> bytes:
        """Bytes of the nature a file of this name holds."""
        if path.endswith(TEXT_EXTS):
            return self.text(size)
        if path.endswith(LOG_EXTS):
            return self.log(size)
        if path.endswith(MEDIA_EXTS):
            return self.random_bytes(size)
        if path.endswith(RECORD_EXTS):
            return self.records(size)
        return self.semi(size)

    def name(self, ext: str) -> str:
        return self.rng.choice(self.idents).lower() + ext


def _iso_second(epoch: int) -> str:
    days, rem = divmod(epoch, 86400)
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    # A fixed calendar is enough for log-like text; this is not a real date.
    return f"2024-{days % 12 + 1:02d}-{days % 28 + 1:02d}T{hh:02d}:{mm:02d}:{ss:02d}"


# ---------------------------------------------------------------------------
# generate
# ---------------------------------------------------------------------------
class TreeWriter:
    """Writes files under a root and remembers what it wrote."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: list[tuple[str, int]] = []  # (relative path, size)
        self.total = 0

    def write(self, rel: str, data: bytes) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        self.files.append((rel, len(data)))
        self.total += len(data)

    def unique(self, rel: str) -> str:
        """rel, or rel with a counter added when the name is taken."""
        if not (self.root / rel).exists():
            return rel
        stem, dot, ext = rel.rpartition(".")
        i = 2
        while (self.root / f"{stem}_{i}{dot}{ext}").exists():
            i += 1
        return f"{stem}_{i}{dot}{ext}"


def make_dir_tree(gen: Generator, prefix: str, n_dirs: int) -> list[str]:
    """n_dirs nested directories: each new one goes under a random existing one."""
    dirs = [prefix]
    for i in range(n_dirs):
        parent = gen.rng.choice(dirs)
        if parent.count("/") >= 6:
            parent = prefix
        dirs.append(f"{parent}/{gen.rng.choice(gen.idents).lower()}_{i}")
    return dirs


def write_sources(gen: Generator, tw: TreeWriter, budget: int, prefix: str = "src") -> None:
    """Small source-like files (0.5-20 KiB) spread over nested directories."""
    n_files = max(20, budget // (5 * KIB))
    n_projects = max(2, budget // (32 * MIB))
    dirs: list[str] = []
    for p in range(n_projects):
        dirs += make_dir_tree(gen, f"{prefix}/project_{p}", max(3, n_files // n_projects // 12))
    spent = 0
    while spent < budget:
        d = gen.rng.choice(dirs)
        size = min(log_uniform(gen.rng, 512, 20 * KIB), budget - spent + 512)
        rel = tw.unique(f"{d}/{gen.name(gen.rng.choice(TEXT_EXTS))}")
        tw.write(rel, gen.text(size))
        spent += size


def write_sized(gen: Generator, tw: TreeWriter, budget: int, prefix: str,
                exts: tuple[str, ...], lo: int, hi: int) -> None:
    """Files of log-uniform size in [lo, hi] until budget bytes are written."""
    dirs = make_dir_tree(gen, prefix, max(1, budget // (32 * MIB)))
    spent = 0
    while spent < budget:
        size = min(log_uniform(gen.rng, lo, hi), max(lo, budget - spent))
        rel = tw.unique(f"{gen.rng.choice(dirs)}/{gen.name(gen.rng.choice(exts))}")
        tw.write(rel, gen.for_path(rel, size))
        spent += size


def write_large(gen: Generator, tw: TreeWriter, size_mib: int) -> None:
    """A few large files: 100, 80, 60, 40 and 20 MiB at 2048 MiB, scaled."""
    scale = size_mib / 2048
    kinds = (".log", ".db", ".bin", ".log", ".db")
    for i, (mib, ext) in enumerate(zip((100, 80, 60, 40, 20), kinds)):
        size = max(256 * KIB, int(mib * scale * MIB))
        tw.write(f"large/{gen.name('')}_{i}{ext}", gen.for_path(ext, size))


def pick_sources(gen: Generator, tw: TreeWriter, budget: int, prefixes: tuple[str, ...],
                 min_size: int = 0) -> list[tuple[str, int]]:
    """Random existing files under prefixes, in total about budget bytes."""
    pool = [(p, s) for p, s in tw.files if p.startswith(prefixes) and s >= min_size]
    if not pool:
        return []
    picked, spent = [], 0
    while spent < budget:
        rel, size = gen.rng.choice(pool)
        picked.append((rel, size))
        spent += size
    return picked


def write_copies(gen: Generator, tw: TreeWriter, budget: int) -> None:
    """Exact duplicates of other files, under new names."""
    for rel, _ in pick_sources(gen, tw, budget, ("src/", "data/", "media/")):
        dst = tw.unique(f"copies/{Path(rel).parent.name}/{Path(rel).name}")
        tw.write(dst, (tw.root / rel).read_bytes())


def write_variants(gen: Generator, tw: TreeWriter, budget: int) -> None:
    """Near-duplicates: a copy with a few bytes changed or a small block inserted."""
    rng = gen.rng
    for rel, size in pick_sources(gen, tw, budget, ("data/", "media/", "large/"), 64 * KIB):
        data = bytearray((tw.root / rel).read_bytes())
        if rng.random() < 0.5:
            for _ in range(rng.randint(1, 3)):
                pos = rng.randrange(size - 16)
                data[pos : pos + 16] = gen.for_path(rel, 16)
        else:
            pos = rng.randrange(size)
            data[pos:pos] = gen.for_path(rel, log_uniform(rng, 16, 64 * KIB))
        tw.write(tw.unique(f"variants/{Path(rel).name}"), bytes(data))


def write_versions(gen: Generator, tw: TreeWriter, budget: int) -> None:
    """Copies with a larger block inserted in the middle (a new version of a file)."""
    rng = gen.rng
    for rel, size in pick_sources(gen, tw, budget, ("data/", "large/"), 256 * KIB):
        data = (tw.root / rel).read_bytes()
        pos = rng.randrange(size // 4, 3 * size // 4)
        block = gen.for_path(rel, log_uniform(rng, 4 * KIB, 512 * KIB))
        stem, dot, ext = Path(rel).name.rpartition(".")
        tw.write(tw.unique(f"versions/{stem}.v2{dot}{ext}"), data[:pos] + block + data[pos:])


def write_specials(gen: Generator, tw: TreeWriter) -> None:
    """Empty files and two relative symlinks."""
    for d in ("src/project_0", "data", "copies"):
        tw.write(tw.unique(f"{d}/empty_{gen.name('.txt')}"), b"")
    logs = sorted(p for p, _ in tw.files if p.startswith("large/") and p.endswith(".log"))
    if logs:
        os.symlink(os.path.relpath(logs[0], "large"), tw.root / "large/current.log")
    os.symlink("project_0", tw.root / "src/current")


def generate(root: Path, size_mib: int, seed: int) -> dict:
    if root.exists() and any(root.iterdir()):
        sys.exit(f"generate: {root} exists and is not empty")
    root.mkdir(parents=True, exist_ok=True)
    gen, tw = Generator(seed), TreeWriter(root)
    total = size_mib * MIB
    write_sources(gen, tw, int(0.13 * total))
    write_sized(gen, tw, int(0.30 * total), "data", (".bin", ".dat", ".pack", ".txt"),
                100 * KIB, 4 * MIB)
    write_large(gen, tw, size_mib)
    write_sized(gen, tw, int(0.20 * total), "media", MEDIA_EXTS, 256 * KIB, 8 * MIB)
    write_copies(gen, tw, int(0.07 * total))
    write_variants(gen, tw, int(0.07 * total))
    # Whatever is left of the budget goes to mid-file insertion versions.
    write_versions(gen, tw, max(0, total - tw.total))
    write_specials(gen, tw)
    return {"files": len(tw.files), "bytes": tw.total}


# ---------------------------------------------------------------------------
# mutate
# ---------------------------------------------------------------------------
def list_files(root: Path) -> list[tuple[str, int]]:
    """Regular files (no symlinks) as sorted (relative path, size)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            path = Path(dirpath, name)
            if not path.is_symlink():
                out.append((str(path.relative_to(root)), path.stat().st_size))
    out.sort()
    return out


class WeightedPicker:
    """Picks files with probability proportional to their size."""

    def __init__(self, files: list[tuple[str, int]]) -> None:
        self.files = files
        self.cum, acc = [], 0
        for _, size in files:
            acc += size
            self.cum.append(acc)

    def pick(self, rng: random.Random) -> tuple[str, int]:
        i = bisect.bisect_right(self.cum, rng.random() * self.cum[-1])
        return self.files[min(i, len(self.files) - 1)]


class FileEdits:
    """Edits planned for one file; offsets refer to the file before editing."""

    def __init__(self) -> None:
        self.overwrites: list[tuple[int, bytes]] = []
        self.inserts: list[tuple[int, bytes]] = []
        self.appends: list[bytes] = []

    def apply(self, path: Path) -> None:
        """Overwrite ranges, then insert blocks (last offset first), then append."""
        data = bytearray(path.read_bytes())
        for pos, block in self.overwrites:
            data[pos : pos + len(block)] = block
        for pos, block in sorted(self.inserts, key=lambda e: e[0], reverse=True):
            data[pos:pos] = block
        for block in self.appends:
            data += block
        with open(path, "wb") as f:
            f.write(data)


def plan_edit(edits: FileEdits, kind: str, rng: random.Random, size: int, block: bytes) -> None:
    """Add one overwrite, insert or append of block to a file of the given size."""
    if kind == "overwrite":
        edits.overwrites.append((rng.randrange(size - len(block) + 1), block))
    elif kind == "insert":
        edits.inserts.append((rng.randrange(size + 1), block))
    else:
        edits.appends.append(block)


# Larger edits in files of 64 KiB or more: (kind, share of the budget left after
# the small-file edits, smallest and largest edit).  The rest goes to new files.
BIG_EDITS = (("overwrite", 0.40, 4 * KIB, 512 * KIB),
             ("insert", 0.25, 1 * KIB, 256 * KIB),
             ("append", 0.12, 1 * KIB, 1 * MIB))


def mutate(root: Path, percent: float, seed: int) -> dict:
    gen = Generator(seed + 1_000_003)
    rng = gen.rng
    files = list_files(root)
    tree_bytes = sum(s for _, s in files)
    target = int(tree_bytes * percent / 100)
    small = [f for f in files if 0 < f[1] < 64 * KIB]

    # Deletions: a few small files and one medium file (not counted as changed).
    doomed = rng.sample(small, max(2, len(small) // 200))
    mediums = [f for f in files if 100 * KIB <= f[1] <= 4 * MIB and f[0].startswith("data/")]
    if mediums:
        doomed.append(rng.choice(mediums))
    small = [f for f in small if f not in doomed]
    big = WeightedPicker([f for f in files if f[1] >= 64 * KIB and f not in doomed])

    plan: dict[str, FileEdits] = {}
    changed = 0
    # About 1 % of the small files get a small edit (typing in source files).
    for rel, size in rng.sample(small, max(1, len(small) // 100)):
        block = gen.for_path(rel, min(rng.randint(10, 500), size))
        plan_edit(plan.setdefault(rel, FileEdits()), rng.choice(("overwrite", "insert")),
                  rng, size, block)
        changed += len(block)

    rest = max(0, target - changed)
    for kind, share, lo, hi in BIG_EDITS:
        budget = int(rest * share)
        while budget > 0:
            rel, size = big.pick(rng)
            block = gen.for_path(rel, min(log_uniform(rng, lo, hi), budget, size // 2))
            plan_edit(plan.setdefault(rel, FileEdits()), kind, rng, size, block)
            changed += len(block)
            budget -= len(block)

    for rel in sorted(plan):
        plan[rel].apply(root / rel)
    for rel, _ in doomed:
        (root / rel).unlink()

    # New files spend the rest: source files, medium files, media.
    tw = TreeWriter(root)
    rest = max(0, target - changed)
    write_sources(gen, tw, rest // 4, prefix=f"src/new_{seed}")
    write_sized(gen, tw, rest // 3, f"data/new_{seed}", (".bin", ".txt"), 100 * KIB, 4 * MIB)
    write_sized(gen, tw, max(1, rest - tw.total), f"media/new_{seed}", MEDIA_EXTS,
                64 * KIB, 4 * MIB)
    changed += tw.total
    return {
        "changed_bytes": changed,
        "changed_percent": round(100 * changed / max(1, tree_bytes), 3),
        "tree_bytes_before": tree_bytes,
        "files_modified": len(plan),
        "files_added": len(tw.files),
        "files_deleted": len(doomed),
        "deleted_bytes": sum(s for _, s in doomed),
    }


# ---------------------------------------------------------------------------
# hash (also used by run.py to verify restores)
# ---------------------------------------------------------------------------
def tree_digests(root: Path) -> dict[str, str]:
    """Map each relative path to 'kind:digest' (files, dirs, symlinks)."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in dirnames + filenames:
            path = base / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            else:
                with open(path, "rb") as f:
                    out[rel] = "file:" + hashlib.file_digest(f, "sha256").hexdigest()
    return out


def digest_of(digests: dict[str, str]) -> str:
    h = hashlib.sha256()
    for rel in sorted(digests):
        h.update(f"{rel}\0{digests[rel]}\n".encode())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="create a dataset tree")
    g.add_argument("dir", type=Path)
    g.add_argument("--size-mib", type=int, default=1024)
    g.add_argument("--seed", type=int, default=1)
    m = sub.add_parser("mutate", help="change about PERCENT %% of the tree")
    m.add_argument("dir", type=Path)
    m.add_argument("--percent", type=float, default=2.0)
    m.add_argument("--seed", type=int, default=1)
    h = sub.add_parser("hash", help="print a digest of the tree")
    h.add_argument("dir", type=Path)
    args = ap.parse_args(argv)

    if args.cmd == "generate":
        print(json.dumps(generate(args.dir, args.size_mib, args.seed)))
    elif args.cmd == "mutate":
        print(json.dumps(mutate(args.dir, args.percent, args.seed)))
    else:
        print(digest_of(tree_digests(args.dir)))


if __name__ == "__main__":
    main()
