"""The lab Kubernetes API's one error: it becomes a Status object with an HTTP code."""

from __future__ import annotations


class ApiError(Exception):
    """Becomes a Status object with this HTTP code."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
