"""Requests per token, and per client address for requests without a valid token."""

from __future__ import annotations

import logging
import math
import time

from fabric_core.errors import ConfigurationError
from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger(__name__)

# A Redis that accepts connections and never answers must cost a request at most this
# long (then it passes uncounted), not hold it forever.
_REDIS_TIMEOUT_SECONDS = 1.0
_REDIS_SCHEMES = ("redis://", "rediss://", "redis+unix://")


def _storage_options(storage_url: str) -> dict[str, float]:
    if storage_url.startswith(_REDIS_SCHEMES):
        return {
            "socket_timeout": _REDIS_TIMEOUT_SECONDS,
            "socket_connect_timeout": _REDIS_TIMEOUT_SECONDS,
        }
    return {}


class RateLimiter:
    """The gateway's limits, counted in memory or in a shared store (Redis)."""

    def __init__(self, limit: str, storage_url: str) -> None:
        try:
            self._items: list[RateLimitItem] = parse_many(limit)
        except ValueError:
            raise ConfigurationError(
                f"FABRIC_RATE_LIMIT={limit!r} is not a rate limit such as '600/minute'."
            ) from None
        try:
            self._limiter = MovingWindowRateLimiter(
                storage_from_string(storage_url, **_storage_options(storage_url))
            )
        except Exception as exc:
            raise ConfigurationError(
                f"FABRIC_RATE_LIMIT_STORAGE_URL cannot be used: {type(exc).__name__}: {exc}"
            ) from None

    def retry_after(self, key: str) -> int | None:
        """Count one request for ``key``: None when allowed, else seconds until it would be.

        Blocking (a shared store is asked over the network): call it from a worker thread.
        """
        try:
            for item in self._items:
                if not self._limiter.hit(item, key):
                    reset_at, _remaining = self._limiter.get_window_stats(item, key)
                    return max(1, math.ceil(reset_at - time.time()))
        except Exception as exc:
            # A shared store that is down must not take the API with it: requests pass
            # uncounted, and the log says so.
            log.warning("rate limit store unavailable (%s); request not counted", exc)
        return None
