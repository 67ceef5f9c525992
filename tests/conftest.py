"""Shared pytest set-up. Fixture modules live in tests/fixtures/ and are registered here."""

pytest_plugins: list[str] = [
    "tests.fixtures.postgres",
    "tests.fixtures.rabbit",
    "tests.fixtures.vcsim",
    "tests.fixtures.vcdsim",
    "tests.fixtures.transfer",
]
