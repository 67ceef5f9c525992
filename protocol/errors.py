"""The protocol package's exceptions."""


class ProtocolError(Exception):
    """Root of every protocol error."""


class InvalidMessage(ProtocolError):
    """A message that cannot be accepted: bad JSON, unknown version or type, invalid body.

    ``str(exc)`` is a one-line reason, fit for the ``x-hcc-dead-reason`` header.
    """
