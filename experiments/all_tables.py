"""Every table of Liu et al., "Inflating 2D Convolution Weights for Efficient Generation of 3D Medical
Images" (arXiv 2208.03934) in one command: the five drivers in turn on one --out, so the rows they share are trained
once (see common.py). Writes OUT/results.md (every table, the time each driver took) besides each driver's
own files; docs/results.md shows the tiny run's.

    python experiments/all_tables.py --out experiments-out                       # tiny: two CPU cores
    python experiments/all_tables.py --scale paper --data-heart data/coca --data-brain data/adni --device cuda \\
        --out paper-out

Every option is passed to every driver (common.py's options; driver-specific ones are not accepted here).
"""

from __future__ import annotations

import importlib
import sys
import time

import common

DRIVERS = ("inflation_sweep", "architectures", "inflated_architectures", "methods", "quality_diversity")


def main(argv: list[str] | None = None) -> str:
    argv = sys.argv[1:] if argv is None else argv
    ctx = common.context(common.parser(__doc__).parse_args(argv))
    parts, times = [], []
    for name in DRIVERS:
        t0 = time.perf_counter()
        parts.append(importlib.import_module(name).main(argv))
        times.append(f"| `{name}.py` | {time.perf_counter() - t0:.0f} |")
    total = sum(float(t.split("|")[2]) for t in times)
    head = [
        f"# The tables of Liu et al., arXiv 2208.03934, at scale `{ctx.scale.name}`",
        "",
        "| driver | seconds |",
        "|---|---:|",
        *times,
        f"| all | {total:.0f} |",
        "",
    ]
    text = "\n".join([*head, *parts, "![FID-avg vs kimg](fid_vs_kimg.png)", ""])
    (ctx.out / "results.md").write_text(text, encoding="utf-8")
    print(f"tables: {ctx.out / 'results.md'}")
    return text


if __name__ == "__main__":
    main()
