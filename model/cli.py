"""`checkout-age model ...`: the ML engineer's commands.

Dataset commands live in `model.cli_dataset`, training and registry commands in
`model.cli_training`; this module only groups them under `model`.
"""

from __future__ import annotations

import argparse

from model import cli_dataset, cli_training


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
