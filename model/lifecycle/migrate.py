"""Importing an old file registry into MLflow (`checkout-age model migrate-registry DIR`).

The file registry kept `versions/vNNNN/` folders (model.keras, metrics.json, config.json,
card.md, plots/*.png, calibration.json, training_images.txt) and `aliases/production`
({"version": ..., "previous": [...]}). Each version becomes a new MLflow version, oldest
first, with its files unchanged and the tag `migrated_from` (`DIR:vNNNN`); production then
points at the import of the old production, with the old rollback stack mapped onto the new
ids, unless MLflow already has a production (a promotion or rollback since wins). A version already imported from the same folder is skipped, so a rerun is harmless.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from model.errors import UserError
from model.lifecycle.registry import MODEL_FILE, ModelRegistry

_OLD_VERSION = re.compile(r"^v(\d{4,})$")
_KNOWN = {MODEL_FILE, "metrics.json", "config.json", "card.md", "plots"}


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise UserError(f"{path} is not valid JSON: {exc}") from None


def migrate_file_registry(directory: Path, registry: ModelRegistry) -> dict:
    """Import every version and the production alias of a file registry into `registry`.

    Returns:
        {"imported": {old id: new id}, "skipped": [old ids imported before],
         "production": the new production id or None}.

    Raises:
        UserError: `directory` has no `versions/`, or a version folder lacks its model file.
    """
    directory = Path(directory).resolve()
    versions_dir = directory / "versions"
    if not versions_dir.is_dir():
        raise UserError(f"{directory} is not a file registry (no versions/ folder)")
    old_ids = sorted((p.name for p in versions_dir.iterdir() if _OLD_VERSION.match(p.name)),
                     key=lambda v: int(v[1:]))
    done = {row["migrated_from"]: row["version"] for row in _migrated(registry)}
    mapping, skipped = {}, []
    for old in old_ids:
        key = f"{directory}:{old}"
        if key in done:
            mapping[old] = done[key]
            skipped.append(old)
            continue
        folder = versions_dir / old
        if not (folder / MODEL_FILE).is_file():
            raise UserError(f"{folder} has no {MODEL_FILE}: not a complete version")
        config = _read(folder / "config.json")
        extra = {p.name: p for p in folder.iterdir() if p.is_file() and p.name not in _KNOWN}
        new = registry.register(
            folder / MODEL_FILE, _read(folder / "metrics.json"),
            {**config, "migrated_from": key}, str(config.get("dataset_fingerprint")),
            (folder / "card.md").read_text() if (folder / "card.md").is_file() else "",
            sorted((folder / "plots").glob("*.png")), extra_files=extra)
        registry.tag_version(new, "migrated_from", key)
        mapping[old] = new
    production = _migrate_alias(directory, registry, mapping)
    imported = {old: new for old, new in mapping.items() if old not in skipped}
    return {"imported": imported, "skipped": skipped, "production": production}


def _migrated(registry: ModelRegistry) -> list[dict]:
    """Versions of `registry` imported by an earlier migration, with their origin."""
    return [{"migrated_from": tags["migrated_from"], "version": version}
            for version, tags in registry.version_tags().items() if tags.get("migrated_from")]


def _migrate_alias(directory: Path, registry: ModelRegistry, mapping: dict) -> str | None:
    """Point production at the import of the old production (its stack mapped too), unless
    the registry has a production already; returns the production afterwards."""
    alias = _read(directory / "aliases" / "production")
    old = alias.get("version")
    if not old:
        return None
    if old not in mapping:
        raise UserError(f"{directory}: production {old} is not among its versions")
    new = mapping[old]
    current = registry.production()
    if current is not None:  # MLflow already has a production (set since): never move it here
        return current.version
    registry.set_production(new, [mapping[v] for v in alias.get("previous", []) if v in mapping],
                            "migrate")
    return new
