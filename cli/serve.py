"""Runs the server process: settings, logging, the aiohttp app, graceful stop on SIGTERM."""

from __future__ import annotations

import ssl
from typing import Any

from aiohttp import web

from appliance.api.app import create_app
from appliance.settings import ServerSettings
from runtime.logging import configure_logging


def run_server(overrides: dict[str, Any]) -> None:
    settings = ServerSettings(**overrides)
    configure_logging(settings.log_level)
    host, port = settings.host_port
    app = create_app(settings)
    ssl_context = None
    if settings.tls_cert is not None:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(settings.tls_cert, settings.tls_key)
    # run_app handles SIGINT/SIGTERM: stop accepting, finish requests, run cleanup_ctx
    web.run_app(app, host=host, port=port, print=None, access_log=None, shutdown_timeout=10,
                ssl_context=ssl_context)  # fmt: skip
