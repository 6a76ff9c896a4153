"""The errors CodeQual raises on purpose, under one base a caller can catch.

Every message says what happened and what to change. A part raises a subclass of one of these
(``RuleFileError`` is an :class:`InvalidInput`, ``CloneError`` an :class:`AnalysisError`);
anything else escaping a part is a bug. A leaf module: it imports nothing of codequal.
"""

from __future__ import annotations


class CodeQualError(Exception):
    """Base of every error CodeQual raises on purpose."""


class ConfigError(CodeQualError):
    """A setting is invalid; the message names the variable and what is allowed."""


class InvalidInput(CodeQualError, ValueError):
    """Input from a user or a client cannot be used: a query, a rule or test file, a CSV,
    a request body. The message says where and why."""


class DeliveryError(CodeQualError):
    """Sending to a destination (a log sink, Sentry, a notification channel) failed.

    ``permanent`` means sending the same thing again cannot succeed; ``retry_after`` is how
    long the destination asked us to wait, when it said.
    """

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after


class AnalysisError(CodeQualError):
    """An analysis could not be done: the repository, a ref, an agent or the LLM provider."""


class AuthError(CodeQualError):
    """A rejected credential. ``reason`` is a short label from a bounded set (a metric label);
    ``message`` is one sentence for the client, never containing the credential."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
