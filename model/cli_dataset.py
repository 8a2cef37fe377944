"""Placeholder: filled in by the cli_dataset work."""

import argparse


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Attach this area's commands."""
