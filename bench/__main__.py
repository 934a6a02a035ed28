"""Run every benchmark: `python -m bench [--runs N] [--scale X]` (or `make bench`)."""

from __future__ import annotations

import argparse

from bench import write_model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply the work of every run (0.1 = quick)"
    )
    args = parser.parse_args(argv)
    write_model.main(runs=args.runs, scale=args.scale)


if __name__ == "__main__":
    main()
