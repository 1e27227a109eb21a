"""Ctrl-C held back over the few sections that must not be cut half-way.

A KeyboardInterrupt raised inside native code that calls back into Python (torch's and Ray's
start-up, `ray.init`, `ray.shutdown`) can leave that code half set up: the process then hangs for
a minute or aborts on its way out (`terminate called after throwing … KeyboardInterrupt`). Inside
`interrupt_after()`, SIGINT is noted instead, and raised as KeyboardInterrupt once the section is
done. Only the main thread receives signals; elsewhere the section runs as it is.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def interrupt_after() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: caught.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt
