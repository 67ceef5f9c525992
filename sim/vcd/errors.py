"""vCD-style errors: an HTTP status plus ``<Error majorErrorCode minorErrorCode message>``.

Every error on ``/api`` and ``/transfer`` is answered with that XML body (pyvcloud parses
every error body as XML); ``/cloudapi`` answers with the JSON shape of the OpenAPI side.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from sim.vcd.xmlgen import el


class VcdError(Exception):
    """Raised by handlers; the error middleware renders it."""

    def __init__(self, status: int, minor: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.minor = minor
        self.message = message


def forbidden(kind: str, ident: str) -> VcdError:
    """vCD does not reveal whether an id exists: unknown and foreign ids both get 403."""
    return VcdError(
        403,
        "ACCESS_TO_RESOURCE_IS_FORBIDDEN",
        f"The VMware Cloud Director entity com.vmware.vcloud.entity.{kind}:{ident} does not exist.",
    )


def bad_request(message: str, minor: str = "BAD_REQUEST") -> VcdError:
    return VcdError(400, minor, message)


def unauthorized(message: str = "This operation is denied.") -> VcdError:
    return VcdError(401, "UNAUTHORIZED", message)


def error_element(status: int, minor: str, message: str, request_id: str) -> ET.Element:
    return el(
        "Error",
        {
            "majorErrorCode": str(status),
            "minorErrorCode": minor,
            "message": f"[ {request_id} ] {message}",
        },
    )
