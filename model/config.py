"""All configuration in one place.

`Settings` is built once from environment variables (`CHECKOUT_AGE_*`, plus `MODEL_REGISTRY`
and `FACES_DIR`) over the defaults below. This is the only module that reads `os.environ`;
everything below a command's entry point takes plain values, not `Settings`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Age bands used to report model error (issue 2): lower bound inclusive, upper exclusive.
EVAL_BANDS: tuple[tuple[str, int, int], ...] = (
    ("<13", 0, 13),
    ("13-17", 13, 18),
    ("18-24", 18, 25),
    ("25-34", 25, 35),
    ("35-44", 35, 45),
    ("45-54", 45, 55),
    ("55-64", 55, 65),
    ("65+", 65, 1000),
)

# Age groups used in retail reports (domain.md).
AGE_GROUPS: tuple[tuple[str, int, int], ...] = (
    ("under 18", 0, 18),
    ("18-24", 18, 25),
    ("25-34", 25, 35),
    ("35-44", 35, 45),
    ("45-54", 45, 55),
    ("55-64", 55, 65),
    ("65+", 65, 1000),
)


def band_of(age: float, bands: tuple[tuple[str, int, int], ...] = EVAL_BANDS) -> str:
    """Name of the band holding `age` (years)."""
    for name, low, high in bands:
        if low <= age < high:
            return name
    return bands[0][0] if age < bands[0][1] else bands[-1][0]


@dataclass(frozen=True)
class Settings:
    """Every tunable of the system, with production-sensible defaults."""

    home: Path = PROJECT_ROOT / "var"
    data_root: str = str(PROJECT_ROOT / "var" / "data")
    registry_root: Path = PROJECT_ROOT / "var" / "registry"
    cache_dir: Path = PROJECT_ROOT / "var" / "cache"
    faces_dir: Path | None = None
    seed: int = 1337

    # Dataset validation.
    min_age: int = 1
    max_age: int = 100
    min_side_px: int = 32
    max_side_px: int = 8000
    max_pixels: int = 40_000_000

    # Training defaults (quick CPU values are passed explicitly by the demo).
    image_size: int = 160
    backbone: str = "mobilenet_v2"
    batch_size: int = 64

    # Promotion gate.
    gate_max_mae: float = 8.0
    gate_tolerance: float = 0.10

    # Daily jobs.
    spark_master: str = "local[*]"
    score_batch_size: int = 64
    legal_age: int = 18
    challenge_age: int = 25
    match_window_s: int = 10
    min_support: float = 0.01
    min_match_rate: float = 0.5
    photo_retention_days: int = 30

    def with_overrides(self, **changes: object) -> Settings:
        """Copy with some fields replaced (used by command-line flags)."""
        return replace(self, **changes)


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def load_settings() -> Settings:
    """Build `Settings` from the environment over the defaults."""
    base = Settings()
    home = Path(_env("CHECKOUT_AGE_HOME") or base.home)
    changes: dict[str, object] = {
        "home": home,
        "data_root": _env("CHECKOUT_AGE_DATA_ROOT") or str(home / "data"),
        "registry_root": Path(_env("MODEL_REGISTRY") or home / "registry"),
        "cache_dir": Path(_env("CHECKOUT_AGE_CACHE_DIR") or home / "cache"),
    }
    faces = _env("FACES_DIR")
    if faces:
        changes["faces_dir"] = Path(faces)
    numeric = {
        "seed": int,
        "min_age": int,
        "max_age": int,
        "image_size": int,
        "batch_size": int,
        "gate_max_mae": float,
        "gate_tolerance": float,
        "score_batch_size": int,
        "legal_age": int,
        "challenge_age": int,
        "match_window_s": int,
        "min_support": float,
        "min_match_rate": float,
        "photo_retention_days": int,
    }
    for name, cast in numeric.items():
        raw = _env(f"CHECKOUT_AGE_{name.upper()}")
        if raw is not None:
            changes[name] = cast(raw)
    for name in ("backbone", "spark_master"):
        raw = _env(f"CHECKOUT_AGE_{name.upper()}")
        if raw is not None:
            changes[name] = raw
    return replace(base, **changes)
