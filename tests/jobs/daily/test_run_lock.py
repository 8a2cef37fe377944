"""The per-date lock both daily jobs hold: real processes, a real `kill -9`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from jobs.daily.run_lock import DayLocked, day_lock, lock_path

DAY, OTHER_DAY = "2026-03-14", "2026-03-15"

HOLDER = textwrap.dedent("""
    import sys, time
    from jobs.daily.run_lock import day_lock
    with day_lock(sys.argv[1], sys.argv[2], "score_photos"):
        print("held", flush=True)
        time.sleep(600)
""")


@pytest.fixture()
def holder(tmp_path):
    """A separate process holding DAY's lock on tmp_path until the test kills it."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path), DAY],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    yield process
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


def test_a_second_run_of_the_day_fails_naming_the_holder(tmp_path, holder):
    with pytest.raises(DayLocked) as caught:
        with day_lock(str(tmp_path), DAY, "reports"):
            pytest.fail("entered a locked day")
    message = str(caught.value)
    assert f"day {DAY} is being processed by another run" in message
    assert f"score_photos, pid {holder.pid} on {socket.gethostname()}" in message
    assert "retry when it has ended" in message
    # Other days are not blocked.
    with day_lock(str(tmp_path), OTHER_DAY, "reports") as path:
        assert path == lock_path(str(tmp_path), OTHER_DAY)


def test_the_lock_of_a_killed_run_is_not_stale(tmp_path, holder):
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    path = lock_path(str(tmp_path), DAY)
    assert json.loads(open(path).read())["pid"] == holder.pid  # what the dead run left
    with day_lock(str(tmp_path), DAY, "reports"):  # the retry succeeds at once
        info = json.loads(open(path).read())
        assert (info["job"], info["pid"]) == ("reports", os.getpid())
    assert open(path).read() == ""  # a clean release leaves no holder text


def test_the_lock_is_exclusive_within_one_process_too(tmp_path):
    with day_lock(str(tmp_path), DAY, "score_photos"):
        with pytest.raises(DayLocked, match=f"score_photos, pid {os.getpid()}"):
            with day_lock(str(tmp_path), DAY, "reports"):
                pass
    with day_lock(str(tmp_path), DAY, "reports"):
        pass


def test_an_s3a_root_is_not_locked(caplog):
    with day_lock("s3a://bucket/data", DAY, "reports") as path:
        assert path is None
    assert "no day lock on s3a://bucket/data" in caplog.text
