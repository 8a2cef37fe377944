"""`checkout-age model list | show | promote | rollback | migrate-registry`: the registry's commands.

The registry is MLflow's (`model.lifecycle.registry`): the embedded store in `MODEL_REGISTRY`
(default `var/mlflow`), or the tracking server `MLFLOW_TRACKING_URI` names.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jobs.cli.model_text import fmt, metrics_lines, write
from model.config import load_settings  # plain values: no Keras or MLflow at import

EXIT_GATE_REFUSED = 4  # `model promote`: the gate said no (a crash is 1, a user error 2)


def _registry():
    from model.lifecycle.registry import ModelRegistry

    settings = load_settings()
    return ModelRegistry(settings.registry_store, cache_dir=settings.cache_dir / "models")


def run_list(args: argparse.Namespace) -> int:
    """List registered versions, marking production."""
    registry = _registry()
    rows = registry.list_versions()
    if args.json:
        write(json.dumps(rows, indent=2))
        return 0
    if not rows:
        write(f"no versions in {registry.root}")
    for row in rows:
        mark = "*" if row["production"] else " "
        write(f"{mark} {row['version']}  test MAE {fmt(row['test_mae'])}  {row['backbone']} "
              f"{row['size']}px {row['head']}  data {str(row['dataset_fingerprint'])[:12]}  "
              f"{row['registered_at']}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    """Print one version's config, test metrics and file locations."""
    registry = _registry()
    if args.pin:  # for schedulers: the daily DAG's XCom, what its jobs resolve without MLflow
        write(registry.pin(args.version))
        return 0
    version = registry.resolve(args.version)
    if args.version_only:
        write(version.version)
        return 0
    if args.json:
        write(json.dumps({"version": version.version, "model_path": str(version.model_path),
                          "run_id": version.run_id, "metrics": version.metrics,
                          "config": version.config}, indent=2))
        return 0
    config = version.config
    write(f"{version.version}: {version.model_path}")
    write(f"{config.get('backbone')} {version.image_size}px {config.get('head')}, "
           f"epochs run {config.get('epochs_run')}, seed {config.get('seed')}, "
           f"data {config.get('dataset_fingerprint')}")
    if "test" in version.metrics:
        for line in metrics_lines(version.metrics["test"]):
            write(f"test {line}")
    if version.run_id is not None:
        write(f"MLflow: models:/checkout-age/{int(version.version[1:])}, run {version.run_id}")
    if version.path is not None:
        write(f"card: {version.path / 'card.md'}")
    return 0


def run_promote(args: argparse.Namespace) -> int:
    """Promote a version through the gate; exit `EXIT_GATE_REFUSED` with the reason when
    refused (a crash exits 1, a user error such as an unknown version 2)."""
    settings = load_settings()
    result = _registry().promote(
        args.version,
        max_mae=settings.gate_max_mae if args.max_mae is None else args.max_mae,
        tolerance=settings.gate_tolerance if args.tolerance is None else args.tolerance)
    if args.json:
        write(json.dumps({"promoted": result.promoted, "reason": result.reason,
                          "previous": result.previous}))
    else:
        write(("promoted: " if result.promoted else "refused: ") + result.reason)
    return 0 if result.promoted else EXIT_GATE_REFUSED


def run_rollback(args: argparse.Namespace) -> int:
    """Point production back at the version it replaced."""
    version = _registry().rollback()
    write(f"production is now {version.version} (test MAE {fmt(version.test_mae)})")
    return 0


def run_migrate(args: argparse.Namespace) -> int:
    """Import an old file registry (versions, cards, calibration, production) into MLflow."""
    from model.lifecycle.migrate import migrate_file_registry

    result = migrate_file_registry(args.directory, _registry())
    if args.json:
        write(json.dumps(result, indent=2))
        return 0
    write(f"imported {len(result['imported'])} versions from {args.directory}: "
          + (", ".join(f"{old} -> {new}" for old, new in result["imported"].items()) or "none")
          + (f"; already imported: {', '.join(result['skipped'])}" if result["skipped"] else ""))
    write(f"production: {result['production'] or 'none'}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Attach the registry commands to `model`."""
    settings = load_settings()  # help shows the effective defaults (environment included)
    listing = subparsers.add_parser("list", help="registered model versions",
                                    description="List versions; '*' marks production.")
    listing.add_argument("--json", action="store_true", help="print JSON instead of text")
    listing.set_defaults(handler=run_list)

    show = subparsers.add_parser("show", help="one version's config and metrics",
                                 description="Show a version ('production' or an id).")
    show.add_argument("version", metavar="VERSION", help="'production' or a version id")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    show.add_argument("--version-only", action="store_true",
                      help="print only the resolved version id (e.g. v0003)")
    show.add_argument("--pin", action="store_true",
                      help="print only the version pinned to its run (v0003@<run id>): a "
                           "reference the jobs resolve from local files, without MLflow")
    show.set_defaults(handler=run_show)

    promote = subparsers.add_parser(
        "promote", help="make a version production, through the metric gate",
        description="Promote when test MAE <= --max-mae and <= production's + --tolerance "
        f"(years). Exit status {EXIT_GATE_REFUSED} with the reason when the gate refuses (1: a "
        "crash, 2: a wrong argument such as an unknown version).")
    promote.add_argument("version", metavar="VERSION", help="version id, e.g. v0003")
    promote.add_argument("--max-mae", type=float, help="highest test MAE (default: setting "
                         f"gate_max_mae, {settings.gate_max_mae})")
    promote.add_argument("--tolerance", type=float, help="years worse than production allowed "
                         f"(default: setting gate_tolerance, {settings.gate_tolerance})")
    promote.add_argument("--json", action="store_true", help="print JSON instead of text")
    promote.set_defaults(handler=run_promote)

    rollback = subparsers.add_parser(
        "rollback", help="point production back at the previous version",
        description="Undo the last promotion (repeatable down the promotion history).")
    rollback.set_defaults(handler=run_rollback)

    migrate = subparsers.add_parser(
        "migrate-registry", help="import an old file registry into MLflow",
        description="Import every version of a file registry (versions/vNNNN/ with model.keras, "
        "metrics, config, card, plots, calibration, training hashes) as new MLflow versions, "
        "oldest first, and point production at the import of its production version. A "
        "version already imported (tag migrated_from) is skipped, so a rerun is harmless.")
    migrate.add_argument("directory", type=Path, metavar="DIR", help="the old registry root")
    migrate.add_argument("--json", action="store_true", help="print JSON instead of text")
    migrate.set_defaults(handler=run_migrate)
