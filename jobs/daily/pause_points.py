"""Named pause points for the process-fault tests (inert unless two environment variables are set).

The kill tests (tests/jobs/daily/test_kills.py) must SIGKILL a real job at an exact moment: while
it reads, after a partition is staged, between two tables. A job calls `pause_point(name)` at such
moments; when `CHECKOUT_AGE_PAUSE_AT` names that point, the process writes
`$CHECKOUT_AGE_PAUSE_DIR/<name>.reached` (its pid) and waits until `<name>.resume` appears, so the
test can kill it there, or let it go on after doing something meanwhile (promote a model).
Points: `score:read`, `reports:read`, `staged:<table>`, `swapped:<table>`, `written:<table>`,
`minimise:marker` (before photo minimisation's marker), `minimise:deleting` (one photo deleted).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_AT = "CHECKOUT_AGE_PAUSE_AT"
PAUSE_DIR = "CHECKOUT_AGE_PAUSE_DIR"


def pause_point(name: str) -> None:
    """Pause here if the environment asks for point `name` (test-only; a no-op otherwise)."""
    if os.environ.get(PAUSE_AT) != name:
        return
    folder = Path(os.environ[PAUSE_DIR])
    safe = name.replace(":", "-")
    (folder / f"{safe}.reached").write_text(str(os.getpid()))
    while not (folder / f"{safe}.resume").exists():
        time.sleep(0.05)
