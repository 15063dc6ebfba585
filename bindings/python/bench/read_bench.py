"""Reading a big file of a drive from Python, against the same reads in Rust (`make bench-py`).

    python read_bench.py [--quick] --rust target/release/examples/drive_read_bench \\
        --out target/bench/py-read.jsonl

Makes (once) a store under target/bench/py-src[-quick]/ holding a drive with one file of
256 MiB (32 MiB with --quick) of seeded pseudo-random bytes, then reads that file whole, 3 times
each after one untimed pass (which also checks the bytes against the file's SHA-256):

- drive_cursor_64k: `f = drive.open(path)`, then `f.read(65536)` until the end (the byte cursor,
  an io.RawIOBase);
- drive_read_stream: the chunks of `drive.read_stream(path)`.

Then runs the Rust program (core/examples/drive_read_bench.rs, a release build) on the same
store, which does the same reads through the core's Cursor (64 KiB reads into one buffer) and
ReadStream. Writes one JSON line per workload and side to --out ({"impl": "python"|"rust",
"name", "ops" (MiB), "unit": "MiB", "secs": [...], "median_ops_per_sec" (MiB/s)}) and prints a
Markdown table: Python's median throughput over Rust's, target 0.8x. Run it with the release
wheel installed (a debug wheel is many times slower). `--table FILE` prints the table of FILE's
lines without running anything.
"""

import argparse
import hashlib
import json
import os
import pathlib
import random
import shutil
import statistics
import subprocess
import sys
import time

import libdat

ROOT = pathlib.Path(__file__).resolve().parents[3]
PATH = "/big.bin"
READ = 64 * 1024
MIB = 1 << 20
TARGET = 0.8
SEED = 0x5EED_D47
WORKLOADS = [
    ("drive_cursor_64k", "cursor, 64 KiB reads (`drive.open(path).read(65536)`)"),
    ("drive_read_stream", "`drive.read_stream(path)` (64 KiB chunks)"),
]


def make_source(src: pathlib.Path, size: int) -> dict:
    """The store with the file (made once); returns {"key", "size", "sha256"}."""
    done = src / "complete.json"
    if done.exists():
        info = json.loads(done.read_text())
        if info.get("size") == size and info.get("seed") == SEED:
            return info
    print(f"[py-read-bench] making a drive with a {size >> 20} MiB file in {src} ...", file=sys.stderr)
    store_dir = src / "store"
    shutil.rmtree(store_dir, ignore_errors=True)
    store_dir.mkdir(parents=True)
    # 1 MiB pieces (randbytes of 256 MiB at once overflows), each from its own seed
    data = b"".join(random.Random(SEED + i).randbytes(min(MIB, size - off)) for i, off in enumerate(range(0, size, MIB)))
    with libdat.Store(store_dir) as store:
        drive = store.drive(name="read-bench")
        drive.put(PATH, data)
        info = {"key": drive.key.hex(), "size": size, "seed": SEED, "sha256": hashlib.sha256(data).hexdigest()}
    done.write_text(json.dumps(info))
    return info


def cursor_64k(drive, check=None) -> int:
    total = 0
    with drive.open(PATH) as f:
        while True:
            chunk = f.read(READ)
            if not chunk:
                return total
            if check is not None:
                check.update(chunk)
            total += len(chunk)


def read_stream(drive, check=None) -> int:
    total = 0
    for chunk in drive.read_stream(PATH):
        if check is not None:
            check.update(chunk)
        total += len(chunk)
    return total


READERS = {"drive_cursor_64k": cursor_64k, "drive_read_stream": read_stream}


def run_python(store_dir: pathlib.Path, info: dict, runs: int) -> list:
    lines = []
    mib = info["size"] / (1 << 20)
    with libdat.Store(store_dir) as store:
        drive = store.drive(key=info["key"])
        for name, _ in WORKLOADS:
            read = READERS[name]
            check = hashlib.sha256()
            assert read(drive, check) == info["size"]
            assert check.hexdigest() == info["sha256"], f"{name} read other bytes than were written"
            secs = []
            for _ in range(runs):
                t = time.perf_counter()
                n = read(drive)
                secs.append(time.perf_counter() - t)
                assert n == info["size"]
            lines.append(
                {
                    "impl": "python",
                    "name": name,
                    "ops": mib,
                    "unit": "MiB",
                    "secs": secs,
                    "median_ops_per_sec": mib / statistics.median(secs),
                    "bytes": info["size"],
                }
            )
    return lines


def run_rust(rust: str, store_dir: pathlib.Path, info: dict, runs: int) -> list:
    out = subprocess.run(
        [rust, "--store", str(store_dir), "--key", info["key"], "--path", PATH, "--runs", str(runs)],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def table(lines: list, host: str) -> str:
    by = {(l["impl"], l["name"]): l for l in lines}
    size = next(iter(lines))["bytes"] >> 20
    rows = [
        f"## Python package read benchmark ({size} MiB file), {host}",
        "",
        "| workload | Rust (MiB/s) | Python (MiB/s) | ratio | target | met |",
        "|---|---:|---:|---:|---:|:-:|",
    ]
    for name, label in WORKLOADS:
        rust, py = by[("rust", name)]["median_ops_per_sec"], by[("python", name)]["median_ops_per_sec"]
        ratio = py / rust
        met = "yes" if ratio >= TARGET else "NO"
        rows.append(f"| {name}: {label} | {rust:,.0f} | {py:,.0f} | {ratio:.2f}× | {TARGET}× | {met} |")
    return "\n".join(rows)


def host() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    py = ".".join(map(str, sys.version_info[:3]))
    return f"{time.strftime('%Y-%m-%d', time.gmtime())}, {os.cpu_count()} cores, {model}, CPython {py}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a 32 MiB file instead of 256 MiB")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rust", help="the drive_read_bench example (release build)")
    ap.add_argument("--out", default=str(ROOT / "target/bench/py-read.jsonl"))
    ap.add_argument("--table", metavar="JSONL", help="only print the table of an earlier run's lines")
    a = ap.parse_args()
    if a.table:
        with open(a.table) as f:
            print(table([json.loads(l) for l in f if l.strip()], host()))
        return 0
    if not a.rust:
        ap.error("--rust is required")
    size = (32 if a.quick else 256) << 20
    src = ROOT / "target" / "bench" / ("py-src-quick" if a.quick else "py-src")
    info = make_source(src, size)
    store_dir = src / "store"
    lines = run_python(store_dir, info, a.runs)
    lines += run_rust(a.rust, store_dir, info, a.runs)
    out = pathlib.Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(l) + "\n" for l in lines))
    print(table(lines, host()))
    return 0  # a missed target shows as "NO" in the table, as in make bench's other tables


if __name__ == "__main__":
    sys.exit(main())
