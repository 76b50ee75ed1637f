"""Fault switches of the sandbox budget system: what goes wrong on the next SOAP calls.

Each switch fires for the next `count` calls (default 1) of one operation (`operation`, e.g.
"SubmitVoucher"), or of any operation when none is given.

| name | what the caller sees |
| --- | --- |
| `fault` | a SOAP fault (soap:Server, code INJECTED_FAULT); nothing applied |
| `timeout` | no answer for `sleep_seconds`; `phase` "after_apply" (default): applied first, then silent; "before_apply": silent first, then applied late, after the caller gave up |
| `lost_reply` | applied, then the HTTP reply is lost (502 from "a proxy", no SOAP in it): the caller retries and gets the duplicate acknowledgement |
| `duplicate_ack` | applied, then delivered a second time: the answer is the second one, `Duplicate` true |

When several are armed for a call, they are tried in the order of the table and the first that
fires wins (the later ones are not consumed).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from adapters.budget.messages import OPERATIONS
from adapters.sandbox_common.faults import InvalidFault

FAULT = "fault"
TIMEOUT = "timeout"
LOST_REPLY = "lost_reply"
DUPLICATE_ACK = "duplicate_ack"
SWITCHES = (FAULT, TIMEOUT, LOST_REPLY, DUPLICATE_ACK)
PHASES = ("after_apply", "before_apply")
DEFAULT_SLEEP_SECONDS = 30.0


@dataclass
class _Switch:
    remaining: int
    operation: str | None  # None: any operation
    phase: str = "after_apply"
    sleep_seconds: float = DEFAULT_SLEEP_SECONDS  # float ok: seconds


@dataclass(frozen=True)
class Fired:
    name: str
    phase: str
    sleep_seconds: float


class FaultSwitches:
    """Thread-safe set of armed faults."""

    def __init__(self):
        self._lock = threading.Lock()
        self._switches: dict[str, _Switch] = {}

    def set(self, *, name: str, count: int | None = None, operation: str | None = None, phase: str | None = None,
            sleep_seconds: float | None = None) -> None:
        """Arm one switch (replacing one of the same name). Raises InvalidFault for nonsense."""
        if name not in SWITCHES:
            raise InvalidFault(f"unknown fault {name!r}; one of {', '.join(SWITCHES)}")
        count = 1 if count is None else count
        if type(count) is not int or count < 1:
            raise InvalidFault("count must be an integer >= 1")
        if operation is not None and operation not in OPERATIONS:
            raise InvalidFault(f"unknown operation {operation!r}; one of {', '.join(OPERATIONS)}")
        phase = phase or "after_apply"
        if phase not in PHASES:
            raise InvalidFault(f"phase must be one of {', '.join(PHASES)}")
        if sleep_seconds is None:
            sleep_seconds = DEFAULT_SLEEP_SECONDS
        if isinstance(sleep_seconds, bool) or not isinstance(sleep_seconds, (int, float)) or sleep_seconds < 0:
            raise InvalidFault("sleep_seconds must be a number >= 0")
        with self._lock:
            self._switches[name] = _Switch(remaining=count, operation=operation, phase=phase,
                                           sleep_seconds=float(sleep_seconds))  # float ok: seconds

    def clear(self) -> None:
        with self._lock:
            self._switches.clear()

    def fire(self, operation: str, *, names: tuple[str, ...] = SWITCHES) -> Fired | None:
        """The first of `names` armed for `operation` (consuming one of its count), or None."""
        with self._lock:
            for name in names:
                switch = self._switches.get(name)
                if switch is None or (switch.operation is not None and switch.operation != operation):
                    continue
                switch.remaining -= 1
                if switch.remaining <= 0:
                    del self._switches[name]
                return Fired(name=name, phase=switch.phase, sleep_seconds=switch.sleep_seconds)
            return None

    def describe(self) -> dict:
        with self._lock:
            return {name: {"remaining": s.remaining, "operation": s.operation, "phase": s.phase,
                           "sleep_seconds": s.sleep_seconds} for name, s in self._switches.items()}
