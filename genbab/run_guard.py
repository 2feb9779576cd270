"""Every ``genbab verify`` process ends with a result, whatever stops it (issue 14, item 6).

Two things can stop a run before the pipeline answers: the budget passes while a stage is
stuck (one long tensor operation cannot be interrupted), or SIGTERM / SIGINT arrives (the
VNN-COMP harness ending a run, a user's Ctrl-C).  Both are handled off the main thread, so
they work even while the main thread sits inside torch for seconds:

* a timer thread fires at the timeout plus a grace and writes ``timeout``;
* SIGINT and SIGTERM get a Python handler that does nothing by itself: what matters is that
  the signal no longer kills the process, and that Python's C-level handler, in whichever
  thread the kernel delivers it to, writes its number to the wakeup fd
  (``signal.set_wakeup_fd``).  A watcher thread reads that pipe and writes ``timeout`` if
  the budget is spent, ``unknown`` before that.  (Blocking the signals and ``sigwait`` would
  miss threads started before the guard, such as those of an already imported torch.)

Both report the statistics gathered so far and the stage that was running, then end the
process with ``os._exit`` (no teardown that could hang).  Exactly one answer is written:
whoever ``claim``s first writes, the main path included.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from typing import Callable

WATCHDOG_GRACE_S = 0.75   # past the timeout, the watchdog writes `timeout` and ends the process
SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_TIMEOUT = 0          # the watchdog's answer is an answer: exit status 0, as for any other

# write(word, message, elapsed_s): writes the result file and prints the report
Writer = Callable[[str, str, float], None]


class RunGuard:
    """The watchdog and the signal watcher of one ``verify`` process."""

    def __init__(self, timeout_s: float, start: float, write: Writer):
        self.timeout_s, self.start, self._write = timeout_s, start, write
        self._lock = threading.Lock()
        self._answered = False
        self._timer: threading.Timer | None = None

    def arm(self) -> "RunGuard":
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        for signum in SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:  # e.g. SIGINT of a `cmd &` job
                signal.signal(signum, _ignore)
        threading.Thread(target=self._watch_signals, args=(read_end,), name="genbab-signals",
                         daemon=True).start()
        remaining = self.timeout_s + WATCHDOG_GRACE_S - self.elapsed()
        self._timer = threading.Timer(max(0.0, remaining), self._on_deadline)
        self._timer.daemon = True
        self._timer.start()
        return self

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def claim(self) -> bool:
        """True for the first caller only: that one writes the answer."""
        with self._lock:
            if self._answered:
                return False
            self._answered = True
        if self._timer is not None:
            self._timer.cancel()
        return True

    def answer_or_wait(self) -> None:
        """For the main path, before it writes its answer: if the watchdog or a signal got
        there first, wait for it to end the process instead of writing a second answer."""
        if not self.claim():
            threading.Event().wait()

    def _on_deadline(self) -> None:
        self._end("timeout", "stopped by the watchdog: a stage overran the time budget",
                  EXIT_TIMEOUT)

    def _watch_signals(self, read_end: int) -> None:
        while True:
            data = os.read(read_end, 1)
            if data and data[0] in SIGNALS:
                break
        signum = data[0]
        word = "timeout" if self.elapsed() >= self.timeout_s else "unknown"
        self._end(word, f"interrupted by {signal.Signals(signum).name}", 128 + signum)

    def _end(self, word: str, message: str, code: int) -> None:
        if not self.claim():
            return        # the main path is writing its answer and ends the process next
        try:
            self._write(word, message, self.elapsed())
        finally:
            os._exit(code)


def _ignore(signum, frame) -> None:
    """The main thread's share of a signal: nothing (the watcher thread answers)."""
