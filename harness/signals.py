"""Signal handling for a drill: nothing that stops drillbook may leave the target broken.

A drill installs :class:`DrillSignals` for SIGINT, SIGTERM and SIGHUP (Ctrl-C, a CI job cancel or
``systemctl stop``, a closed terminal) from its start until its evidence is sealed:

- **before inject** (inside :meth:`DrillSignals.abortable`) a signal aborts at once with
  :class:`Interrupted`: nothing is broken yet, and the evidence says so;
- **from inject on** a signal is *held*: the first one asks for an orderly stop, which the runner
  obeys at its next safe point (:meth:`DrillSignals.checkpoint`: no further runbook step starts,
  a detect loop stops waiting), then revert runs and the evidence is written and sealed; every
  further signal prints what drillbook is waiting for. Only SIGKILL stops it then.

While a signal is held the main thread also *blocks* the three signals, so the processes it
starts (``pg_restore``, ``restic``, ...) inherit them blocked: a Ctrl-C typed in a terminal
reaches the whole process group, and would otherwise kill the child a revert is waiting for. A
watcher thread takes the signals with ``sigtimedwait``; :meth:`DrillSignals.poll` (called at every
safe point) takes any still pending, so the record is complete whenever the runner looks. The
watcher holds a lock while it waits (a signal it has taken is recorded before anyone else looks);
``poll`` wakes it with a thread-directed SIGURG (ignored by default, so a stray one harms
nothing) instead of waiting out its timeout: a drill polls at every phase and step, and a 10 ms
wait each time made a millisecond drill take a tenth of a second.

The handlers never raise while a signal is held, never write to a buffered stream (a handler that
prints while the interrupted code prints raises ``RuntimeError: reentrant call``), and never touch
the journal: they record the signal in memory and write one line to stderr with ``os.write``.
The runner journals what they recorded at its next safe point.

:func:`held` holds the same signals around one block outside a drill (e.g. while a target is
put back).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import Any, Self

#: the signals a drill holds: Ctrl-C, CI cancel / systemctl stop, the terminal going away
HELD_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: sent to the watcher thread only, to end its wait early (default action: ignore)
_WAKE = signal.SIGURG
#: how long the watcher waits before looking at its stop flag when nobody wakes it
_WATCH_S = 0.5

_Handler = Callable[[int, FrameType | None], Any] | int | None


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


@dataclass(frozen=True)
class Received:
    """One signal that reached the drill, and where the drill was when it came."""

    signum: int
    phase: str
    step: str | None
    utc: datetime
    mono: float
    #: True when it aborted the drill at once (before inject); False when it was held
    aborted: bool

    @property
    def name(self) -> str:
        return signal_name(self.signum)

    @property
    def where(self) -> str:
        return self.phase if self.step is None else f"{self.phase} (step {self.step!r})"

    def to_json(self) -> dict[str, Any]:
        return {"signal": self.name, "phase": self.phase, "step": self.step,
                "utc": self.utc.isoformat(), "aborted": self.aborted}


class Interrupted(KeyboardInterrupt):
    """A signal stopped the drill: raised by the handler before inject, or by
    :meth:`DrillSignals.checkpoint` at a safe point after it. A KeyboardInterrupt, so code that
    cleans up on Ctrl-C does so, and ``except Exception`` in a plug-in cannot swallow it."""

    def __init__(self, received: Received, stopped: str) -> None:
        super().__init__(f"{received.name} during {received.where}; stopped {stopped}")
        self.received = received
        #: where the drill stopped: "at once" (before inject) or the safe point, e.g.
        #: "before runbook step 'pull'"
        self.stopped = stopped


def _stderr(text: str) -> None:
    try:
        os.write(2, text.encode("utf-8", "replace"))
    except OSError:  # stderr closed or a broken pipe: the signal is still recorded
        pass


class DrillSignals:
    """Holds SIGINT, SIGTERM and SIGHUP for one drill (see the module docstring).

    ``where`` tells the handler the drill's phase and current step; ``waiting`` what a second
    signal should say drillbook is waiting for. Outside the main thread no handler can be
    installed; the object then records nothing and never asks to stop."""

    def __init__(self, *, where: Callable[[], tuple[str, str | None]] = lambda: ("start", None),
                 waiting: Callable[[], str] = lambda: "the drill to finish") -> None:
        self.where = where
        self.waiting = waiting
        self.received: list[Received] = []
        self._abortable = False
        self._previous: dict[int, _Handler] = {}
        self.active = False
        self._mask: set[int | signal.Signals] | None = None  # the main thread's mask before blocking
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        self._take = threading.Lock()  # one taker of pending signals at a time
        self._wanted = threading.Event()  # poll() waits for the lock
        self._polled = threading.Event()  # poll() is done with it

    # -- lifecycle ------------------------------------------------------------------------------

    def install(self) -> Self:
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in HELD_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        self.active = True
        self._block()
        return self

    def uninstall(self) -> None:
        self._unblock()
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
        self.active = False

    def _block(self) -> None:
        """Block the held signals in the main thread (and so in every child it starts) and let
        the watcher thread take them."""
        if not self.active or self._watcher is not None:
            return
        # the watcher is born with the wake-up signal blocked too (a thread inherits its
        # creator's mask), so it can wait for it; the main thread and its children do not keep it
        self._mask = signal.pthread_sigmask(signal.SIG_BLOCK, (*HELD_SIGNALS, _WAKE))
        self._stop.clear()
        self._watcher = threading.Thread(target=self._watch, name="drillbook-signals",
                                         daemon=True)
        try:
            self._watcher.start()
        finally:
            if _WAKE not in self._mask:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, (_WAKE,))

    def _unblock(self) -> None:
        if self._watcher is None:
            return
        self._stop.set()
        self._wake()
        self._watcher.join()
        self._watcher = None
        self.poll()
        assert self._mask is not None
        signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)

    def _watch(self) -> None:
        while not self._stop.is_set():
            if self._wanted.is_set():  # poll() is waiting for the lock: let it have it
                self._polled.wait(_WATCH_S)
                continue
            with self._take:
                info = signal.sigtimedwait((*HELD_SIGNALS, _WAKE), _WATCH_S)
                if info is not None and info.si_signo != _WAKE:
                    self._handle(info.si_signo, None)

    def _wake(self) -> None:
        """End the watcher's current wait (it gives up the lock, then looks at its flags)."""
        watcher = self._watcher
        if watcher is not None and watcher.ident is not None and watcher.is_alive():
            signal.pthread_kill(watcher.ident, _WAKE)

    def __enter__(self) -> Self:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    # -- what the runner asks -------------------------------------------------------------------

    def poll(self) -> list[Received]:
        """Take every held signal still pending, then return all that were received."""
        if self._watcher is not None:
            # the watcher holds the lock while it waits: wake it, and it yields the lock
            self._polled.clear()
            self._wanted.set()
            self._wake()
            try:
                with self._take:
                    while (info := signal.sigtimedwait(HELD_SIGNALS, 0)) is not None:
                        self._handle(info.si_signo, None)
            finally:
                self._wanted.clear()
                self._polled.set()
        return self.received

    @property
    def stop_requested(self) -> bool:
        return bool(self.poll())

    @property
    def first(self) -> Received | None:
        return self.received[0] if self.received else None

    @contextmanager
    def abortable(self) -> Iterator[None]:
        """While the body runs (nothing broken yet), a signal raises :class:`Interrupted` at
        once. A signal that came before the body starts raises on entry."""
        self._unblock()  # let a signal reach the main thread, where it can raise
        self._abortable = True
        try:
            self.checkpoint("before preflight")  # one that came before
            yield
        finally:
            self._abortable = False
            self._block()

    def checkpoint(self, where: str) -> None:
        """A safe point (``where``, e.g. "before runbook step 'pull'"): raise
        :class:`Interrupted` if a stop was asked for."""
        if self.poll():
            raise Interrupted(self.received[0], where)

    def record_keyboard_interrupt(self) -> None:
        """Code raised KeyboardInterrupt itself (no held signal does): record it as a SIGINT
        where the drill is, unless a signal is already recorded."""
        if not self.received:
            phase, step = self.where()
            self.received.append(Received(signal.SIGINT, phase, step, datetime.now(UTC),
                                          time.monotonic(), aborted=True))

    # -- the handler ----------------------------------------------------------------------------

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        phase, step = self.where()
        received = Received(signum, phase, step, datetime.now(UTC), time.monotonic(),
                            aborted=self._abortable)
        self.received.append(received)
        name = received.name
        if self._abortable:
            self._abortable = False  # one abort; the runner's clean-up is not interrupted again
            _stderr(f"\ndrillbook: {name} during {received.where}, before the fault was "
                    f"injected: nothing is broken; stopping and writing evidence\n")
            raise Interrupted(received, "at once")
        if len(self.received) == 1:
            _stderr(f"\ndrillbook: {name} during {received.where}: stopping at the next safe "
                    f"point; revert runs and evidence is sealed before drillbook exits (only "
                    f"SIGKILL stops it now, and would leave the target broken)\n")
        else:
            _stderr(f"\ndrillbook: {name} again: {self.waiting()}\n")


def interruption_record(received: list[Received], *, injected: bool, stopped: str | None,
                        as_found: bool | None) -> tuple[str, dict[str, Any]]:
    """The reason line and the evidence section (``sections.interruption``) for a drill that
    signals reached: which signal, where, where the drill stopped, and whether revert verified
    the target as found (None when no fault was injected: nothing was changed)."""
    first = received[0]
    head = f"interrupted by {first.name} during {first.where}"
    if not injected:
        reason = f"{head}, before the fault was injected: nothing was broken"
    else:
        how = f"stopped {stopped}" if stopped is not None else "no phase was cut short"
        target = ("revert ran and verified the target as found" if as_found else
                  "revert did NOT verify the target as found: it may be damaged (see the revert "
                  "step)")
        reason = f"{head}; {how}; {target}"
    section: dict[str, Any] = {
        "signal": first.name, "phase": first.phase, "step": first.step,
        "utc": first.utc.isoformat(), "stopped": stopped, "fault_injected": injected,
        "target_as_found": as_found, "signals": [r.to_json() for r in received]}
    return reason, section


@contextmanager
def held(on_signal: str) -> Iterator[list[int]]:
    """Hold SIGINT, SIGTERM and SIGHUP while the body runs (for work outside a drill that must
    not be cut short, such as putting a target back); yields the signal numbers that arrived.
    Each arrival prints ``on_signal``."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        _stderr(f"\ndrillbook: {signal_name(signum)}: {on_signal}\n")

    previous = {sig: signal.signal(sig, handler) for sig in HELD_SIGNALS}
    try:
        yield received
    finally:
        for sig, handler_before in previous.items():
            signal.signal(sig, handler_before)
