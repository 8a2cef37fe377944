"""`checkout-age` command-line entry point.

Each command area registers its own sub-commands (`add_commands(subparsers)`); handlers
import heavy libraries (keras, pyspark) only when they run, so `--help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from model.errors import UserError

# Modules that contribute sub-commands, in the order they appear in `--help`.
COMMAND_MODULES = (
    "jobs.cli.model",
    "jobs.cli.daily",
    "jobs.cli.ops",
    "jobs.cli.query",
    "jobs.cli.upkeep",
)


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every available command area attached."""
    parser = argparse.ArgumentParser(
        prog="checkout-age",
        description="Age analytics from checkout photos: model, daily Spark jobs, reports.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv`, run the chosen command and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.handler(args) or 0)
    except UserError as exc:
        print(f"checkout-age: error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except BrokenPipeError:
        # The reader (`| head`) left early: not an error of ours. Silence the final flush too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
