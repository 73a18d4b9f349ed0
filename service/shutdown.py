"""Stopping a process on SIGTERM/SIGINT without ever hanging in the signal handler.

Python runs a signal handler in the main thread, between two bytecodes of whatever that thread is doing.
A handler that calls `threading.Event.set()` takes the event's internal lock, and the main thread may
hold that very lock at that moment: inside `Event.wait` on its way in or out, or inside an earlier
handler's `set()` when a second signal lands (Ctrl-C twice; a supervisor's SIGTERM beside a terminal's).
The lock is not reentrant, so the process hangs for good — seen: `artbandit run` after two SIGTERMs
within moments of each other, its Redis, API and learner left running.

Here the handler only writes a byte to a pipe (no lock anywhere), and a small thread blocked on the
pipe's other end sets the event. Every thread keeps waiting on the same `threading.Event` as before.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterable
from types import FrameType

DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def stop_on_signals(stop: threading.Event, signals: Iterable[int] = DEFAULT_SIGNALS) -> None:
    """Set `stop` when one of `signals` arrives (call from the main thread, as `signal.signal` needs)."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)

    def relay() -> None:
        os.read(read_end, 1)  # blocks until a handler wrote
        stop.set()

    threading.Thread(target=relay, name="stop-on-signal", daemon=True).start()

    def handler(signum: int, frame: FrameType | None) -> None:
        try:
            os.write(write_end, b"\0")
        except BlockingIOError:  # the pipe is full: bytes are already waiting, the relay has its signal
            pass

    for signum in signals:
        signal.signal(signum, handler)
