"""Domain errors the services raise; routes/errors.py maps each one to an HTTP status.

Every message is one sentence a person understands: routes pass it through as the detail.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: the request cannot be answered as asked."""


class NotFoundError(ServiceError):
    """What the request refers to does not exist."""


class InvalidInputError(ServiceError):
    """The request is well-formed but its content cannot be used."""


class NotPermittedError(ServiceError):
    """The request is valid but not allowed (e.g. a photo nobody agreed to share)."""


class FeedbackWindowClosedError(ServiceError):
    """Feedback on an answer older than the feedback window."""


class IdempotencyKeyReusedError(ServiceError):
    """An idempotency key already used for different content."""


class ModelUnavailableError(ServiceError):
    """The model could not answer; the request may succeed later."""
