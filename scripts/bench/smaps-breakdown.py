#!/usr/bin/env python3
"""Where the resident memory of rein processes is at their peak, by mapping (used by memory.sh --breakdown).

    smaps-breakdown.py MATCH OUT

Samples /proc/PID/smaps of every `rein learner` / `rein worker` process whose command line contains
MATCH (five times a second) until they have all exited, keeps each process's sample with the largest
resident total, and writes OUT/NAME.breakdown: resident MiB per shared library (file-backed pages),
the executable, the heap, thread stacks and anonymous memory, then the largest anonymous mappings
(adjacent blocks of one size merge into one mapping). Linux only; a sample is not VmHWM (a peak
shorter than 0.2 s can fall between samples), so the file states both.
"""
import collections
import os
import re
import sys
import time

LIBRARIES = ["libFoundationInternationalization", "lib_FoundationICU", "libFoundationEssentials",
             "libFoundation", "libswiftCore", "libswift", "libdnnl", "libopenblas", "libgfortran",
             "libzmq", "libsodium", "libstdc++", "libc.so", "libm.so", "libgomp", "libdispatch", "ld-linux"]
HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$")


def processes(match):
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if len(argv) > 1 and os.path.basename(argv[0]).startswith("rein") and argv[1] in ("learner", "worker") \
                and any(match in a for a in argv):
            name = argv[argv.index("--name") + 1] if "--name" in argv else argv[1]
            found[int(pid)] = name
    return found


def kind(name, perms):
    if name == "":
        return "anonymous (guard pages)" if perms == "---p" else "anonymous"
    if name == "[heap]":
        return "heap (brk)"
    if name.startswith("["):
        return name
    base = os.path.basename(name)
    if base == "rein":
        return "rein (executable)"
    return next((lib for lib in LIBRARIES if base.startswith(lib)), base)


def sample(pid):
    mappings = []  # [kind, size, rss]
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            m = HEADER.match(line)
            if m:
                mappings.append([kind(m.group(4).strip(), m.group(3)), int(m.group(2), 16) - int(m.group(1), 16), 0])
            elif line.startswith("Rss:"):
                mappings[-1][2] = int(line.split()[1]) * 1024
    hwm = next(int(l.split()[1]) * 1024 for l in open(f"/proc/{pid}/status") if l.startswith("VmHWM"))
    return sum(m[2] for m in mappings), hwm, mappings


def write(path, name, total, hwm, mappings):
    mib = 1 << 20
    by_kind = collections.Counter()
    for k, _, rss in mappings:
        by_kind[k] += rss
    with open(path, "w") as out:
        out.write(f"{name}: resident {total / mib:.1f} MiB at the largest sample (VmHWM then {hwm / mib:.1f} MiB)\n")
        for k, rss in by_kind.most_common():
            if rss >= 128 << 10:
                out.write(f"  {k:36s} {rss / mib:7.1f} MiB\n")
        out.write("largest anonymous mappings (size, resident):\n")
        anonymous = sorted((m for m in mappings if m[0] == "anonymous"), key=lambda m: -m[2])
        for _, size, rss in anonymous[:12]:
            out.write(f"  {size / mib:9.2f} MiB {rss / mib:9.2f} MiB\n")


def main():
    match, out = sys.argv[1], sys.argv[2]
    best, seen = {}, False
    while True:
        found = processes(match)
        if not found and seen:
            break
        seen = seen or bool(found)
        for pid, name in found.items():
            try:
                s = sample(pid)
            except (OSError, StopIteration, IndexError):
                continue  # exited while being read
            if name not in best or s[0] > best[name][0]:
                best[name] = s
        time.sleep(0.2)
    for name, (total, hwm, mappings) in best.items():
        write(os.path.join(out, f"{name}.breakdown"), name, total, hwm, mappings)


if __name__ == "__main__":
    main()
