"""The server appliance's RabbitMQ: hcc's own broker user, and the Erlang cookie that lets
the hcc service run ``rabbitmqctl`` to make a user per node (appliance/bus/brokerusers.py).

Runs as root from hcc-broker-setup.service, after rabbitmq-server and before hcc-server, at
every boot; idempotent. The password is made once and kept in the environment file the
hcc-server unit reads; it goes to rabbitmqctl on stdin, never on a command line.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import structlog

from firstboot.apply import write_file
from firstboot.render import FileSpec, env_file

log = structlog.get_logger()


@dataclass(frozen=True)
class BrokerSetup:
    user: str = "hcc-server"
    vhost: str = "/"
    env_path: str = "/etc/hcc/broker.env"
    program: str = "rabbitmqctl"
    delete_guest: bool = True
    cookie_from: Path | None = Path("/var/lib/rabbitmq/.erlang.cookie")
    cookie_to: Path = Path("/var/lib/hcc/.erlang.cookie")
    service_user: str | None = "hcc"
    host: str = "127.0.0.1"
    port: int = 5672


def amqp_url(setup: BrokerSetup, password: str) -> str:
    vhost = "" if setup.vhost == "/" else quote(setup.vhost, safe="")
    return f"amqp://{setup.user}:{quote(password, safe='')}@{setup.host}:{setup.port}/{vhost}"


def saved_password(env_text: str, user: str) -> str | None:
    """The password in a broker.env written earlier (HCC_AMQP_URL='amqp://user:pw@...')."""
    for line in env_text.splitlines():
        if line.startswith("HCC_AMQP_URL="):
            url = line.partition("=")[2].strip("'\"")
            creds = url.removeprefix("amqp://").partition("@")[0]
            name, _, password = creds.partition(":")
            if name == user and password:
                return password
    return None


def _ctl(setup: BrokerSetup, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        [setup.program, *args],
        input=stdin.encode() if stdin is not None else None,
        capture_output=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {args[0]}: {proc.stderr.decode().strip()[:300]}")
    return proc.stdout.decode()


def ensure_broker_user(setup: BrokerSetup, root: Path = Path("/")) -> str:
    """Make (or re-key) the server's broker user; returns its AMQP URL."""
    env_path = root / setup.env_path.lstrip("/")
    old = saved_password(env_path.read_text(), setup.user) if env_path.is_file() else None
    # token_hex: the password stays the same after URL quoting
    password = old or secrets.token_hex(24)
    users = {line.split("\t")[0] for line in _ctl(setup, "list_users", "-q", "-s").splitlines()}
    if setup.user in users:
        _ctl(setup, "change_password", setup.user, stdin=password)
    else:
        _ctl(setup, "add_user", setup.user, stdin=password)
    _ctl(setup, "set_permissions", "-p", setup.vhost, setup.user, ".*", ".*", ".*")
    if setup.delete_guest and "guest" in users:
        _ctl(setup, "delete_user", "guest")
    url = amqp_url(setup, password)
    write_file(root, FileSpec(setup.env_path, env_file({"HCC_AMQP_URL": url}), 0o600), chown=False)
    log.info("firstboot.broker_user", user=setup.user, vhost=setup.vhost, created=old is None)
    return url


def copy_cookie(setup: BrokerSetup) -> None:
    """hcc runs rabbitmqctl as itself: it needs the broker's Erlang cookie in its HOME."""
    if setup.cookie_from is None:
        return
    setup.cookie_to.parent.mkdir(parents=True, exist_ok=True)
    tmp = setup.cookie_to.with_name(".erlang.cookie.new")
    shutil.copyfile(setup.cookie_from, tmp)
    os.chmod(tmp, 0o400)
    if setup.service_user is not None:
        shutil.chown(tmp, setup.service_user, setup.service_user)
    os.replace(tmp, setup.cookie_to)


def ensure_server_user(setup: BrokerSetup | None = None) -> int:
    setup = setup or BrokerSetup()
    try:
        ensure_broker_user(setup)
        copy_cookie(setup)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        log.error("firstboot.broker_failed", error=str(exc))
        return 1
    return 0
