#!/usr/bin/env python3
"""Puts libdat's and the JavaScript reference's benchmark lines side by side.

Usage: bench-table.py RESULTS.jsonl [...]
Each line: {"impl": "libdat"|"js", "name": ..., "ops": N, "secs": [...], "median_ops_per_sec": X}
(replication lines also carry "block_size"; a failed workload carries "error" instead of timings).
Prints a Markdown table for each kind of workload found in the files:
- log workloads (tests/interop/bench.js, core/benches/log.rs): workload, reference ops/s, libdat
  ops/s, ratio (libdat / reference), target;
- replication workloads (repl_*: tests/interop/repl-bench.js, core/benches/replication.rs): per
  block size, each writer -> reader pair's blocks/s and MB/s and its ratio to JS -> JS, with the
  targets for libdat -> libdat;
- drive workloads (drive_*: tests/interop/drive-bench.js, core/benches/drive.rs): rate, ratio and
  target, and each side's peak memory (VmHWM and private RssAnon; drive lines also carry "unit",
  "peak_rss_kib" and "peak_anon_kib").
"""
import json
import sys

# libdat workload -> (reference workload, target ratio, note)
PAIRS = {
    "append_1k_single": ("append_1k_single", 1.0, "libdat fsyncs every commit (Durability::Full); the reference does not fsync"),
    "append_1k_single_nometasync": ("append_1k_single", 1.0, "libdat Durability::NoMetaSync: data pages synced, meta page not"),
    "append_1k_single_nosync": ("append_1k_single", 1.0, "libdat Durability::NoSync: the reference's guarantee (survives process crashes)"),
    "append_1k_batch1000": ("append_1k_batch1000", 3.0, "libdat fsyncs every commit"),
    "append_1k_batch1000_nometasync": ("append_1k_batch1000", 3.0, "libdat Durability::NoMetaSync: data pages synced, meta page not"),
    "append_1k_batch1000_nosync": ("append_1k_batch1000", 3.0, "libdat Durability::NoSync"),
    "append_64k": ("append_64k", 1.0, "libdat fsyncs every commit"),
    "append_64k_nometasync": ("append_64k", 1.0, "libdat Durability::NoMetaSync: data pages synced, meta page not"),
    "append_64k_nosync": ("append_64k", 1.0, "libdat Durability::NoSync"),
    "get_seq": ("get_seq", 1.0, ""),
    "get_random": ("get_random", 1.0, ""),
    "seek": ("seek", 1.0, ""),
    "proof_gen": ("proof_gen", 1.0, ""),
    "proof_verify": ("proof_verify_nocache", 1.0, "both stateless: every hash and the signature per proof"),
    "proof_verify_vs_stateful": ("proof_verify", 1.0, "reference's stateful path (signature checked once)"),
}


# replication: block-size tag -> (label, target ratio of libdat -> libdat over JS -> JS)
REPL_SIZES = {
    "64k": ("64 KiB", 5.0),
    "1k": ("1 KiB", 10.0),
}
# name suffix -> (writer -> reader, gets the size's target, note)
REPL_PAIRS = [
    ("js_js", "JS → JS", False, "baseline: two node processes (writer serves, reader downloads)"),
    ("libdat_libdat", "libdat → libdat", True, "reader Durability::Full (default: fsync per commit)"),
    ("libdat_libdat_nosync", "libdat → libdat", True, "reader Durability::NoSync (the reference's guarantee)"),
    ("js_libdat", "JS → libdat", False, "reader Durability::Full"),
    ("js_libdat_nosync", "JS → libdat", False, "reader Durability::NoSync"),
    ("libdat_js", "libdat → JS", False, ""),
]


def load(paths):
    rows = {}
    for path in paths:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                r = json.loads(line)
                rows[(r["impl"], r["name"])] = r
    return rows


def repl_row(rows, name):
    """The row of replication workload `name` (printed by either implementation's bench)."""
    return rows.get(("libdat", name)) or rows.get(("js", name))


def log_table(rows, out):
    if not any(n in PAIRS for (_, n) in rows):
        return None
    if ("libdat", "proof_verify") in rows:
        rows[("libdat", "proof_verify_vs_stateful")] = rows[("libdat", "proof_verify")]
    out.append("| workload | reference (ops/s) | libdat (ops/s) | ratio | target | met | note |")
    out.append("|---|---:|---:|---:|---:|:-:|---|")
    met_all = True
    for name, (ref, target, note) in PAIRS.items():
        ours = rows.get(("libdat", name))
        theirs = rows.get(("js", ref))
        if not ours or not theirs:
            continue
        a = ours["median_ops_per_sec"]
        b = theirs["median_ops_per_sec"]
        ratio = a / b if b else float("inf")
        met = ratio >= target
        met_all &= met
        out.append(f"| {name} | {b:,.0f} | {a:,.0f} | {ratio:.2f}x | {target:g}x | {'yes' if met else 'NO'} | {note} |")
    out.append("")
    out.append("medians of 3 runs each; both implementations measured in this run on this machine")
    return met_all


def repl_table(rows, out):
    names = {n for (_, n) in rows if n.startswith("repl_")}
    if not names:
        return None
    out.append("| blocks | writer → reader | blocks/s | MB/s | vs JS → JS | target | met | note |")
    out.append("|---|---|---:|---:|---:|---:|:-:|---|")
    met_all = True
    for tag, (label, target) in REPL_SIZES.items():
        base = repl_row(rows, f"repl_{tag}_js_js")
        base_rate = base.get("median_ops_per_sec") if base else None
        for suffix, pair, has_target, note in REPL_PAIRS:
            name = f"repl_{tag}_{suffix}"
            r = repl_row(rows, name)
            if not r:
                continue
            size = r.get("block_size") or (65536 if tag == "64k" else 1024)
            what = f"{label} × {r['ops']:,}"
            tgt = f"{target:g}x" if has_target else ""
            if "error" in r or "median_ops_per_sec" not in r:
                met_all &= not has_target
                err = str(r.get("error", "no result")).replace("|", "/")
                out.append(f"| {what} | {pair} | FAILED | | | {tgt} | {'NO' if has_target else ''} | {err} |")
                continue
            rate = r["median_ops_per_sec"]
            mbps = rate * size / 1e6
            if base_rate:
                ratio = rate / base_rate
                shown = f"{ratio:.2f}x"
            else:
                ratio, shown = None, "n/a"
            met = ""
            if has_target:
                ok = ratio is not None and ratio >= target
                met_all &= ok
                met = "yes" if ok else "NO"
            out.append(f"| {what} | {pair} | {rate:,.0f} | {mbps:,.1f} | {shown} | {tgt} | {met} | {note} |")
    out.append("")
    out.append(
        "full download over loopback TCP into an empty reader, timed from connect until the reader holds every "
        "block; medians of 3 runs, each into a fresh reader (the writer is built once per block size and writer "
        "implementation, untimed); MB = 10^6 bytes of block data; "
        "all rows measured in this run on this machine"
    )
    return met_all


# drive workloads (tests/interop/drive-bench.js, core/benches/drive.rs): libdat workload ->
# (reference workload, target ratio, note)
DRIVE_PAIRS = {
    "drive_import_files": ("drive_import_files", 3.0, "libdat DriveBatch, Durability::Full (fsync per commit); reference drive.batch(); both flush every 1,000 files"),
    "drive_import_files_nosync": ("drive_import_files", 3.0, "libdat Durability::NoSync (the reference's guarantee)"),
    "drive_import_1gib": ("drive_import_1gib", 3.0, "libdat Durability::Full: on disk when the call returns"),
    "drive_import_1gib_nosync": ("drive_import_1gib", 3.0, "libdat Durability::NoSync (the reference's guarantee)"),
    "drive_stat": ("drive_stat", 3.0, "entry() of random names"),
    "drive_read_files": ("drive_read_files", 3.0, "list, then read every file"),
    "drive_read_1gib": ("drive_read_1gib", 3.0, "read stream of the whole file"),
    "drive_cursor_4k": ("drive_cursor_4k", 3.0, "libdat cursor seek+read; reference: ranged blob reads"),
}


def mib(kib_list):
    return max(kib_list) / 1024 if kib_list else None


def drive_table(rows, out):
    if not any(n in DRIVE_PAIRS for (_, n) in rows):
        return None
    out.append("| workload | unit | reference (/s) | libdat (/s) | ratio | target | met "
               "| peak RSS ref / libdat (MiB) | ≤ ref | private peak ref / libdat (MiB) | ≤ ref | note |")
    out.append("|---|---|---:|---:|---:|---:|:-:|---:|:-:|---:|:-:|---|")
    met_all = True
    for name, (ref, target, note) in DRIVE_PAIRS.items():
        ours = rows.get(("libdat", name))
        theirs = rows.get(("js", ref))
        if not ours or not theirs:
            continue
        unit = ours.get("unit", "ops")
        if "error" in ours or "error" in theirs:
            met_all = False
            err = str(ours.get("error") or theirs.get("error")).replace("|", "/")
            out.append(f"| {name} | {unit} | | | FAILED | {target:g}x | NO | | | | | {err} |")
            continue
        a = ours["median_ops_per_sec"]
        b = theirs["median_ops_per_sec"]
        ratio = a / b if b else float("inf")
        met = ratio >= target
        met_all &= met
        rss_a, rss_b = mib(ours.get("peak_rss_kib", [])), mib(theirs.get("peak_rss_kib", []))
        anon_a, anon_b = mib(ours.get("peak_anon_kib", [])), mib(theirs.get("peak_anon_kib", []))
        rss_ok = rss_a is not None and rss_b is not None and rss_a <= rss_b
        anon_ok = anon_a is not None and anon_b is not None and anon_a <= anon_b
        rss = f"{rss_b:,.0f} / {rss_a:,.0f}" if rss_a is not None and rss_b is not None else ""
        anon = f"{anon_b:,.0f} / {anon_a:,.0f}" if anon_a is not None and anon_b is not None else ""
        out.append(
            f"| {name} | {unit} | {b:,.1f} | {a:,.1f} | {ratio:.2f}x | {target:g}x | {'yes' if met else 'NO'} "
            f"| {rss} | {'yes' if rss_ok else 'NO'} | {anon} | {'yes' if anon_ok else 'NO'} | {note} |"
        )
    out.append("")
    out.append(
        "medians of 3 runs, each run its own process; peak RSS = the process's VmHWM (for libdat it includes the "
        "store's memory-mapped LMDB pages the run touched: page cache, shared and reclaimable), private peak = "
        "the highest RssAnon sampled every 10 ms; memory columns show the largest of the 3 runs; both "
        "implementations measured in this run on this machine"
    )
    return met_all


def main():
    rows = load(sys.argv[1:])
    printed = []
    for table in (log_table, repl_table, drive_table):
        out = []
        if table(dict(rows), out) is not None:
            printed.append("\n".join(out))
    if not printed:
        print("no benchmark results found in " + ", ".join(sys.argv[1:]), file=sys.stderr)
        return 1
    print("\n\n".join(printed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
