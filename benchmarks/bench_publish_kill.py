"""SIGKILL a publishing process at random moments: the path must always load, and nothing stale must stay.

Two modes, each run ``--kills`` times:

* ``publish``: a child process publishes three bundles in turn to one publish root
  (``nextchannel.bundle.publish_files``, ``keep=2``, so every publish also prunes), as fast as it
  can; the parent kills it with SIGKILL after a random delay, then reads the root
  (``read_bundle``, which follows ``current``);
* ``save``: the same with ``write_bundle(path, overwrite=True)`` on one plain path.

After all kills the parent publishes (saves) once more and counts the hidden temporary entries
left next to the bundles (goal 0): temp folders of dead writers are cleaned by the next writer.
It prints one line per mode (kills, loads that failed, stale entries after the next write) and,
with ``--json``, one JSON object (the test ``tests/test_bundle.py`` runs a small sample).

Run: ``flock /tmp/nextchannel-bench.lock .venv/bin/python benchmarks/bench_publish_kill.py --kills 100``
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

from nextchannel.bundle import publish_files, read_bundle, write_bundle

# Three bundles of a few hundred kB, so that writing one takes a few milliseconds and kills land
# inside writes, renames, flips and prunes alike.
_CHILD = textwrap.dedent("""
    import itertools, sys
    from nextchannel.bundle import publish_files, write_bundle
    mode, target = sys.argv[1], sys.argv[2]
    contents = [{f"part_{j}.txt": (f"model {i} part {j}\\n" * 20000) for j in range(4)} for i in range(3)]
    for n, files in enumerate(itertools.cycle(contents)):
        if mode == "publish":
            publish_files(files, {"model_version": str(n % 3)}, target, keep=2)
        else:
            write_bundle(target, files, {"model_version": str(n % 3)}, overwrite=True)
        if n == 0:
            print("ready", flush=True)
""")


def _stale(folder: pathlib.Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.startswith("."))


def run(mode: str, kills: int, seed: int = 0, max_delay_s: float = 0.05) -> dict:
    """Kill a ``mode`` writer ``kills`` times; count failed loads and entries left after the next write."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        target = folder / ("root" if mode == "publish" else "bundle")
        failed_loads, exits = 0, []
        for _ in range(kills):
            child = subprocess.Popen([sys.executable, "-c", _CHILD, mode, str(target)],
                                     stdout=subprocess.PIPE, text=True)
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError(f"the {mode} child failed before its first write")
            time.sleep(rng.uniform(0.0, max_delay_s))
            child.send_signal(signal.SIGKILL)
            exits.append(child.wait())
            child.stdout.close()
            try:
                names = read_bundle(target).names
                if len(names) != 4:
                    failed_loads += 1
            except Exception:  # noqa: BLE001 - any failure to load counts
                failed_loads += 1
        stale_before = len(_stale(folder if mode == "save" else target))
        files = {"part_0.txt": "final\n"}
        if mode == "publish":
            publish_files(files, {"model_version": "final"}, target, keep=2)
        else:
            write_bundle(target, files, {"model_version": "final"}, overwrite=True)
        stale_after = _stale(folder if mode == "save" else target)
        return {"mode": mode, "kills": kills, "killed_by_sigkill": sum(e == -signal.SIGKILL for e in exits),
                "failed_loads": failed_loads, "stale_before_next_write": stale_before,
                "stale_after_next_write": len(stale_after), "loads_after": read_bundle(target).names == ("part_0.txt",)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    results = [run(mode, args.kills, seed=args.seed) for mode in ("publish", "save")]
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"{'mode':<8} {'kills':>6} {'SIGKILLed':>10} {'failed loads':>13} {'stale before':>13} {'stale after next write':>23}")
    for r in results:
        print(f"{r['mode']:<8} {r['kills']:>6} {r['killed_by_sigkill']:>10} {r['failed_loads']:>13} "
              f"{r['stale_before_next_write']:>13} {r['stale_after_next_write']:>23}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
