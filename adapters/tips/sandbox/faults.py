"""Fault switches of the sandbox tax system: what goes wrong on its next exchanges.

Each switch fires for the next `count` exchanges (default 1) where it applies:

| name | applies to | what the other side sees |
| --- | --- | --- |
| `fault` | a message received (2102, 9005) | a SOAP fault (soap:Server, code INJECTED_FAULT); nothing applied |
| `timeout` | a message received | applied, then no answer for `sleep_seconds` (set it just above the client's timeout) |
| `lost_reply` | a message received | applied, then the HTTP reply is lost (502 from "a proxy"): the sender retries under the same MsgID and gets the first reply again |
| `duplicate` | a message received, or one sent (9114, 3001, 3102, 9005) | received: applied twice (the second delivery is answered from the MsgID table); sent: the same message (same bytes, same MsgID) is sent twice and the second reply is returned |
| `bad_signature` | a reply it gives, or a message it sends | signed with a key that is not the sandbox's: the service answers 91005, the client raises TipsFault 91005 |

When several are armed for an exchange, they fire in the order of the table and the first that applies wins.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from adapters.sandbox_common.faults import InvalidFault

FAULT = "fault"
TIMEOUT = "timeout"
LOST_REPLY = "lost_reply"
DUPLICATE = "duplicate"
BAD_SIGNATURE = "bad_signature"
SWITCHES = (FAULT, TIMEOUT, LOST_REPLY, DUPLICATE, BAD_SIGNATURE)
RECEIVING = SWITCHES  # switches that apply to a message received
SENDING = (DUPLICATE, BAD_SIGNATURE)  # switches that apply to a message sent
DEFAULT_SLEEP_SECONDS = 30.0


@dataclass
class _Switch:
    remaining: int
    sleep_seconds: float  # float ok: seconds


@dataclass(frozen=True)
class Fired:
    name: str
    sleep_seconds: float


class FaultSwitches:
    """Thread-safe set of armed faults."""

    def __init__(self):
        self._lock = threading.Lock()
        self._switches: dict[str, _Switch] = {}

    def set(self, *, name: str, count: int | None = None, sleep_seconds: float | None = None) -> None:
        if name not in SWITCHES:
            raise InvalidFault(f"unknown fault {name!r}; one of {', '.join(SWITCHES)}")
        count = 1 if count is None else count
        if type(count) is not int or count < 1:
            raise InvalidFault("count must be an integer >= 1")
        sleep_seconds = DEFAULT_SLEEP_SECONDS if sleep_seconds is None else sleep_seconds
        if isinstance(sleep_seconds, bool) or not isinstance(sleep_seconds, (int, float)) or sleep_seconds < 0:
            raise InvalidFault("sleep_seconds must be a number >= 0")
        with self._lock:
            self._switches[name] = _Switch(remaining=count, sleep_seconds=float(sleep_seconds))  # float ok: seconds

    def clear(self) -> None:
        with self._lock:
            self._switches.clear()

    def fire(self, names: tuple[str, ...]) -> Fired | None:
        """The first of `names` that is armed (consuming one of its count), or None."""
        with self._lock:
            for name in names:
                switch = self._switches.get(name)
                if switch is None:
                    continue
                switch.remaining -= 1
                if switch.remaining <= 0:
                    del self._switches[name]
                return Fired(name=name, sleep_seconds=switch.sleep_seconds)
            return None

    def describe(self) -> dict:
        with self._lock:
            return {name: {"remaining": s.remaining, "sleep_seconds": s.sleep_seconds}
                    for name, s in self._switches.items()}
