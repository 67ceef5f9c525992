"""TLS against the simulator's HTTPS mode (a self-signed certificate): verification by
default, thumbprint pinning, and the explicit insecure option (logged as a warning)."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.fixtures.vcdsim import VcdSimProcess, start_vcd_sim
from tests.integration.vcd.conftest import AdapterFactory
from workers.clouds.base import CloudError


@pytest.fixture(scope="module")
def tls_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VcdSimProcess]:
    sim = start_vcd_sim(tmp_path_factory.mktemp("vcdtls"), "--tls")
    try:
        yield sim
    finally:
        sim.stop()


def thumbprint(sim: VcdSimProcess) -> str:
    pem = (sim.data_dir / "tls" / "cert.pem").read_text()
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


async def test_untrusted_certificate_is_refused(
    tls_sim: VcdSimProcess, make_adapter: AdapterFactory
) -> None:
    assert tls_sim.url.startswith("https://")
    with pytest.raises(CloudError) as exc:
        await make_adapter(tls_sim.url).check()
    assert exc.value.code == "tls-untrusted"
    assert not exc.value.retryable


async def test_pinned_thumbprint(tls_sim: VcdSimProcess, make_adapter: AdapterFactory) -> None:
    pin = thumbprint(tls_sim)
    colons = ":".join(pin[i : i + 2] for i in range(0, len(pin), 2)).upper()
    adapter = make_adapter(tls_sim.url, thumbprint=colons)
    await adapter.check()
    assert any(i.path == "acme/Templates" for i in await adapter.inventory())


async def test_wrong_thumbprint(tls_sim: VcdSimProcess, make_adapter: AdapterFactory) -> None:
    with pytest.raises(CloudError) as exc:
        await make_adapter(tls_sim.url, thumbprint="ab" * 32).check()
    assert exc.value.code == "tls-fingerprint-mismatch"


async def test_insecure_works_and_warns(
    tls_sim: VcdSimProcess, make_adapter: AdapterFactory
) -> None:
    with capture_logs() as logs:
        await make_adapter(tls_sim.url, insecure=True).check()
    warnings = [e for e in logs if e["event"] == "vcd.tls_unverified"]
    assert warnings
    assert warnings[0]["log_level"] == "warning"


async def test_ca_file_option(
    tls_sim: VcdSimProcess, make_adapter: AdapterFactory, tmp_path: Path
) -> None:
    await make_adapter(tls_sim.url, ca_file=str(tls_sim.data_dir / "tls" / "cert.pem")).check()
