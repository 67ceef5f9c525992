"""hcc's wire protocol: message models and AMQP names. Pure: no I/O."""

from protocol.errors import InvalidMessage, ProtocolError
from protocol.messages import (
    PROTOCOL_VERSION,
    Command,
    Envelope,
    Event,
    Message,
    dump,
    parse_command,
    parse_event,
    parse_message,
)

__all__ = [
    "PROTOCOL_VERSION",
    "Command",
    "Envelope",
    "Event",
    "InvalidMessage",
    "Message",
    "ProtocolError",
    "dump",
    "parse_command",
    "parse_event",
    "parse_message",
]
