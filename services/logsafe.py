"""Logging exceptions without PHI.

An exception's message can carry request input: SQLAlchemy puts the failed statement's parameters
(record IDs) into it, pydantic the rejected values, KeyError the missing key. Logs leave the PHI
boundary (log shippers, support tickets), so errors are logged as their type and stack only; the
request id links a log line to the audit event that holds the identifiers.
"""

from __future__ import annotations

import traceback


def exc_summary(exc: BaseException) -> str:
    """``Type`` plus the stack (file, line, function, source line) of ``exc`` and of its causes,
    without any exception message."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        stack = "".join(traceback.format_tb(current.__traceback__)).rstrip()
        parts.append(f"{type(current).__module__}.{type(current).__qualname__}\n{stack}")
        current = current.__cause__ or current.__context__
    return "\ncaused by: ".join(parts)
