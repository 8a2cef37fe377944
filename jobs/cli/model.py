"""`checkout-age model ...`: the ML engineer's commands.

Dataset commands live in `jobs.cli.dataset`, the commands that produce or measure a version
in `jobs.cli.training`, the registry's in `jobs.cli.registry`; this module only groups them.
"""

from __future__ import annotations

import argparse

from jobs.cli import dataset as cli_dataset
from jobs.cli import registry as cli_registry
from jobs.cli import training as cli_training


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Attach the `model` command group to the top-level parser."""
    parser = subparsers.add_parser(
        "model",
        help="validate face sets, train, evaluate and promote the age model",
        description="Age model lifecycle: dataset checks, training, evaluation, registry.",
    )
    model_subparsers = parser.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    cli_dataset.add_commands(model_subparsers)
    cli_training.add_commands(model_subparsers)
    cli_registry.add_commands(model_subparsers)
