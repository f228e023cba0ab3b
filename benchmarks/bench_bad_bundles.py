"""Totals of the bad-bundle table (tests/test_bad_bundles.py): refused naming the file, crashes, verify agreement.

Builds every variant of the table from models/default, loads each in a subprocess (``Scorer.load``
then ``nextchannel verify``, a batch of variants per process; a crash or hang is attributed to the
variant at fault and the batch resumed after it) and prints, per group and in total: variants,
refused with a ``BundleError`` naming the right file, process crashes/hangs, loaded (not refused),
how many loaded variants gave NaN expected values in a normal (non-fallback) ``decide_one`` decision,
and whether ``verify`` agrees with ``load``. ``--pythonpath DIR`` runs the loads against another
checkout's package (e.g. an older commit) to compare. ``--list`` prints every variant's outcome.

Run: ``flock /tmp/nextchannel-bench.lock .venv/bin/python benchmarks/bench_bad_bundles.py``
"""

from __future__ import annotations

import argparse
import collections
import os
import pathlib
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
import test_bad_bundles as table  # noqa: E402  (the table lives with its test)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pythonpath", help="load with this package folder first on PYTHONPATH")
    parser.add_argument("--list", action="store_true", help="print every variant's outcome")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per batch before it counts as hung")
    parser.add_argument("--load-runs", type=int, default=5, help="fresh processes timing Scorer.load() (0: skip)")
    args = parser.parse_args(argv)
    if args.pythonpath:
        os.environ["PYTHONPATH"] = args.pythonpath
    with tempfile.TemporaryDirectory() as tmp:
        paths = table.build(pathlib.Path(tmp))
        results = table.load_all(paths, timeout_s=args.timeout)
    packages = sorted({r["package"] for r in results.values() if "package" in r})
    print(f"package loaded by the subprocesses: {', '.join(packages)}")
    native_kinds = {v.id.partition(":")[2] for v in table._native("x")}
    groups: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for v in table.TABLE:
        r = results[v.id]
        head, _, tail = v.id.partition(":")
        if head in table.NATIVE_TARGETS and tail in native_kinds:
            group = f"native crash before: {tail}"
        elif head.endswith(".txt"):
            group = f"model text: {tail}"
        elif head.endswith(".json"):
            group = f"{head}: {tail}"
        else:
            group = head
        wrong = table.judge(v, r)
        c = groups[group]
        c["variants"] += 1
        c["refused, file named"] += not wrong
        c["crashed or hung"] += bool(r.get("crash"))
        c["loaded"] += not r.get("crash") and r["load"]["status"] == "loaded"
        c["NaN decision"] += bool(not r.get("crash") and r["load"].get("nan_in_normal_decision"))
        c["verify agrees"] += not r.get("crash") and (r["verify_rc"] == 0) == (r["load"]["status"] == "loaded")
        if args.list:
            print(f"{v.id:<58} {'ok' if not wrong else '; '.join(wrong)[:110]}")
    cols = ["variants", "refused, file named", "crashed or hung", "loaded", "NaN decision", "verify agrees"]
    print(f"{'group':<52}" + "".join(f"{c:>20}" for c in cols))
    total: collections.Counter = collections.Counter()
    for g, c in groups.items():
        total.update(c)
        print(f"{g:<52}" + "".join(f"{c[k]:>20}" for k in cols))
    print(f"{'TOTAL':<52}" + "".join(f"{total[k]:>20}" for k in cols))
    if args.load_runs:
        code = ("import time; t = time.perf_counter(); from nextchannel import Scorer; t1 = time.perf_counter(); "
                "Scorer.load(); print(time.perf_counter() - t1)")
        times = sorted(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                            check=True, cwd=tempfile.gettempdir()).stdout)
                       for _ in range(args.load_runs))
        print(f"Scorer.load() of models/default in a fresh process: median {times[len(times) // 2]:.2f} s "
              f"over {args.load_runs} runs (import excluded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
