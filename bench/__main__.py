"""Run every benchmark: `python -m bench [--runs N] [--scale X] [--only NAME ...]`.

Each benchmark measures its own baseline in the same run and prints its figures beside it.
"""

from __future__ import annotations

import argparse
import importlib

from bench import auth, projections, write_model

# Each of these is also runnable alone, with its own options: `python -m bench.<name> --help`.
STANDALONE = ("gap_safe", "http_api", "book_import", "rebuild", "export", "book_listing_plans")
BENCHES = ("write_model", "projections", "auth", *STANDALONE)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply the work of every run (0.1 = quick)"
    )
    parser.add_argument("--only", nargs="+", choices=BENCHES, default=list(BENCHES))
    args = parser.parse_args(argv)
    if "write_model" in args.only:
        write_model.main(runs=args.runs, scale=args.scale)
        print()
    if "projections" in args.only:
        projections.main(runs=args.runs, scale=args.scale)
        print()
    if "auth" in args.only:
        auth.main([])
    for name in STANDALONE:
        if name in args.only:
            print()
            importlib.import_module(f"bench.{name}").main([])


if __name__ == "__main__":
    main()
