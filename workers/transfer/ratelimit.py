"""A token bucket for the sender's bandwidth cap, pure: the caller owns the clock."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TokenBucket:
    """``rate`` bytes/s on average, bursts of at most ``burst`` bytes.

    :meth:`reserve` books ``n`` bytes and says how long to wait before sending them.
    Reservations queue up: concurrent streams share the rate fairly in arrival order.
    """

    rate: float
    burst: float
    tokens: float = 0.0
    updated: float = 0.0

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.tokens = self.burst

    def reserve(self, n: int, now: float) -> float:
        """Take ``n`` tokens (may go negative); return seconds to wait (0 = send now)."""
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
        self.tokens -= n
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate
