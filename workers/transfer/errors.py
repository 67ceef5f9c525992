"""Errors of the transfer engine, split by what the caller should do.

``code`` is stable and machine-readable (it becomes a step's error code and the
``code`` of a receiver's problem+json answer); ``status`` is the HTTP status the
receiver answers with; ``retryable`` tells the sender (and the saga) whether trying
again may help.
"""

from __future__ import annotations


class TransferError(Exception):
    code = "transfer-error"
    status = 500
    retryable = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class BadRequest(TransferError):
    """Malformed input: bad names, bad manifest, bad headers (400)."""

    status = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


class Unauthorized(TransferError):
    """Missing, malformed, badly signed or expired token (401)."""

    code = "unauthorized"
    status = 401


class Forbidden(TransferError):
    """A valid token for another artifact or node (403)."""

    code = "forbidden"
    status = 403


class NotFound(TransferError):
    code = "not-found"
    status = 404


class ManifestConflict(TransferError):
    """The request contradicts what the artifact already is (409)."""

    code = "conflict"
    status = 409


class ChunkTooLarge(TransferError):
    code = "chunk-too-large"
    status = 413


class ChunkHashMismatch(TransferError):
    """The bytes do not match their hash: the sender re-sends the chunk (422)."""

    code = "hash-mismatch"
    status = 422
    retryable = True


class StorageFull(TransferError):
    """Quota or disk full (507). What was written is kept for the resume."""

    code = "storage-full"
    status = 507
    retryable = True


class TransferNetworkError(TransferError):
    """The receiver could not be reached or kept failing (connection, timeout, 5xx)."""

    code = "transfer-network"
    retryable = True


class SourceChanged(TransferError):
    """The package on the sending side changed under us (size shrank, file vanished)."""

    code = "source-changed"


class BodyTimeout(TransferError):
    """The sender stopped sending a chunk's body (408); the chunk is not recorded."""

    code = "body-timeout"
    status = 408
    retryable = True


class ExportStalled(TransferError):
    """The package is still marked as being exported but has not grown for too long."""

    code = "export-stalled"
    retryable = True


class FingerprintMismatch(TransferError):
    """The receiver's TLS certificate is not the pinned one: not retried."""

    code = "tls-fingerprint-mismatch"
