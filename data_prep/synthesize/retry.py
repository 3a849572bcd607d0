"""The transport policy: which API errors are retried, how long to wait, and how fast to send.

The ``openai`` client's own retries are switched off (``max_retries=0``) so that this module is
the only policy: it is small, it is tested without a network, and it can do what the client's
cannot — pause *every* worker when one of them is told to slow down (429 + ``Retry-After``).

Three outcomes of a failed request:

- :class:`TransientError` — 408, 409, 429, 5xx, timeouts, dropped connections and malformed
  bodies: retried with exponential backoff and jitter, never sooner than ``Retry-After``;
- :class:`RecordError` — the request itself is bad (400, 413, 422, an unreadable image): this
  record fails, the run goes on;
- :class:`FatalAPIError` — 401, 403, 404 (bad key, no access, unknown model or URL): every other
  request would fail the same way, so the run stops at once.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Mapping, Optional

#: HTTP statuses worth sending again (the same set the ``openai`` client retries itself).
RETRYABLE_STATUS = frozenset({408, 409, 429})
#: HTTP statuses that would fail every request of the run.
FATAL_STATUS = frozenset({401, 403, 404})


class TransientError(Exception):
    """A failure that may pass: retry after a delay (``retry_after`` when the server named one)."""

    def __init__(self, reason: str, *, retry_after: Optional[float] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class RecordError(Exception):
    """This record cannot be synthesized as it is; other records are unaffected."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FatalAPIError(Exception):
    """An error that every request of the run would hit (authentication, model, URL)."""


def parse_retry_after(headers: Optional[Mapping[str, str]], *, now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait according to ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date).

    Returns None when the headers name no (finite, non-negative) delay.

    >>> parse_retry_after({"Retry-After": "2"})
    2.0
    >>> parse_retry_after({"retry-after-ms": "250"})
    0.25
    """
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = lowered.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            if name == "retry-after-ms":
                continue
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                continue
            seconds = when.timestamp() - (time.time() if now is None else now)
        if math.isfinite(seconds):
            return max(0.0, seconds)
    return None


def classify_status(status: int, message: str, headers: Optional[Mapping[str, str]]) -> Exception:
    """The exception an HTTP error status maps to (see the module docstring)."""
    reason = f"HTTP {status}: {message}"
    if status in RETRYABLE_STATUS or status >= 500:
        return TransientError(reason, retry_after=parse_retry_after(headers))
    if status in FATAL_STATUS:
        return FatalAPIError(reason)
    return RecordError(reason)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter for transient errors.

    Retry ``n`` (1-based) waits ``min(max_delay, base_delay * 2**(n-1))`` scaled by a random factor
    in ``[1 - jitter, 1]`` ("full jitter" at ``jitter=1``), so that workers that failed together
    do not come back together. A server's ``Retry-After`` is a floor: the wait is never shorter.

    Parameters
    ----------
    max_retries : int, default=8
        Retries per request after the first try (so ``max_retries + 1`` sends at most).
    base_delay, max_delay : float, default=1.0, 60.0
        Seconds.
    jitter : float, default=0.5
        Fraction of the backoff that is randomised, in ``[0, 1]``.
    """

    max_retries: int = 8
    base_delay: float = 1.0
    max_delay: float = 60.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if not (0 <= self.base_delay <= self.max_delay):
            raise ValueError(f"need 0 <= base_delay <= max_delay, got {self.base_delay} and {self.max_delay}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must be in [0, 1], got {self.jitter}")

    def backoff(self, retry: int) -> float:
        """The un-jittered wait before retry ``retry`` (1-based)."""
        if retry < 1:
            raise ValueError(f"retry is 1-based, got {retry}")
        return min(self.max_delay, self.base_delay * 2.0 ** min(retry - 1, 64))

    def delay(self, retry: int, *, retry_after: Optional[float] = None, rng: Optional[random.Random] = None) -> float:
        """Seconds to wait before retry ``retry``: jittered backoff, at least ``retry_after``."""
        wait = self.backoff(retry) * (1.0 - self.jitter * (rng or random).random())
        return max(wait, retry_after) if retry_after is not None else wait


class RateLimiter:
    """Start at most ``per_minute`` requests per minute, evenly spaced, and honour global pauses.

    Spacing starts (one every ``60 / per_minute`` seconds) rather than counting a window keeps the
    load smooth: a window would let a full minute's quota go out in the first second. A pause
    (:meth:`pause_for`) holds back every worker, which is what a 429 with ``Retry-After`` asks for.
    Single event loop only (no locks needed: there is no ``await`` between a check and its update).
    """

    def __init__(
        self,
        per_minute: Optional[float] = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if per_minute is not None and per_minute <= 0:
            raise ValueError(f"per_minute must be > 0, got {per_minute}")
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next_start = -math.inf
        self._paused_until = -math.inf

    def pause_for(self, seconds: float) -> None:
        """Hold every request back for ``seconds`` from now (a longer pause already set wins)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    async def acquire(self) -> None:
        """Wait until a request may start, and take that slot."""
        while True:
            now = self._clock()
            ready_at = max(self._next_start, self._paused_until)
            if ready_at <= now:
                self._next_start = now + self.interval
                return
            await self._sleep(ready_at - now)
