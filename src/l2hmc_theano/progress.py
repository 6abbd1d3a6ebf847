"""Progress on long work: a heartbeat thread (:func:`every`) and the line a compile prints
(:func:`compiling`), so that no stretch of work is silent for longer than a few seconds."""
import contextlib
import sys
import threading
import time

__all__ = ["COMPILE_HEARTBEAT", "compiling", "every"]

#: Seconds between the marks a long compile prints (never a silent stretch longer than this).
COMPILE_HEARTBEAT = 5.0


@contextlib.contextmanager
def every(seconds, action):
    """Within the block, call ``action()`` every ``seconds`` from a daemon thread (a heartbeat:
    never a silent stretch longer than that); it stops, and is joined, when the block ends."""
    done = threading.Event()

    def beat():
        while not done.wait(seconds):
            action()

    ticker = threading.Thread(target=beat, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()


@contextlib.contextmanager
def compiling(what, announce, heartbeat=None):
    """With ``announce``, one line on stderr around a compile: what, a dot every ``heartbeat``
    seconds (default :data:`COMPILE_HEARTBEAT`) while it lasts (a first compile on a machine
    builds C code for a minute or more), and how long it took."""
    if not announce:
        yield
        return
    print(f"L2HMC: compiling {what} ...", end="", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        with every(COMPILE_HEARTBEAT if heartbeat is None else heartbeat,
                   lambda: print(".", end="", file=sys.stderr, flush=True)):
            yield
    finally:
        print(f" {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
