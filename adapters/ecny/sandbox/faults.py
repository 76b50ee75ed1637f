"""Fault switches of the sandbox operator: what goes wrong on the next money calls.

Each switch fires for the next `count` money calls (transfer, batch, reverse), or on each money
call with `probability` (seeded for repeatable runs), or both (with that probability, at most
`count` times). `latency_ms` is different: while set, every operator call waits that long first.

When several switches are set they are tried in this order and the first one that fires wins
(the later ones are not consumed): error_before_apply, then after applying timeout_after_apply,
error_after_apply, malformed_reply, duplicate_reply.
"""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from adapters.sandbox_common.faults import InvalidFault

BEFORE_APPLY = ("error_before_apply",)
AFTER_APPLY = ("timeout_after_apply", "error_after_apply", "malformed_reply", "duplicate_reply")
SWITCHES = BEFORE_APPLY + AFTER_APPLY
LATENCY = "latency_ms"
DEFAULT_TIMEOUT_SLEEP_SECONDS = 30.0


@dataclass
class _Switch:
    remaining: int | None  # None: unlimited (probability only)
    probability: float | None  # None: always, while remaining


class FaultSwitches:
    """Thread-safe set of armed faults."""

    def __init__(self):
        self._lock = threading.Lock()
        self._switches: dict[str, _Switch] = {}
        self._random = random.Random()
        self.latency_seconds = 0.0
        self.timeout_sleep_seconds = DEFAULT_TIMEOUT_SLEEP_SECONDS

    def set(self, *, name: str, count: int | None = None, probability: float | None = None,
            value: int | None = None, sleep_seconds: float | None = None, seed: int | None = None) -> None:
        """Arm one switch. Raises InvalidFault for an unknown name or nonsense numbers."""
        with self._lock:
            if seed is not None:
                self._random.seed(seed)
            if name == LATENCY:
                if type(value) is not int or value < 0:
                    raise InvalidFault("latency_ms needs an integer value >= 0")
                self.latency_seconds = value / 1000
                return
            if name not in SWITCHES:
                raise InvalidFault(f"unknown fault {name!r}; one of {', '.join(SWITCHES + (LATENCY,))}")
            if count is None and probability is None:
                count = 1
            if count is not None and (type(count) is not int or count < 1):
                raise InvalidFault("count must be an integer >= 1")
            if probability is not None and not (isinstance(probability, (int, float)) and 0 < probability <= 1):
                raise InvalidFault("probability must be in (0, 1]")
            if sleep_seconds is not None:
                if not isinstance(sleep_seconds, (int, float)) or sleep_seconds < 0:
                    raise InvalidFault("sleep_seconds must be >= 0")
                self.timeout_sleep_seconds = float(sleep_seconds)  # float ok: seconds
            self._switches[name] = _Switch(remaining=count, probability=probability)

    def clear(self) -> None:
        with self._lock:
            self._switches.clear()
            self.latency_seconds = 0.0
            self.timeout_sleep_seconds = DEFAULT_TIMEOUT_SLEEP_SECONDS

    def fire(self, names: tuple[str, ...]) -> str | None:
        """The first of `names` that fires on this call (consuming one of its count), or None."""
        with self._lock:
            for name in names:
                switch = self._switches.get(name)
                if switch is None:
                    continue
                if switch.probability is not None and self._random.random() >= switch.probability:
                    continue
                if switch.remaining is not None:
                    switch.remaining -= 1
                    if switch.remaining <= 0:
                        del self._switches[name]
                return name
            return None

    def describe(self) -> dict:
        with self._lock:
            return {
                "switches": {name: {"remaining": s.remaining, "probability": s.probability}
                             for name, s in self._switches.items()},
                LATENCY: round(self.latency_seconds * 1000),
                "timeout_sleep_seconds": self.timeout_sleep_seconds,
            }
