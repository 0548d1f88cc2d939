"""The README's quality table (markdown) from a ``bench_quality.py --json`` file: per image, the exact
backend's SWD / NN distance / diversity and another backend's with their ratios; bold where a ratio is
more than 10 % from 1.

    python benchmarks/quality_table.py benchmarks/results_quality_auto.json [--backend auto]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

FIGURES = ("swd", "nn_dist", "diversity")
FORMATS = {"swd": "{:.4f}", "nn_dist": "{:.6f}", "diversity": "{:.4f}"}


def cell(value: float, base: float, name: str) -> str:
    ratio = value / base
    text = f"{ratio:.2f}"
    return f"{FORMATS[name].format(value)} ({f'**{text}**' if abs(ratio - 1) > 0.1 else text})"


def table(results: dict, backend: str) -> str:
    exact, other = results["rows"]["exact"], results["rows"][backend]
    lines = [
        f"| image | exact: SWD / NN dist / diversity | {backend} SWD (ratio) | NN dist (ratio) | diversity (ratio) |",
        "|---|---|---|---|---|",
    ]
    for image in sorted(set(exact) & set(other)):
        base, row = exact[image], other[image]
        figures = " / ".join(FORMATS[n].format(base[n]) for n in FIGURES)
        lines.append(f"| {image} | {figures} | " + " | ".join(cell(row[n], base[n], n) for n in FIGURES) + " |")
    means = results["means"][backend]
    ratios = " | ".join(f"{means[f'{n}_ratio']:.3f}" for n in FIGURES)
    lines.append(f"| **mean of {means['images']}** (ratio of the means) | | {ratios} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path)
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    print(table(json.loads(args.json.read_text()), args.backend))


if __name__ == "__main__":
    main()
