"""Ctrl-C during a build.

The first Ctrl-C lets the running notebooks finish: the build records them, starts nothing
new, refreshes the claims and the index and ends with exit code 130. The second stops the
running notebooks at once (their kernels are killed; nothing of theirs is recorded and no
partial file stays). A third one quits without refreshing anything.

Kernels run in sessions of their own (jupyter_client starts them so), so the terminal's
Ctrl-C reaches only this process; `StopRequests` keeps their process groups to stop them.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

FIRST_MESSAGE = (
    "Ctrl-C: stopping after the running notebooks… (press Ctrl-C again to stop them now)"
)
SECOND_MESSAGE = "Ctrl-C again: stopping the running notebooks now…"


class StopRequests:
    """Counts Ctrl-C presses while installed (``with StopRequests(say) as stop:``) and knows
    the kernels of the running notebooks by process group."""

    def __init__(self, say: Callable[[str], None]):
        self.count = 0
        self._say = say
        self._kernels: dict[str, set[int]] = {}  # run key -> kernel process groups
        self._lock = threading.RLock()  # RLock: the handler may run while the main thread holds it
        self._previous = None

    @property
    def stopping(self) -> bool:
        """No notebook should start any more."""
        return self.count >= 1

    @property
    def kernels_stopped(self) -> bool:
        """The running notebooks were stopped."""
        return self.count >= 2

    def __enter__(self) -> StopRequests:
        # signal handlers can only be set from the main thread; elsewhere Ctrl-C keeps its
        # default behaviour
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _on_sigint(self, signum, frame) -> None:
        self.count += 1
        if self.count == 1:
            self._say(FIRST_MESSAGE)
        elif self.count == 2:
            self._say(SECOND_MESSAGE)
            self.stop_kernels()
        else:
            raise KeyboardInterrupt

    def kernel_started(self, key: str, process_group: int) -> None:
        """Called from a run's thread when its kernel is up; killed at once when the running
        notebooks were already stopped."""
        with self._lock:
            self._kernels.setdefault(key, set()).add(process_group)
        if self.kernels_stopped:
            _kill_group(process_group)

    def run_finished(self, key: str) -> None:
        with self._lock:
            self._kernels.pop(key, None)

    def stop_kernels(self) -> None:
        with self._lock:
            groups = [g for gs in self._kernels.values() for g in gs]
        for group in groups:
            _kill_group(group)


def _kill_group(process_group: int) -> None:
    try:
        os.killpg(process_group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # already gone
