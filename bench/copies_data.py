#!/usr/bin/env python3
"""Data and report helper for bench/copies.sh (standard library only).

    copies_data.py base IMG --size-mib N [--seed S]
        Deterministic device image: alternating 1 MiB random and 1 MiB text-like blocks
        (words from a fixed pseudo-vocabulary, Zipf-weighted; zstd compresses it ~3-4x).
    copies_data.py changes DIR --kind scattered|clustered --size-mib N [--seed S]
        A change set: DIR/extents.tsv ("offset<TAB>length<TAB>file" per extent) and one
        file of new bytes per extent. scattered = 1% of the device as random 4 KiB-aligned
        4 KiB blocks; clustered = ten runs of size/1024 (1 MiB at 1 GiB) at random aligned
        offsets (~1% of the device). New bytes are random.
    copies_data.py apply IMG DIR
        Applies a change set in place to IMG (same offsets as the lab writes).
    copies_data.py report RESULTS.tsv OUT.json [--logs DIR] [--meta k=v ...]
        Prints the table (medians over the rounds in RESULTS.tsv, whose 10th column is the
        round) and the target checks on the medians, writes the JSON results (medians and
        every round). Exit 1 if a target fails (only when every tool needed for it ran).
"""

import argparse
import itertools
import json
import os
import random
import sys

MIB = 1 << 20
BLOCK = 4096

# ---------------------------------------------------------------------------------------
# data


def vocabulary(rng):
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    freq = [12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4,
            2.2, 2.0, 2.0, 1.9, 1.5, 1.0, 0.8, 0.15, 0.15, 0.1, 0.07]
    words = set()
    while len(words) < 5000:
        n = max(1, min(14, int(rng.gauss(6, 2.5))))
        words.add("".join(rng.choices(letters, freq, k=n)))
    words = sorted(words)
    rng.shuffle(words)
    tokens = []
    for i, w in enumerate(words):
        # Some punctuation and line breaks, as in prose or logs.
        tokens.append(w + (". " if i % 97 == 5 else ",\n" if i % 89 == 7 else " "))
    cum = list(itertools.accumulate(1.0 / (r + 1) ** 1.1 for r in range(len(tokens))))
    return tokens, cum


def text_block(rng, tokens, cum):
    out = bytearray()
    while len(out) < MIB:
        out += "".join(rng.choices(tokens, cum_weights=cum, k=40000)).encode()
    return bytes(out[:MIB])


def cmd_base(args):
    size = args.size_mib * MIB
    rng = random.Random(f"tidemark-bench-base-{args.seed}")
    tokens, cum = vocabulary(random.Random(f"tidemark-bench-vocab-{args.seed}"))
    tmp = args.img + ".part"
    with open(tmp, "wb") as f:
        for i in range(args.size_mib):
            f.write(rng.randbytes(MIB) if i % 2 == 0 else text_block(rng, tokens, cum))
        assert f.tell() == size
    os.replace(tmp, args.img)


def cmd_changes(args):
    size = args.size_mib * MIB
    rng = random.Random(f"tidemark-bench-{args.kind}-{args.seed}")
    if args.kind == "scattered":
        blocks = size // BLOCK
        count = round(blocks * 0.01)
        extents = [(b * BLOCK, BLOCK) for b in sorted(rng.sample(range(blocks), count))]
    else:
        run = max(BLOCK, (size // 1024) // BLOCK * BLOCK)  # 1 MiB at 1 GiB
        slots = size // run
        extents = [(s * run, run) for s in sorted(rng.sample(range(slots), 10))]
    os.makedirs(args.dir, exist_ok=True)
    with open(os.path.join(args.dir, "extents.tsv"), "w") as index:
        for off, length in extents:
            name = f"{off:012d}.bin"
            with open(os.path.join(args.dir, name), "wb") as f:
                f.write(rng.randbytes(length))
            index.write(f"{off}\t{length}\t{name}\n")
    total = sum(length for _, length in extents)
    print(f"{args.kind}: {len(extents)} extents, {total} bytes "
          f"({100.0 * total / size:.2f}% of the device)")


def read_extents(d):
    with open(os.path.join(d, "extents.tsv")) as index:
        for line in index:
            off, length, name = line.rstrip("\n").split("\t")
            yield int(off), int(length), os.path.join(d, name)


def cmd_apply(args):
    with open(args.img, "r+b") as img:
        for off, length, path in read_extents(args.dir):
            with open(path, "rb") as f:
                data = f.read()
            assert len(data) == length
            img.seek(off)
            img.write(data)


# ---------------------------------------------------------------------------------------
# report

OPS = ["full", "incr-scattered", "incr-clustered", "restore", "verify"]
TOOLS = ["tidemark", "restic", "borg"]


FIELDS = ["wall_s", "cpu_s", "user_s", "sys_s", "peak_rss_mib", "stored_bytes", "stored_mib"]


def load(path):
    """Rows of every round: {(tool, op): [row of round 1, row of round 2, ...]}."""
    rows = {}
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            cols = line.rstrip("\n").split("\t")
            tool, op, wall, user, sys_, rss_kib, stored, rc, load = cols[:9]
            rnd = int(cols[9]) if len(cols) > 9 else 1
            rows.setdefault((tool, op), []).append({
                "tool": tool, "operation": op, "round": rnd, "wall_s": float(wall),
                "cpu_s": round(float(user) + float(sys_), 2), "user_s": float(user),
                "sys_s": float(sys_), "peak_rss_mib": round(int(rss_kib) / 1024, 1),
                "stored_bytes": int(stored), "stored_mib": round(int(stored) / MIB, 1),
                "exit_code": int(rc), "load_avg_1m_before": float(load),
            })
    return rows


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def summarise(runs):
    """The median of each figure over the rounds (peak memory: the largest)."""
    out = {"tool": runs[0]["tool"], "operation": runs[0]["operation"], "rounds": len(runs),
           "exit_code": max(r["exit_code"] for r in runs)}
    for k in FIELDS:
        out[k] = round(median([r[k] for r in runs]), 3)
    out["peak_rss_mib_max"] = max(r["peak_rss_mib"] for r in runs)
    out["wall_s_min"] = min(r["wall_s"] for r in runs)
    out["wall_s_max"] = max(r["wall_s"] for r in runs)
    return out


def cmd_report(args):
    runs = load(args.results)
    if args.logs:
        # Tidemark's own JSON document of each operation (bytes_read, bytes_stored, ...).
        for (tool, op), rounds in runs.items():
            for row in rounds:
                path = os.path.join(args.logs, f"r{row['round']}", f"{tool}-{op}.out")
                if tool == "tidemark" and os.path.exists(path):
                    try:
                        with open(path) as f:
                            row["tool_output"] = json.load(f)
                    except ValueError:
                        pass
    rows = {k: summarise(v) for k, v in runs.items()}
    meta = dict(kv.split("=", 1) for kv in args.meta)
    tools = [t for t in TOOLS if any(k[0] == t for k in rows)]
    ops = [o for o in OPS if any(k[1] == o for k in rows)]

    n_rounds = max((r["rounds"] for r in rows.values()), default=0)
    print(f"Medians of {n_rounds} round(s); wall range min-max; peak memory the largest.")
    head = (f"{'tool':<9} {'operation':<15} {'wall s':>8} {'range':>13} {'CPU s':>8} "
            f"{'peak MiB':>9} {'stored MiB':>11}")
    print(head)
    print("-" * len(head))
    for t in tools:
        for o in ops:
            r = rows.get((t, o))
            if r is None:
                continue
            stored = f"{r['stored_mib']:.1f}" if o not in ("restore", "verify") else "-"
            flag = "" if r["exit_code"] == 0 else f"  (exit {r['exit_code']})"
            span = f"{r['wall_s_min']:.2f}-{r['wall_s_max']:.2f}"
            print(f"{t:<9} {o:<15} {r['wall_s']:>8.2f} {span:>13} {r['cpu_s']:>8.2f} "
                  f"{r['peak_rss_mib_max']:>9.1f} {stored:>11}{flag}")

    checks = []

    def ratio(name, num, den, target, cmp, unit="x"):
        if num is None or den is None:
            checks.append({"check": name, "result": "SKIP", "reason": "tool not run"})
            print(f"{name}: SKIP (needs both tools in this run)")
            return
        value = num / den if den > 0 else float("inf")
        ok = value >= target if cmp == ">=" else value <= target
        checks.append({"check": name, "value": round(value, 4), "target": f"{cmp} {target}",
                       "result": "PASS" if ok else "FAIL"})
        shown = f"{value:.2f}x" if unit == "x" else f"{100 * value:.1f}%"
        tshown = f"{target}x" if unit == "x" else f"{100 * target:.0f}%"
        print(f"{name} = {shown} (target {cmp} {tshown}) {'PASS' if ok else 'FAIL'}")

    def get(t, o, k):
        r = rows.get((t, o))
        return None if r is None or r["exit_code"] != 0 else r[k]

    print()
    print("Targets (ratios of the medians):")
    ratio("full copy wall: restic/tidemark", get("restic", "full", "wall_s"),
          get("tidemark", "full", "wall_s"), 3, ">=")
    ratio("incremental (scattered 1%) wall: tidemark/restic",
          get("tidemark", "incr-scattered", "wall_s"), get("restic", "incr-scattered", "wall_s"),
          0.05, "<=", "%")
    ratio("incremental (scattered 1%) stored: tidemark/restic",
          get("tidemark", "incr-scattered", "stored_bytes"),
          get("restic", "incr-scattered", "stored_bytes"), 0.20, "<=", "%")
    ratio("restore wall: restic/tidemark", get("restic", "restore", "wall_s"),
          get("tidemark", "restore", "wall_s"), 2, ">=")
    if "tidemark" in tools:
        peak = max(r["peak_rss_mib_max"] for k, r in rows.items() if k[0] == "tidemark")
        ok = peak <= 256
        checks.append({"check": "tidemark peak memory MiB", "value": peak, "target": "<= 256",
                       "result": "PASS" if ok else "FAIL"})
        print(f"tidemark peak memory = {peak:.1f} MiB (target <= 256 MiB) {'PASS' if ok else 'FAIL'}")
    else:
        checks.append({"check": "tidemark peak memory MiB", "result": "SKIP"})
        print("tidemark peak memory: SKIP (tidemark not run)")

    doc = {"meta": meta, "results": list(rows.values()),
           "rounds": [row for rounds in runs.values() for row in rounds], "checks": checks}
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(f"\nresults: {args.out}")
    failed = [c for c in checks if c["result"] == "FAIL"]
    errors = [r for r in rows.values() if r["exit_code"] != 0]
    return 1 if failed or errors else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("base")
    b.add_argument("img")
    b.add_argument("--size-mib", type=int, required=True)
    b.add_argument("--seed", type=int, default=1)
    c = sub.add_parser("changes")
    c.add_argument("dir")
    c.add_argument("--kind", choices=["scattered", "clustered"], required=True)
    c.add_argument("--size-mib", type=int, required=True)
    c.add_argument("--seed", type=int, default=1)
    a = sub.add_parser("apply")
    a.add_argument("img")
    a.add_argument("dir")
    r = sub.add_parser("report")
    r.add_argument("results")
    r.add_argument("out")
    r.add_argument("--meta", action="append", default=[])
    r.add_argument("--logs", help="directory of <tool>-<op>.out files")
    args = p.parse_args()
    if args.cmd in ("base", "changes") and (args.size_mib < 2 or args.size_mib % 2):
        p.error("--size-mib must be an even number >= 2")
    sys.exit({"base": cmd_base, "changes": cmd_changes, "apply": cmd_apply,
              "report": cmd_report}[args.cmd](args) or 0)


if __name__ == "__main__":
    main()
