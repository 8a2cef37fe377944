"""`checkout-age model train | evaluate | calibrate | register`: the commands that produce or
measure a version (each one an MLflow run; the registry's commands are `jobs.cli.registry`).

Handlers import Keras and MLflow only when they run, so `--help` stays instant. Defaults come
from `load_settings()` (the MLflow store: `MODEL_REGISTRY` or `MLFLOW_TRACKING_URI`; caches:
`CHECKOUT_AGE_CACHE_DIR`), and the help shows them after environment overrides.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jobs.cli.model_text import metrics_lines, pct, write
from model.config import TRAIN_PROFILES, load_settings  # plain values: no Keras at import


def _policy(settings, coverage: float | None = None):
    """The run's policy (`model.lifecycle.publish.Policy`), resolved once from the settings."""
    from dataclasses import replace

    from model.lifecycle.publish import Policy

    policy = Policy.from_settings(settings)
    return policy if coverage is None else replace(policy, coverage=coverage)


def _faces(args: argparse.Namespace, settings) -> Path:
    from model.errors import UserError

    faces = args.faces or settings.faces_dir
    if faces is None:
        raise UserError("no face set given: pass --faces DIR or set FACES_DIR")
    return Path(faces)


# `model train` flags that are knobs of `model.profiles.TrainConfig` (None: the profile's value).
_CONFIG_FLAGS = ("size", "backbone", "head", "head_epochs", "epochs", "batch_size", "seed",
                 "learning_rate", "patience", "limit", "mixed_precision", "frozen_until",
                 "camera_share", "camera_detect", "age_balance", "teachers", "distill_weight")


def train_config_from_args(args: argparse.Namespace, settings):
    """The run's `TrainConfig`: the profile (flag or setting), settings, then the flags."""
    from model.training.profiles import train_config

    return train_config(settings, args.profile,
                        **{name: getattr(args, name) for name in _CONFIG_FLAGS})


def _profiles_help() -> str:
    return "; ".join(
        f"{name}: {'feature cache' if p['feature_cache'] else 'full fine-tuning'}, "
        f"{p['size']} px, {p['head_epochs']} + {p['epochs']} epochs"
        + (f", {p['limit']} faces" if p.get("limit") else "")
        for name, p in TRAIN_PROFILES.items())


def _train_command(faces: Path, config, args: argparse.Namespace) -> str:
    """The `train` command line that repeats this run, every resolved knob explicit
    (recorded in the model card)."""
    words = ["checkout-age", "model", "train", "--faces", str(faces), "--profile", config.profile]
    for name in _CONFIG_FLAGS:
        value = getattr(config, name)
        if name == "teachers":
            for teacher in value:
                words += ["--teacher", teacher]
        elif isinstance(value, bool):  # an on/off flag: --camera-detect, --no-camera-detect
            words.append(("--" if value else "--no-") + name.replace("_", "-"))
        elif value is not None and not (name == "distill_weight" and not config.teachers):
            words += ["--" + name.replace("_", "-"), str(value)]
    for name in ("no_register", "promote"):
        if getattr(args, name):
            words.append("--" + name.replace("_", "-"))
    return " ".join(words)


def run_train(args: argparse.Namespace) -> int:
    """Train, evaluate, register (and maybe promote) one model; print a short summary."""
    from model.config import load_settings
    from model.errors import UserError
    from model.lifecycle.publish import Gate
    from model.training.train import train_model

    settings = load_settings()
    if args.promote and args.no_register:
        raise UserError("--promote needs the registry: drop --no-register")
    if args.no_register and args.out is None:
        raise UserError("--no-register needs --out DIR, or the model would be lost")
    if args.version_only and args.no_register:
        raise UserError("--version-only needs the registry: drop --no-register")
    config = train_config_from_args(args, settings)
    faces = _faces(args, settings)
    result = train_model(
        faces, config,
        cache_dir=settings.cache_dir,
        registry_store=None if args.no_register else settings.registry_store,
        out_dir=args.out, promote=args.promote,
        gate=Gate(settings.gate_max_mae if args.max_mae is None else args.max_mae,
                  settings.gate_tolerance if args.tolerance is None else args.tolerance),
        policy=_policy(settings), validation_limits=settings.validation_limits(),
        command=_train_command(faces, config, args),
        max_minutes=settings.train_max_minutes if args.max_minutes is None else args.max_minutes,
    )
    _print_trained(args, config, result)
    return 0


def _print_trained(args: argparse.Namespace, config, result) -> None:
    promotion = result.promotion
    if args.version_only:
        write(str(result.version))
        return
    if args.json:
        write(json.dumps({
            "version": result.version, "model_path": str(result.model_path),
            "metrics": result.metrics,
            "promotion": None if promotion is None else
            {"promoted": promotion.promoted, "reason": promotion.reason},
        }, indent=2))
        return
    rows = result.config["rows"]
    write(f"trained {config.backbone} at {config.size} px (profile {config.profile}): "
           f"{result.config['epochs_run']} fine-tuning epochs (best "
           f"{result.config['best_epoch']}), {result.config['train_seconds']:.0f} s; rows train "
           f"{rows['train']}, valid {rows['valid']}, test {rows['test']}")
    write(f"model: {result.version or '(not registered)'} {result.model_path}")
    for line in metrics_lines(result.metrics["test"]):
        write(f"test {line}")
    if promotion is not None:
        write(("promoted: " if promotion.promoted else "not promoted: ") + promotion.reason)


def run_evaluate(args: argparse.Namespace) -> int:
    """Score a labelled folder with a model and print its metrics."""
    from model.config import load_settings
    from model.evaluation.evaluate import evaluate_model

    settings = load_settings()
    result = evaluate_model(
        args.model, _faces(args, settings), registry_store=settings.registry_store,
        cache_dir=settings.cache_dir, split=args.split, batch_size=args.batch_size,
        flip_tta=not args.no_tta, validation_limits=settings.validation_limits(),
        legal_age=settings.legal_age, challenge_age=settings.challenge_age)
    if args.json:
        write(json.dumps(result, indent=2))
        return 0
    write(f"model {result['model']} on {result['faces_dir']} (split {result['split']}: "
           f"{result['n']} of {result['rows_usable']} usable rows; "
           f"{result['rows_seen_in_training']} seen in training)")
    for line in metrics_lines(result):
        write(line)
    write(_calibration_line(result.get("calibration")))
    write(_policy_line(result.get("policy_curve"), settings.challenge_age))
    return 0


def _policy_line(curve: dict | None, challenge_age: int) -> str:
    """The cost of the rule in force (the whole curve is in --json and on the card)."""
    from model.evaluation.policy import rule_row

    row = rule_row(curve, "age", challenge_age)
    if row is None:
        return f"policy Challenge {challenge_age}: no figures"
    return (f"policy Challenge {challenge_age} (estimated age < {challenge_age}): catches "
            f"{pct(row['minors_flagged'])} of minors, flags {pct(row['young_adults_flagged'])}"
            f" of {curve['legal_age']:g}-{curve['young_adult_until'] - 1} and "
            f"{pct(row['older_adults_flagged'])} of {curve['young_adult_until']}+ "
            "(other rules: --json)")


def _calibration_line(figures: dict | None) -> str:
    """One line of calibration figures; says so when the version has none."""
    if not figures:
        return "calibration: none (this version has no calibration.json)"
    return (f"calibration: {pct(figures['coverage_target'])} intervals covered "
            f"{pct(figures['coverage'])} of {figures['n']} (worst band {figures['worst_band']}); "
            f"P(under {figures['legal_age']:g}) Brier {figures['brier']:.4f} "
            f"(base rate {figures['brier_base_rate']:.4f})")


def run_calibrate(args: argparse.Namespace) -> int:
    """Register a calibrated copy of a version, fitted on labelled faces it never saw."""
    from model.config import load_settings
    from model.evaluation.evaluate import calibrate_model

    settings = load_settings()
    result = calibrate_model(
        args.model, _faces(args, settings), registry_store=settings.registry_store,
        cache_dir=settings.cache_dir, policy=_policy(settings, args.coverage),
        batch_size=args.batch_size, assume_unseen=args.assume_unseen,
        validation_limits=settings.validation_limits())
    if args.json:
        write(json.dumps(result, indent=2))
        return 0
    write(f"registered {result['version']}: {result['calibrated_from']} with a calibration "
           f"table fitted on {result['rows_fit']} faces, checked on {result['rows_check']}")
    write(_calibration_line(result["calibration"]))
    return 0


def run_register(args: argparse.Namespace) -> int:
    """Register a model file trained elsewhere, evaluated and documented here."""
    from model.config import load_settings
    from model.lifecycle.import_model import import_model

    settings = load_settings()
    result = import_model(args.model_file, _faces(args, settings),
                          registry_store=settings.registry_store, cache_dir=settings.cache_dir,
                          run_json=args.run_json, validation_limits=settings.validation_limits(),
                          policy=_policy(settings), batch_size=args.batch_size)
    if args.version_only:
        write(str(result.version))
    elif args.json:
        write(json.dumps({"version": result.version, "model_path": str(result.model_path),
                           "metrics": result.metrics}, indent=2))
    else:
        write(f"registered {args.model_file} as {result.version} ({result.model_path})")
        for line in metrics_lines(result.metrics["test"]):
            write(f"test {line}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Attach the training, evaluation, calibration and import commands to `model`."""
    settings = load_settings()  # help shows the effective defaults (environment included)
    _add_train(subparsers, settings)
    _add_register(subparsers, settings)

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
    evaluate.add_argument("--batch-size", type=int, default=settings.score_batch_size,
                          help="images per forward pass (default %(default)s)")
    evaluate.add_argument("--no-tta", action="store_true", help="skip flip test-time augmentation")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of text")
    evaluate.set_defaults(handler=run_evaluate)

    calibrate = subparsers.add_parser(
        "calibrate", help="add a calibration table fitted on faces the model never saw",
        description="For a version without calibration.json (e.g. trained elsewhere): fit the "
        "age interval and P(under the legal age) table on 70 % of a labelled folder (by content "
        "hash), check it on the rest, and register the result as a NEW version. Refused when "
        "any face is in the version's training_images.txt, or the folder is its training set.")
    calibrate.add_argument("--model", default="production",
                           help="'production' (default) or a version id")
    calibrate.add_argument("--faces", type=Path, metavar="DIR",
                           help="labelled faces the model never saw (default: FACES_DIR)")
    calibrate.add_argument("--coverage", type=float,
                           help="central interval share (default: setting "
                           f"calibration_coverage, {settings.calibration_coverage})")
    calibrate.add_argument("--batch-size", type=int, default=settings.score_batch_size,
                           help="images per forward pass (default %(default)s)")
    calibrate.add_argument("--assume-unseen", action="store_true",
                           help="the version has no training_images.txt: trust that none of "
                           "these faces trained it")
    calibrate.add_argument("--json", action="store_true", help="print JSON instead of text")
    calibrate.set_defaults(handler=run_calibrate)

def _add_train(subparsers: argparse._SubParsersAction, settings) -> None:
    """`model train`: every knob defaults to None, meaning the profile's or the setting's."""
    train = subparsers.add_parser(
        "train", help="train an age model on a face set and register it",
        description="Validate the face set, split it, fine-tune an ImageNet backbone (head-only "
        "warm-up, then the rest), evaluate the test split, write the model card and register "
        "the version (optionally promoting it through the gate). A profile gives every default "
        f"({_profiles_help()}); settings (CHECKOUT_AGE_IMAGE_SIZE, _BACKBONE, _BATCH_SIZE, "
        "_SEED) and then these flags override single values. A run estimated to need more "
        "than --max-minutes on this CPU is refused before it starts.")
    train.add_argument("--faces", type=Path, metavar="DIR", help="face set (default: FACES_DIR)")
    train.add_argument("--profile", choices=tuple(TRAIN_PROFILES),
                       help=f"training profile (default: setting train_profile, "
                       f"{settings.train_profile})")
    train.add_argument("--size", type=int, help="input side in px")
    train.add_argument("--epochs", type=int,
                       help="max fine-tuning epochs; early stopping may end sooner")
    train.add_argument("--head-epochs", type=int,
                       help="head-only warm-up epochs on a frozen backbone")
    train.add_argument("--backbone", help="mobilenet_v2, efficientnet_b0, efficientnet_v2_b0, "
                       "efficientnet_v2_s, convnext_tiny, resnet50 (only mobilenet_v2 has a "
                       "feature-cache layer set in the profiles)")
    train.add_argument("--head", choices=("regression", "expectation"),
                       help="linear regression head or DEX-style expected age over 1-year bins")
    train.add_argument("--batch-size", type=int, help="images per step")
    train.add_argument("--frozen-until", metavar="LAYER",
                       help="feature-cache profiles: the last backbone layer kept as ImageNet "
                            "trained it (e.g. block_5_add); the layers after it are trained")
    train.add_argument("--camera-share", type=float, metavar="P",
                       help="chance a training face is seen as a checkout camera delivers it "
                            "(small, blurred, re-exposed, JPEG) in an epoch")
    train.add_argument("--camera-detect", action=argparse.BooleanOptionalAction, default=None,
                       help="with --camera-share: cut each camera view around the face the "
                            "serving detector finds in it, as the score job cuts a frame's face "
                            "(--no-camera-detect: the view brought back whole)")
    train.add_argument("--age-balance", type=float, metavar="E",
                       help="weigh each face's loss by its 5-year band's share ** -E (0: "
                            "alike; 0.5 lifts the sparse 65+ and teen bands)")
    train.add_argument("--teacher", dest="teachers", action="append", metavar="VERSION",
                       help="distil: blend this registered version's estimate into each "
                       "training face's target (repeat for an ensemble of teachers; a teacher "
                       "that saw the test faces is refused)")
    train.add_argument("--distill-weight", type=float, metavar="W",
                       help="share of the teachers' mean estimate in a target, 0..1 (default "
                       "0.5; only with --teacher)")
    train.add_argument("--learning-rate", type=float, help="peak fine-tuning learning rate")
    train.add_argument("--patience", type=int, help="early-stopping patience (epochs)")
    train.add_argument("--limit", type=int, help="train on a random subset of N usable rows")
    train.add_argument("--seed", type=int, help=f"random seed (default: {settings.seed})")
    train.add_argument("--mixed-precision", choices=("auto", "on", "off"),
                       help="bfloat16 compute: auto (default) = when a GPU is present")
    train.add_argument("--max-minutes", type=float,
                       help="refuse a run estimated to need longer on this CPU, and stop "
                       "fitting when it has run this long (default: setting train_max_minutes, "
                       f"{settings.train_max_minutes})")
    train.add_argument("--out", type=Path, metavar="DIR",
                       help="also write model.keras, metrics, card and plots here")
    train.add_argument("--no-register", action="store_true", help="do not add to the registry")
    train.add_argument("--promote", action="store_true",
                       help="promote through the gate (a refusal is printed; exit status 0)")
    train.add_argument("--max-mae", type=float,
                       help=f"gate: highest test MAE (default: {settings.gate_max_mae})")
    train.add_argument("--tolerance", type=float, help="gate: years worse than production "
                       f"allowed (default: {settings.gate_tolerance})")
    train.add_argument("--json", action="store_true", help="print JSON instead of text")
    train.add_argument("--version-only", action="store_true",
                       help="print only the new version id (for schedulers; logs go to stderr)")
    train.set_defaults(handler=run_train)


def _add_register(subparsers: argparse._SubParsersAction, settings) -> None:
    """`model register MODEL.keras`: a model trained elsewhere becomes a version."""
    register = subparsers.add_parser(
        "register", help="register a .keras age model trained elsewhere (e.g. on a GPU worker)",
        description="Check that the file is a Keras age model (raw RGB pixels (S, S, 3) in, one "
        "age out), evaluate it on the face set's content-hash test split here, write its card, "
        "plots and calibration, and register it as a new version (never promoted: use "
        "`model promote`). Training facts (profile, epochs, device) come from --run-json, "
        "e.g. the train_gpu.json written next to the model by bench/run_gpu.sh.")
    register.add_argument("model_file", type=Path, metavar="MODEL.keras")
    register.add_argument("--faces", type=Path, metavar="DIR",
                         help="face set it was trained on (default: FACES_DIR)")
    register.add_argument("--run-json", type=Path, metavar="FILE",
                         help="the training run's summary (its `config` goes into config.json)")
    register.add_argument("--batch-size", type=int, default=settings.score_batch_size,
                          help="images per forward pass (default %(default)s)")
    register.add_argument("--json", action="store_true", help="print JSON instead of text")
    register.add_argument("--version-only", action="store_true",
                         help="print only the new version id")
    register.set_defaults(handler=run_register)
