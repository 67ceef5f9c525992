"""``python -m firstboot``: what the appliance units run.

- ``run --kind node|server``: read the OVF environment, validate it, write the hcc unit's
  environment file, network, NTP, hostname, firewall and admin access. On a bad environment:
  a clear message on the console and in the journal, the environment file removed, exit 1,
  so the hcc unit (``Requires=hcc-firstboot.service``) does not start.
- ``firewall --kind node|server``: print the default nftables ruleset (image build time).
- ``broker``: the server's own RabbitMQ user (see :mod:`firstboot.broker`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import structlog

from firstboot import apply
from firstboot.config import ConfigError, Reader, build_config
from firstboot.ovfenv import OvfEnvError, parse_source
from firstboot.properties import Kind
from firstboot.render import ENV_FILE, files_for, nftables_file
from runtime.logging import configure_logging

log = structlog.get_logger()
ENROLLED_MARKER = "/var/lib/hcc-node/node.json"


def fail(kind: Kind, root: Path, message: str) -> int:
    apply.remove_file(root, ENV_FILE[kind])
    log.error("firstboot.failed", kind=kind.value, error=message)
    print(
        f"hcc-firstboot: {message}\n"
        f"hcc-firstboot: hcc-{kind.value} will not start. Fix the vApp properties (vSphere: "
        "Edit Settings > vApp Options; vCD: Guest Properties) or /etc/hcc/ovf-env.xml, "
        "then reboot.",
        file=sys.stderr,
        flush=True,
    )
    return 1


def run(kind: Kind, root: Path, vmtoolsd: str, fallback: Path) -> int:
    source = apply.read_source(vmtoolsd, fallback)
    if source is None:
        return fail(kind, root, f"no OVF environment (no guestinfo.ovfEnv, no {fallback})")
    try:
        values = parse_source(source.data)
        enrolled = (root / ENROLLED_MARKER.lstrip("/")).is_file()
        cfg = build_config(kind, Reader(values), enrolled=enrolled)
    except (OvfEnvError, ConfigError) as exc:
        return fail(kind, root, f"{source.where}: {exc}")
    for warning in cfg.warnings:
        log.warning("firstboot.warning", detail=warning)
    system = root == Path("/")
    for spec in files_for(cfg):
        apply.write_file(root, spec, chown=system)
    if system:
        apply.apply_system(cfg)
    log.info(
        "firstboot.configured",
        kind=kind.value,
        source=source.where,
        hostname=cfg.fqdn,
        dhcp=cfg.network.dhcp,
        keys=sorted(values),
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m firstboot")
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="configure the appliance from its OVF environment")
    p_run.add_argument("--kind", type=Kind, required=True, choices=list(Kind))
    p_run.add_argument("--root", type=Path, default=Path("/"), help="write below this root")
    p_run.add_argument("--vmtoolsd", default="vmtoolsd")
    p_run.add_argument("--fallback", type=Path, default=apply.FALLBACK)
    p_fw = sub.add_parser("firewall", help="print the default nftables ruleset")
    p_fw.add_argument("--kind", type=Kind, required=True, choices=list(Kind))
    p_fw.add_argument("--ssh", action="store_true")
    sub.add_parser("broker", help="server: make hcc's own RabbitMQ user (idempotent)")
    args = parser.parse_args(argv)
    configure_logging("info", json=True)
    if args.command == "run":
        return run(args.kind, args.root, args.vmtoolsd, args.fallback)
    if args.command == "firewall":
        sys.stdout.write(nftables_file(args.kind, ssh=args.ssh))
        return 0
    from firstboot.broker import ensure_server_user

    return ensure_server_user()


if __name__ == "__main__":
    sys.exit(main())
