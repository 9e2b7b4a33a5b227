"""The one exception type raised by :mod:`whetstone.data`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RouteAttempt:
    """One fetch route that was tried and failed.

    ``network`` is True when the route failed because a remote (web site,
    registry, package tool) could not be reached or refused the request, and
    False when data did arrive but was wrong (checksum, format).
    """

    route: str
    reason: str
    network: bool


class DatasetError(ValueError):
    """A dataset is unknown, missing, corrupt, or could not be fetched.

    ``attempts`` lists the fetch routes tried before giving up (empty when the
    error is not about fetching).
    """

    def __init__(self, message: str, attempts: tuple[RouteAttempt, ...] = ()) -> None:
        super().__init__(message)
        self.attempts: tuple[RouteAttempt, ...] = tuple(attempts)
