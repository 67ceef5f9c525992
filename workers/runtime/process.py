"""The node process entry point: signals, config (load or enroll), run until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import structlog

from runtime.amqp import backoff_delays
from workers.runtime.config import NodeConfig, load_config, save_config
from workers.runtime.enroll import EnrollmentError, enroll
from workers.runtime.node import Node
from workers.settings import NodeSettings

log = structlog.get_logger(__name__)


class NotEnrolled(Exception):
    """No config in the data dir and no way to enroll (missing --server / --enroll-token),
    or the server refused the token."""


async def obtain_config(settings: NodeSettings, stop: asyncio.Event) -> NodeConfig | None:
    """The saved config, or enroll now (retrying while the server is unreachable or failing).

    None when ``stop`` was set while waiting.
    """
    config = load_config(settings.data_dir)
    if config is not None:
        if config.node_id != settings.node_id:
            raise NotEnrolled(f"{settings.data_dir} belongs to node {config.node_id!r}")
        return config
    if not settings.server or settings.enroll_token is None:
        raise NotEnrolled("not enrolled yet: give --server and --enroll-token")
    from workers.transfer.tls import ensure_certificate

    cert = ensure_certificate(settings.data_dir, settings.node_id)
    delays = backoff_delays(base_s=1.0, cap_s=30.0)
    while not stop.is_set():
        try:
            config = await enroll(
                settings.server,
                settings.enroll_token.get_secret_value(),
                settings.node_id,
                cert.fingerprint,
                settings.advertised_url,
            )
        except EnrollmentError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                raise NotEnrolled(f"enrollment refused: {exc}") from exc
            delay = next(delays)
            log.warning("enrollment failed; retrying", error=str(exc), retry_in_s=round(delay, 1))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            continue
        save_config(settings.data_dir, config)
        log.info("enrolled", server=settings.server, clouds=len(config.clouds))
        return config
    return None


async def run_node_process(settings: NodeSettings) -> int:
    """Run the node until SIGTERM/SIGINT; the process exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        config = await obtain_config(settings, stop)
    except NotEnrolled as exc:
        log.error("cannot start node", error=str(exc))
        return 2
    if config is None:
        return 0
    log.info("node starting", node_id=settings.node_id, data_dir=str(settings.data_dir))
    await Node(settings, config).run(stop)
    return 0
