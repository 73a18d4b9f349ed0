"""stop_on_signals: a process stops on SIGTERM/SIGINT, however many arrive and whenever they land.

The handler it replaced called `Event.set()` itself and hung the process when a signal landed while the
main thread held the event's lock (inside `Event.wait`, or inside the previous handler's `set()`):
against it, the storm below hung 27 of 30 child processes in a first trial (SIGTERM only).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

CHILD = """
import threading
from service.shutdown import stop_on_signals

stop = threading.Event()
stop_on_signals(stop)
print("ready", flush=True)
while not stop.wait(0.0001):  # in and out of the event's lock all the time, as run loops are
    pass
print("stopped", flush=True)
"""


def _start() -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    return child


def _finish(child: subprocess.Popen[str]) -> str:
    try:
        out, _ = child.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        pytest.fail("the process hung after its stop signals")
    return out


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_one_signal_stops_the_process_cleanly(signum: int) -> None:
    child = _start()
    child.send_signal(signum)
    assert _finish(child).strip() == "stopped"
    assert child.returncode == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_storm_of_signals_never_hangs_the_process(signum: int) -> None:
    for _trial in range(10):  # against the old handler ~2 in 3 of these hung: ten make a miss unlikely
        child = _start()
        for _ in range(3000):  # signals landing everywhere: in wait(), in set(), inside earlier handlers
            try:
                os.kill(child.pid, signum)
            except ProcessLookupError:
                break  # it stopped already
            for _ in range(20):  # a few µs apart, so that they do not all merge into one pending signal
                pass
        assert _finish(child).strip() == "stopped"
        # The storm may outlast the stop: a signal landing while the interpreter finishes (handlers back
        # to the default by then) ends it a moment early. What matters is that it ran its stop path and
        # ended.
        assert child.returncode in (0, -signum)
