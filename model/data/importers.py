"""Importers from public face-age datasets into the standard layout.

Both write `DEST/labels.csv` (`file_name,real_age[,gender]`) and `DEST/final_files/`,
hard-linking images where the file system allows it and copying otherwise. Source entries
that cannot be imported are skipped and counted with a reason, never silently dropped.

- UTKFace: `[age]_[gender]_[race]_[date&time].jpg` (gender 0 male, 1 female), any folder depth.
- APPA-REAL: `gt_avg_{train,valid,test}.csv` plus `{train,valid,test}/` image folders;
  uses `real_age` and the aligned `*_face.jpg` crop when present.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from model.data.labels import IMAGES_DIR, LABELS_FILE
from model.errors import UserError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
UTK_GENDERS = {"0": "male", "1": "female"}
APPA_SPLITS = ("train", "valid", "test")
APPA_COLUMNS = ("file_name", "real_age")


@dataclass
class ImportSummary:
    """What an import did: counts add up (`found == imported + sum(skipped)`)."""

    source: str
    dest: str
    found: int = 0
    imported: int = 0
    linked: int = 0
    copied: int = 0
    other_files: int = 0  # files that are not images by name (README, .txt, ...), ignored
    skipped: Counter = field(default_factory=Counter)
    examples: list[tuple[str, str, str]] = field(default_factory=list)  # (source, reason, detail)

    def skip(self, source: str, reason: str, detail: str) -> None:
        """Count one skipped entry, keeping the first few as examples."""
        self.skipped[reason] += 1
        if len(self.examples) < 20:
            self.examples.append((source, reason, detail))

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "source": self.source,
            "dest": self.dest,
            "found": self.found,
            "imported": self.imported,
            "linked": self.linked,
            "copied": self.copied,
            "other_files": self.other_files,
            "skipped": dict(sorted(self.skipped.items())),
            "skipped_examples": [
                {"file": f, "reason": r, "detail": d} for f, r, d in self.examples
            ],
        }


def parse_utkface_name(name: str) -> tuple[int, str] | tuple[None, str]:
    """(age, gender) from a UTKFace file name, or (None, reason) when it is malformed."""
    fields = name.split(".", 1)[0].split("_")
    if len(fields) != 4:
        return None, "bad_name"
    age, gender, race, stamp = fields
    if not age.isdigit() or not 0 < int(age) < 150:
        return None, "bad_age"
    if gender not in UTK_GENDERS:
        return None, "bad_gender"
    if not race.isdigit() or not stamp.isdigit():
        return None, "bad_name"
    return int(age), UTK_GENDERS[gender]


def _prepare_dest(dest: Path) -> Path:
    """Create DEST/final_files; refuse a non-empty DEST that is not an earlier import."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        expected = {LABELS_FILE, IMAGES_DIR}
        if not {p.name for p in dest.iterdir()} <= expected:
            raise UserError(f"{dest}: destination is not empty and not an earlier import")
    images = dest / IMAGES_DIR
    images.mkdir(parents=True, exist_ok=True)
    return images


def _place(source: Path, target: Path, summary: ImportSummary) -> None:
    """Hard-link `source` to `target` (replacing it), copying when linking is refused."""
    if target.exists() and os.path.samefile(source, target):
        summary.linked += 1
        return
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
        summary.linked += 1
    except OSError:  # other file system, or not allowed to link another user's file
        shutil.copyfile(source, target)
        summary.copied += 1


def _write_labels(dest: Path, labels: pd.DataFrame) -> None:
    fd, temp = tempfile.mkstemp(dir=dest, prefix=LABELS_FILE, suffix=".tmp")
    os.close(fd)
    labels.to_csv(temp, index=False)
    os.replace(temp, dest / LABELS_FILE)


def _unique_name(name: str, taken: set[str]) -> str:
    stem, dot, suffix = name.partition(".")
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem}-{n}{dot}{suffix}"
    taken.add(candidate)
    return candidate


def import_utkface(source: Path, dest: Path) -> ImportSummary:
    """Import a UTKFace folder (aligned crops or in-the-wild, any depth) into `dest`."""
    source = Path(source)
    if not source.is_dir():
        raise UserError(f"{source}: UTKFace folder not found")
    images = _prepare_dest(dest)
    summary = ImportSummary(str(source), str(dest))
    rows, taken = [], set()
    inside_dest = Path(dest).resolve()
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        if path.resolve().is_relative_to(inside_dest):  # DEST may sit inside SRC
            continue
        if not path.name.lower().endswith(IMAGE_SUFFIXES):
            summary.other_files += 1
            continue
        summary.found += 1
        age, gender = parse_utkface_name(path.name)
        if age is None:
            summary.skip(str(path), gender, f"file name {path.name!r} is not age_gender_race_date")
            continue
        name = _unique_name(path.name, taken)
        _place(path, images / name, summary)
        rows.append((name, age, gender))
        summary.imported += 1
    if summary.found == 0:
        raise UserError(f"{source}: no images found (expected UTKFace *.jpg files)")
    _write_labels(Path(dest), pd.DataFrame(rows, columns=["file_name", "real_age", "gender"]))
    return summary


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in APPA_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
        return list(reader)


def _appa_genders(source: Path, split: str) -> dict[str, str]:
    """file name -> gender from the release's optional `allcategories_{split}.csv`."""
    path = source / f"allcategories_{split}.csv"
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return {
            row.get("file", ""): row.get("gender", "").strip().lower()
            for row in csv.DictReader(handle)
        }


def import_appa_real(source: Path, dest: Path) -> ImportSummary:
    """Import an APPA-REAL release folder into `dest` (names prefixed with their split)."""
    source = Path(source)
    present = [s for s in APPA_SPLITS if (source / f"gt_avg_{s}.csv").is_file()]
    if not present:
        raise UserError(f"{source}: no gt_avg_train/valid/test.csv found (APPA-REAL release)")
    tables = {split: _read_csv(source / f"gt_avg_{split}.csv") for split in present}
    images = _prepare_dest(dest)
    summary = ImportSummary(str(source), str(dest))
    rows = []
    for split, entries in tables.items():
        genders = _appa_genders(source, split)
        for entry in entries:
            summary.found += 1
            name = (entry.get("file_name") or "").strip()
            label = f"{split}/{name}"
            try:
                age = float(entry["real_age"])
            except (TypeError, ValueError):
                summary.skip(label, "age_not_a_number", f"real_age {entry['real_age']!r}")
                continue
            if not name or Path(name).name != name:
                summary.skip(label, "bad_name", f"file name {name!r}")
                continue
            face = source / split / f"{name}_face.jpg"
            image = face if face.is_file() else source / split / name
            if not image.is_file():
                summary.skip(label, "missing_file", f"{image} not found")
                continue
            target = f"{split}_{name}"
            _place(image, images / target, summary)
            rows.append((target, int(age) if age.is_integer() else age, genders.get(name, "")))
            summary.imported += 1
    labels = pd.DataFrame(rows, columns=["file_name", "real_age", "gender"])
    if not labels["gender"].astype(bool).any():
        labels = labels.drop(columns="gender")
    _write_labels(Path(dest), labels)
    return summary
