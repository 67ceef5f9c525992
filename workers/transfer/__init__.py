"""Node-to-node transfer: checkpointed, verified chunks over HTTPS (docs/transfer.md).

Receiver: :func:`make_receiver_app` (mount it as the root app of the node's HTTPS
listener, port 8443) and :func:`start_receiver`; TLS: :func:`ensure_certificate`,
:func:`server_ssl_context`. Sender: :func:`send_package`. Errors: :class:`TransferError`
and its subclasses (``code``, ``retryable``).
"""

from workers.transfer.errors import StorageFull, TransferError
from workers.transfer.receiver import discard_artifact, make_receiver_app, start_receiver
from workers.transfer.sender import SendOptions, SendResult, send_package
from workers.transfer.tls import NodeCertificate, ensure_certificate, server_ssl_context

__all__ = [
    "NodeCertificate",
    "SendOptions",
    "SendResult",
    "StorageFull",
    "TransferError",
    "discard_artifact",
    "ensure_certificate",
    "make_receiver_app",
    "send_package",
    "server_ssl_context",
    "start_receiver",
]
