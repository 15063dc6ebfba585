#!/usr/bin/env python3
"""Puts libdat's and the JavaScript reference's benchmark lines side by side.

Usage: bench-table.py RESULTS.jsonl [...]
Each line: {"impl": "libdat"|"js", "name": ..., "ops": N, "secs": [...], "median_ops_per_sec": X}
Prints a Markdown table: workload, reference ops/s, libdat ops/s, ratio (libdat / reference), target.
"""
import json
import sys

# libdat workload -> (reference workload, target ratio, note)
PAIRS = {
    "append_1k_single": ("append_1k_single", 1.0, "libdat fsyncs every commit (Durability::Full); the reference does not fsync"),
    "append_1k_single_nosync": ("append_1k_single", 1.0, "libdat Durability::NoSync: the reference's guarantee (survives process crashes)"),
    "append_1k_batch1000": ("append_1k_batch1000", 3.0, "libdat fsyncs every commit"),
    "append_1k_batch1000_nosync": ("append_1k_batch1000", 3.0, "libdat Durability::NoSync"),
    "append_64k": ("append_64k", 1.0, "libdat fsyncs every commit"),
    "append_64k_nosync": ("append_64k", 1.0, "libdat Durability::NoSync"),
    "get_seq": ("get_seq", 1.0, ""),
    "get_random": ("get_random", 1.0, ""),
    "seek": ("seek", 1.0, ""),
    "proof_gen": ("proof_gen", 1.0, ""),
    "proof_verify": ("proof_verify_nocache", 1.0, "both stateless: every hash and the signature per proof"),
    "proof_verify_vs_stateful": ("proof_verify", 1.0, "reference's stateful path (signature checked once)"),
}


def main():
    rows = {}
    for path in sys.argv[1:]:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                r = json.loads(line)
                rows[(r["impl"], r["name"])] = r
    if ("libdat", "proof_verify") in rows:
        rows[("libdat", "proof_verify_vs_stateful")] = rows[("libdat", "proof_verify")]
    print("| workload | reference (ops/s) | libdat (ops/s) | ratio | target | met | note |")
    print("|---|---:|---:|---:|---:|:-:|---|")
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
        print(f"| {name} | {b:,.0f} | {a:,.0f} | {ratio:.2f}x | {target:g}x | {'yes' if met else 'NO'} | {note} |")
    print()
    print("medians of 3 runs each; both implementations measured in this run on this machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
