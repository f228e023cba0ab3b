"""Every single-byte change of a model text: refused by ``check_model_text``, or loaded by LightGBM.

The exhaustive form of ``tests/test_modeltext.py::test_random_byte_damage_never_escapes_as_another_error``
(which samples 150 changes). For each byte position from ``--start`` and each of the 255 other byte
values, the changed text must either raise ``BundleError`` or load in ``lightgbm.Booster``. Prints the
number of changes tried, refused, loaded, and those that passed the check but broke LightGBM (by
exception type, with the first positions), and exits 1 if there were any.

Run: ``flock /tmp/nextchannel-bench.lock .venv/bin/python benchmarks/scan_byte_damage.py``
(about 5 minutes on a quiet core for the whole 8,932-byte model; ``--start 6320`` scans the trailer).
"""

from __future__ import annotations

import argparse
import collections
import os
import pathlib
import sys

import lightgbm as lgb
from tqdm import tqdm

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
from test_modeltext import _train  # noqa: E402  (the model the test damages)

from nextchannel.errors import BundleError  # noqa: E402
from nextchannel.modeltext import check_model_text  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objective", default="regression", choices=["regression", "binary", "multiclass"])
    parser.add_argument("--start", type=int, default=0, help="first byte position to change")
    args = parser.parse_args(argv)
    data = _train(args.objective).model_to_string().encode()
    counts: collections.Counter[str] = collections.Counter()
    escaped: collections.Counter[str] = collections.Counter()
    first: dict[str, list[int]] = collections.defaultdict(list)
    # LightGBM writes its own failures to stdout: keep the figures readable.
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(1)
    for i in tqdm(range(args.start, len(data)), desc="positions", file=sys.stderr):
        for byte in range(256):
            if byte == data[i]:
                continue
            changed = bytearray(data)
            changed[i] = byte
            counts["tried"] += 1
            try:
                check_model_text(bytes(changed))
            except BundleError:
                counts["refused"] += 1
                continue
            os.dup2(devnull, 1)
            try:
                lgb.Booster(model_str=bytes(changed).decode("utf-8"))
                counts["loaded"] += 1
            except Exception as err:  # what must not happen: passed the check, broke LightGBM
                escaped[type(err).__name__] += 1
                if len(first[type(err).__name__]) < 5:
                    first[type(err).__name__].append(i)
            finally:
                os.dup2(saved, 1)
    print(f"model: {args.objective}, {len(data):,} bytes, positions {args.start:,}–{len(data) - 1:,}")
    print(f"changes tried {counts['tried']:,}: refused {counts['refused']:,}, loaded by LightGBM {counts['loaded']:,}, "
          f"passed the check and broke LightGBM {sum(escaped.values()):,}")
    for name, n in escaped.most_common():
        print(f"  {name}: {n:,} (first at bytes {first[name]})")
    return 1 if escaped else 0


if __name__ == "__main__":
    sys.exit(main())
