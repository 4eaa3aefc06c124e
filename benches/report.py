#!/usr/bin/env python3
"""Prints the criterion results of the last `cargo bench -p smtp-benches` as Markdown:
per group, each function's median throughput in MB/s (10^6 octets per second) and its
ratio to smtp-proto's (or, for smtp-proto's own lines, smtp-proto's ratio to each peer).

Usage: python3 benches/report.py [target/criterion]
"""
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "..", "target", "criterion")

rows = {}
for dirpath, _dirs, files in os.walk(root):
    if "benchmark.json" not in files or not dirpath.endswith("new"):
        continue
    with open(os.path.join(dirpath, "benchmark.json")) as f:
        bench = json.load(f)
    with open(os.path.join(dirpath, "estimates.json")) as f:
        est = json.load(f)
    octets = (bench.get("throughput") or {}).get("Bytes")
    if not octets:
        continue
    ns = est["median"]["point_estimate"]
    group = bench["group_id"]
    name = bench["function_id"] or bench["value_str"]
    rows.setdefault(group, []).append((name, octets / ns * 1e3, ns))

order = ["commands", "commands-reads/1460", "commands-reads/7", "server-commands", "ehlo", "replies", "data-decode/body", "data-decode/dots",
         "data-encode/body", "data-encode/dots", "server-session", "paired-session"]
for group in sorted(rows, key=lambda g: (order.index(g) if g in order else 99, g)):
    entries = sorted(rows[group], key=lambda r: (not r[0].startswith("smtp-proto"), r[0]))
    ours = next((r for r in entries if r[0] == "smtp-proto"), None)
    print(f"\n#### {group}\n")
    print("| function | median time | MB/s | smtp-proto ÷ this |")
    print("|---|---:|---:|---:|")
    for name, mbs, ns in entries:
        t = f"{ns / 1e3:.2f} µs" if ns < 1e6 else f"{ns / 1e6:.2f} ms"
        ratio = "" if ours is None or name == "smtp-proto" else f"{ours[1] / mbs:.2f}×"
        print(f"| {name} | {t} | {mbs:,.0f} | {ratio} |")
