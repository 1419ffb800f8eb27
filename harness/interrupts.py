"""How a command stops: SIGTERM and SIGHUP raised like Ctrl-C, one line saying what stopped it, and blocks
that must not be cut short (a study writing its summary)."""
from __future__ import annotations

import contextlib
import signal
import sys
import threading


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP (its number the one argument), raised in the main thread so that they end a command
    the way Ctrl-C does: the worker is stopped, the summary written, the scratch folder removed."""


def stop_like_ctrl_c() -> None:
    """From now on SIGTERM and SIGHUP raise Interrupted in the main thread, as Ctrl-C raises KeyboardInterrupt."""
    def raise_interrupted(signum, frame):
        raise Interrupted(signum)

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), raise_interrupted)


def interrupted(exc: KeyboardInterrupt, what: str) -> int:
    """Say that ``exc`` (Ctrl-C or an Interrupted) stopped the command, then ``what``; the exit status,
    128 + the signal's number."""
    signum = exc.args[0] if isinstance(exc, Interrupted) else signal.SIGINT
    print(f"\ninterrupted ({signal.Signals(signum).name}){what}", file=sys.stderr)
    return 128 + signum


@contextlib.contextmanager
def interrupts_deferred():
    """Hold back Ctrl-C, SIGTERM and SIGHUP for the block (in the main thread; signals reach no other): a
    second Ctrl-C while an interrupted study writes its summary would leave none. What arrives meanwhile
    is dropped: the command is stopping already."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)]
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
