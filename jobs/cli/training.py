"""`checkout-age model train | evaluate | list | show | promote | rollback`.

Handlers import Keras only when they run, so `--help` stays instant. Defaults come from
`load_settings()` (registry root: `MODEL_REGISTRY`; caches: `CHECKOUT_AGE_CACHE_DIR`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _write(text: str) -> None:
    sys.stdout.write(text + "\n")


def _fmt(value: object) -> str:
    return "-" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _metrics_lines(metrics: dict) -> list[str]:
    lines = [
        f"n {metrics['n']}  MAE {_fmt(metrics['mae'])}  RMSE {_fmt(metrics['rmse'])}  "
        f"bias {_fmt(metrics['bias'])}",
        "by band: " + ", ".join(f"{band} {_fmt(row['mae'])} (n={row['n']})"
                                for band, row in metrics["by_band"].items()),
    ]
    if metrics.get("by_gender"):
        lines.append("by gender: " + ", ".join(f"{g} {_fmt(row['mae'])} (n={row['n']})"
                                              for g, row in metrics["by_gender"].items()))
    lines.append(
        f"minors (n={metrics['n_minors']}) estimated 18+: {_pct(metrics['minors_pred_ge_18'])}, "
        f"25+: {_pct(metrics['minors_pred_ge_25'])}; 18-24 (n={metrics['n_adults_18_24']}) "
        f"estimated under 18: {_pct(metrics['adults_18_24_pred_lt_18'])}")
    return lines


def _validation_limits(settings) -> dict:
    return {"min_age": settings.min_age, "max_age": settings.max_age,
            "min_side": settings.min_side_px, "max_side": settings.max_side_px,
            "max_pixels": settings.max_pixels}


def _faces(args: argparse.Namespace, settings) -> Path:
    from model.errors import UserError

    faces = args.faces or settings.faces_dir
    if faces is None:
        raise UserError("no face set given: pass --faces DIR or set FACES_DIR")
    return Path(faces)


def _train_command(args: argparse.Namespace, faces: Path, config) -> str:
    """The `train` command line that repeats this run, defaults from settings made explicit
    (recorded in the model card)."""
    words = ["checkout-age", "model", "train", "--faces", str(faces)]
    skip = ("handler", "command", "model_command", "verbose", "json", "faces")
    resolved = {"size": config.size, "backbone": config.backbone,
                "batch_size": config.batch_size, "seed": config.seed}
    for name, value in sorted({**vars(args), **resolved}.items()):
        if name in skip or value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        words += [flag] if value is True else [flag, str(value)]
    return " ".join(words)


def run_train(args: argparse.Namespace) -> int:
    """Train, evaluate, register (and maybe promote) one model; print a short summary."""
    from model.config import load_settings
    from model.errors import UserError
    from model.train import TrainConfig, train_model

    settings = load_settings()
    if args.promote and args.no_register:
        raise UserError("--promote needs the registry: drop --no-register")
    if args.no_register and args.out is None:
        raise UserError("--no-register needs --out DIR, or the model would be lost")
    config = TrainConfig(
        size=args.size or settings.image_size,
        backbone=args.backbone or settings.backbone,
        head=args.head,
        head_epochs=args.head_epochs,
        epochs=args.epochs,
        batch_size=args.batch_size or settings.batch_size,
        seed=settings.seed if args.seed is None else args.seed,
        learning_rate=args.learning_rate,
        patience=args.patience,
        limit=args.limit,
        mixed_precision=args.mixed_precision,
    )
    faces = _faces(args, settings)
    result = train_model(
        faces, config,
        cache_dir=settings.cache_dir,
        registry_root=None if args.no_register else settings.registry_root,
        out_dir=args.out, promote=args.promote,
        max_mae=settings.gate_max_mae if args.max_mae is None else args.max_mae,
        tolerance=settings.gate_tolerance if args.tolerance is None else args.tolerance,
        validation_limits=_validation_limits(settings),
        command=_train_command(args, faces, config),
    )
    promotion = result.promotion
    if args.json:
        _write(json.dumps({
            "version": result.version, "model_path": str(result.model_path),
            "metrics": result.metrics,
            "promotion": None if promotion is None else
            {"promoted": promotion.promoted, "reason": promotion.reason},
        }, indent=2))
        return 0
    rows = result.config["rows"]
    _write(f"trained {config.backbone} at {config.size} px: {result.config['epochs_run']} "
           f"fine-tuning epochs (best {result.config['best_epoch']}), "
           f"{result.config['train_seconds']:.0f} s; rows train {rows['train']}, "
           f"valid {rows['valid']}, test {rows['test']}")
    _write(f"model: {result.version or '(not registered)'} {result.model_path}")
    for line in _metrics_lines(result.metrics["test"]):
        _write(f"test {line}")
    if promotion is not None:
        _write(("promoted: " if promotion.promoted else "not promoted: ") + promotion.reason)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """Score a labelled folder with a model and print its metrics."""
    from model.config import load_settings
    from model.evaluate import evaluate_model

    settings = load_settings()
    result = evaluate_model(
        args.model, _faces(args, settings), registry_root=settings.registry_root,
        cache_dir=settings.cache_dir, split=args.split, batch_size=args.batch_size,
        flip_tta=not args.no_tta, validation_limits=_validation_limits(settings))
    if args.json:
        _write(json.dumps(result, indent=2))
        return 0
    _write(f"model {result['model']} on {result['faces_dir']} (split {result['split']}: "
           f"{result['n']} of {result['rows_usable']} usable rows; "
           f"{result['rows_seen_in_training']} seen in training)")
    for line in _metrics_lines(result):
        _write(line)
    return 0


def _registry():
    from model.config import load_settings
    from model.registry import ModelRegistry

    return ModelRegistry(load_settings().registry_root)


def run_list(args: argparse.Namespace) -> int:
    """List registered versions, marking production."""
    registry = _registry()
    rows = registry.list_versions()
    if args.json:
        _write(json.dumps(rows, indent=2))
        return 0
    if not rows:
        _write(f"no versions in {registry.root}")
    for row in rows:
        mark = "*" if row["production"] else " "
        _write(f"{mark} {row['version']}  test MAE {_fmt(row['test_mae'])}  {row['backbone']} "
               f"{row['size']}px {row['head']}  data {str(row['dataset_fingerprint'])[:12]}  "
               f"{row['registered_at']}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    """Print one version's config, test metrics and file locations."""
    version = _registry().resolve(args.version)
    if args.json:
        _write(json.dumps({"version": version.version, "model_path": str(version.model_path),
                           "metrics": version.metrics, "config": version.config}, indent=2))
        return 0
    config = version.config
    _write(f"{version.version}: {version.model_path}")
    _write(f"{config.get('backbone')} {version.image_size}px {config.get('head')}, "
           f"epochs run {config.get('epochs_run')}, seed {config.get('seed')}, "
           f"data {config.get('dataset_fingerprint')}")
    if "test" in version.metrics:
        for line in _metrics_lines(version.metrics["test"]):
            _write(f"test {line}")
    if version.path is not None:
        _write(f"card: {version.path / 'card.md'}")
    return 0


def run_promote(args: argparse.Namespace) -> int:
    """Promote a version through the gate; exit 1 with the reason when refused."""
    from model.config import load_settings

    settings = load_settings()
    result = _registry().promote(
        args.version,
        max_mae=settings.gate_max_mae if args.max_mae is None else args.max_mae,
        tolerance=settings.gate_tolerance if args.tolerance is None else args.tolerance)
    if args.json:
        _write(json.dumps({"promoted": result.promoted, "reason": result.reason,
                           "previous": result.previous}))
    else:
        _write(("promoted: " if result.promoted else "refused: ") + result.reason)
    return 0 if result.promoted else 1


def run_rollback(args: argparse.Namespace) -> int:
    """Point production back at the version it replaced."""
    version = _registry().rollback()
    _write(f"production is now {version.version} (test MAE {_fmt(version.test_mae)})")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Attach the training, evaluation and registry commands to `model`."""
    train = subparsers.add_parser(
        "train", help="train an age model on a face set and register it",
        description="Validate the face set, split it, fine-tune an ImageNet backbone (head-only "
        "warm-up, then full), evaluate the test split, write the model card and register the "
        "version (optionally promoting it through the gate).")
    train.add_argument("--faces", type=Path, metavar="DIR", help="face set (default: FACES_DIR)")
    train.add_argument("--size", type=int, help="input side in px (default: settings, 160)")
    train.add_argument("--epochs", type=int, default=30,
                       help="max full fine-tuning epochs; early stopping may end sooner (30)")
    train.add_argument("--head-epochs", type=int, default=2,
                       help="head-only warm-up epochs on a frozen backbone (2)")
    train.add_argument("--backbone", help="mobilenet_v2 (default), efficientnet_b0, "
                       "efficientnet_v2_b0, efficientnet_v2_s, convnext_tiny, resnet50")
    train.add_argument("--head", choices=("regression", "expectation"), default="regression",
                       help="linear regression head or DEX-style expected age over 1-year bins")
    train.add_argument("--batch-size", type=int, help="images per step (default: settings, 64)")
    train.add_argument("--learning-rate", type=float, default=5e-4,
                       help="peak fine-tuning learning rate (5e-4)")
    train.add_argument("--patience", type=int, default=6, help="early-stopping patience (6)")
    train.add_argument("--limit", type=int, help="train on a random subset of N usable rows")
    train.add_argument("--seed", type=int, help="random seed (default: settings)")
    train.add_argument("--mixed-precision", choices=("auto", "on", "off"), default="auto",
                       help="bfloat16 compute: auto = when a GPU is present")
    train.add_argument("--out", type=Path, metavar="DIR",
                       help="also write model.keras, metrics, card and plots here")
    train.add_argument("--no-register", action="store_true", help="do not add to the registry")
    train.add_argument("--promote", action="store_true",
                       help="promote through the gate (a refusal is printed; exit status 0)")
    train.add_argument("--max-mae", type=float, help="gate: highest test MAE (default 8.0)")
    train.add_argument("--tolerance", type=float,
                       help="gate: years worse than production allowed (default 0.10)")
    train.add_argument("--json", action="store_true", help="print JSON instead of text")
    train.set_defaults(handler=run_train)

    evaluate = subparsers.add_parser(
        "evaluate", help="metrics of a model on any labelled face folder",
        description="Validate the folder and score it. Split 'auto' (default): the test split "
        "when the folder is the model's own training set (same fingerprint), otherwise every "
        "usable row except images the model was trained on; 'test': the folder's content-hash "
        "test split; 'all': every usable row.")
    evaluate.add_argument("--model", default="production",
                          help="'production' (default), a version id or a .keras path")
    evaluate.add_argument("--faces", type=Path, metavar="DIR", help="face set (default: FACES_DIR)")
    evaluate.add_argument("--split", choices=("auto", "test", "all"), default="auto",
                          help="which rows to score (see above)")
    evaluate.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    evaluate.add_argument("--no-tta", action="store_true", help="skip flip test-time augmentation")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of text")
    evaluate.set_defaults(handler=run_evaluate)

    listing = subparsers.add_parser("list", help="registered model versions",
                                    description="List versions; '*' marks production.")
    listing.add_argument("--json", action="store_true", help="print JSON instead of text")
    listing.set_defaults(handler=run_list)

    show = subparsers.add_parser("show", help="one version's config and metrics",
                                 description="Show a version ('production' or an id).")
    show.add_argument("version", metavar="VERSION", help="'production' or a version id")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    show.set_defaults(handler=run_show)

    promote = subparsers.add_parser(
        "promote", help="make a version production, through the metric gate",
        description="Promote when test MAE <= --max-mae and <= production's + --tolerance "
        "(years). Exit 1 with the reason when refused.")
    promote.add_argument("version", metavar="VERSION", help="version id, e.g. v0003")
    promote.add_argument("--max-mae", type=float, help="highest test MAE (default: settings, 8.0)")
    promote.add_argument("--tolerance", type=float,
                         help="years worse than production allowed (default: settings, 0.10)")
    promote.add_argument("--json", action="store_true", help="print JSON instead of text")
    promote.set_defaults(handler=run_promote)

    rollback = subparsers.add_parser(
        "rollback", help="point production back at the previous version",
        description="Undo the last promotion (repeatable down the promotion history).")
    rollback.set_defaults(handler=run_rollback)
