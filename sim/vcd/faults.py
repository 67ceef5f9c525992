"""Fault injection for tests: slow tasks, failing tasks, connections dropped mid-upload.

Set at start (``--faults '{"task_delay_s": 2}'``), in-process (``app[FAULTS]`` is this
object; mutate it), or over HTTP on the test-only admin API, which exists only when the
simulator runs with ``--admin-api``:

* ``GET /_sim/faults`` → the flags as JSON
* ``PATCH /_sim/faults`` with a JSON object → merges the given flags, answers the result
* ``DELETE /_sim/faults`` → back to no faults
* ``GET /_sim/state`` → the inventory as JSON (passwords and sessions left out)
* ``DELETE /_sim/sessions`` → every session token expires (clients see 401 and must log in)
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError


class Faults(BaseModel):
    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    task_delay_s: float = 0.0
    """Extra time every task spends running (slow tasks)."""
    fail_operations: list[str] = []
    """operationName values whose tasks end in error (``*``: every task)."""
    fail_count: int | None = None
    """How many tasks fail before ``fail_operations`` clears itself; None: no limit."""
    fail_message: str = "Simulated failure (fault injection)."
    drop_upload_after_bytes: int | None = None
    """A transfer PUT has its connection closed after this many body bytes (kept, as vCD
    keeps what arrived); None: never."""
    drop_upload_count: int | None = 1
    """How many PUTs get dropped before the flag clears itself; None: every one."""
    download_idle_timeout_s: float | None = None
    """Download links unused for longer than this expire (404; enableDownload again). Real
    vCD keeps them for up to 60 minutes idle; None: never."""
    upload_idle_timeout_s: float | None = None
    """An unfinished upload file idle longer than this expires: its bytesTransferred goes
    back to 0 and the file starts over (so a resume at the old offset gets 416)."""

    def take_failure(self, operation_name: str) -> bool:
        """Whether this task should fail; consumes one from ``fail_count``."""
        if not ({"*", operation_name} & set(self.fail_operations)):
            return False
        if self.fail_count is not None:
            self.fail_count -= 1
            if self.fail_count <= 0:
                self.fail_operations = []
                self.fail_count = None
        return True

    def take_drop(self) -> int | None:
        """The byte count after which to drop this PUT, or None; consumes one drop."""
        limit = self.drop_upload_after_bytes
        if limit is None:
            return None
        if self.drop_upload_count is not None:
            self.drop_upload_count -= 1
            if self.drop_upload_count <= 0:
                self.drop_upload_after_bytes = None
                self.drop_upload_count = 1
        return limit

    def update(self, changes: dict[str, Any]) -> None:
        merged = self.model_validate({**self.model_dump(), **changes})
        for key in type(self).model_fields:
            setattr(self, key, getattr(merged, key))


def parse_faults(text: str | None) -> Faults:
    return Faults.model_validate_json(text) if text else Faults()


# --- the test-only admin API -------------------------------------------------------


def _faults(request: web.Request) -> Faults:
    from sim.vcd.web import FAULTS

    return request.app[FAULTS]


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(_faults(request).model_dump())


async def patch_faults(request: web.Request) -> web.Response:
    faults = _faults(request)
    try:
        changes = await request.json()
        if not isinstance(changes, dict):
            raise ValueError("expected a JSON object")
        faults.update(changes)
    except (ValueError, ValidationError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(faults.model_dump())


async def delete_faults(request: web.Request) -> web.Response:
    _faults(request).update(Faults().model_dump())
    return web.json_response(_faults(request).model_dump())


async def get_state(request: web.Request) -> web.Response:
    from sim.vcd.web import STORE

    data = request.app[STORE].state.model_dump(exclude={"sessions": True})
    for user in data["users"].values():
        user.pop("password", None)
    return web.Response(text=json.dumps(data), content_type="application/json")


async def expire_sessions(request: web.Request) -> web.Response:
    from sim.vcd.web import STORE

    store = request.app[STORE]
    count = len(store.state.sessions)
    store.state.sessions.clear()
    store.save()
    return web.json_response({"expired": count})


def add_admin_routes(app: web.Application) -> None:
    app.router.add_delete("/_sim/sessions", expire_sessions)
    app.router.add_get("/_sim/faults", get_faults)
    app.router.add_patch("/_sim/faults", patch_faults)
    app.router.add_delete("/_sim/faults", delete_faults)
    app.router.add_get("/_sim/state", get_state)
