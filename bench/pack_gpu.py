"""Pack the validated face set for the GPU machine (run HERE, before `bench/run_gpu.sh`).

Usage: .venv/bin/python bench/pack_gpu.py [--faces DIR] [--out .gpu/faces] [--side 192] [--quality 70]

The device tool carries at most 64 MiB per call, and the JPEG originals are ~109 MB, so
every usable image is decoded with `model.images.decode_face` (the training decoder) at
`--side` px and re-encoded as WebP (192 px, quality 70: ~47 MB for 21.7k faces). Writes
`images.bin` (the WebP files back to back) and `manifest.csv` (file_name, real_age, gender,
sha256, split, offset, length). Splits come from `model.split.assign_splits`, the same
content-hash split as `checkout-age model train`, so the GPU's test figures are comparable.
"""

from __future__ import annotations

import argparse
import io
import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from model.config import load_settings
from model.data.dataset import validate_dataset
from model.data.split import assign_splits
from model.serving.images import decode_face


def _webp(path: str, side: int, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(decode_face(Path(path).read_bytes(), side)).save(buffer, "WEBP",
                                                                      quality=quality)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=load_settings().faces_dir)
    parser.add_argument("--out", type=Path, default=Path(".gpu/faces"))
    parser.add_argument("--side", type=int, default=192)
    parser.add_argument("--quality", type=int, default=70)
    parser.add_argument("--limit", type=int, help="pack only N rows (tests of the scripts)")
    args = parser.parse_args()
    if args.faces is None:
        parser.error("--faces DIR or FACES_DIR is required")
    started = time.perf_counter()
    report = validate_dataset(args.faces, cache_dir=load_settings().cache_dir)
    rows = assign_splits(report.usable)
    if args.limit:
        rows = rows.sample(n=min(args.limit, len(rows)), random_state=0).sort_index()
    with ThreadPoolExecutor() as pool:
        blobs = list(pool.map(lambda p: _webp(p, args.side, args.quality), rows["path"]))
    args.out.mkdir(parents=True, exist_ok=True)
    lengths = [len(blob) for blob in blobs]
    offsets = [0, *itertools.accumulate(lengths)][:-1]
    (args.out / "images.bin").write_bytes(b"".join(blobs))
    columns = ["file_name", "real_age"] + (["gender"] if "gender" in rows else [])
    manifest = rows[columns + ["sha256", "split"]].assign(offset=offsets, length=lengths)
    manifest.to_csv(args.out / "manifest.csv", index=False)
    (args.out / "fingerprint.txt").write_text(report.fingerprint + "\n")
    print(f"packed {len(rows)} of {report.rows} rows ({report.rows - len(report.usable)} "
          f"rejected by validation) at {args.side} px WebP q{args.quality}: "
          f"{sum(lengths) / 1e6:.1f} MB in {args.out} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
