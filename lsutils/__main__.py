"""Command line: ``python -m lsutils run --profile quick [--only NN] [--from NN] [--force] [--set KEY=VALUE]``.

Also ``python -m lsutils build`` (the site alone) and ``python -m lsutils links``
(rewrite every notebook's Colab badge and install cell from the ``repository``
URL in ``book/_config.yml``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .config import ProfileError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lsutils",
                                     description="Run the loss-landscape book's notebooks and build it.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the notebooks for a profile, then build the book")
    run.add_argument("--profile", default="quick", help="smoke, quick or full (default: quick)")
    run.add_argument("--only", action="append", metavar="NN",
                     help="run only this notebook (number or name); repeatable")
    run.add_argument("--from", dest="start", metavar="NN", help="run from this notebook on")
    run.add_argument("--force", action="store_true",
                     help="delete the selected notebooks' artifacts and recompute them")
    run.add_argument("--no-build", action="store_true", help="do not build the book afterwards")
    run.add_argument("--book-dir", type=Path, help="the book folder (default: book/)")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                     help="override a profile key, e.g. notebooks.01_train_resnets.epochs=1; repeatable")
    build = sub.add_parser("build", help="build the book from the executed notebooks")
    build.add_argument("--book-dir", type=Path, help="the book folder (default: book/)")
    links = sub.add_parser("links", help="sync Colab badges and install cells with book/_config.yml")
    links.add_argument("--check", action="store_true", help="only report notebooks out of sync")
    args = parser.parse_args(argv)

    from . import pipeline

    start = time.perf_counter()
    try:
        if args.command == "run":
            from .config import parse_overrides
            pipeline.run_pipeline(args.profile, only=args.only, start=args.start, force=args.force,
                                  build=not args.no_build, book_dir=args.book_dir,
                                  progress=sys.stdout.isatty(), overrides=parse_overrides(args.set))
        elif args.command == "build":
            pipeline.build_book(args.book_dir)
        else:
            from .book import sync_notebook_links
            changed = sync_notebook_links(check=args.check)
            for p in changed:
                print(f"{'out of sync' if args.check else 'updated'}: {p}")
            if args.check and changed:
                return 1
    except (ProfileError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (pipeline.NotebookFailed, pipeline.BookBuildError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        import logging
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # the cancelled kernel client's tasks
        print("interrupted: finished artifacts are kept; rerun to resume", file=sys.stderr)
        return 130
    print(f"total {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
