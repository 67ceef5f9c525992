"""Names and permissions of the broker users the server makes for nodes."""

from __future__ import annotations

from appliance.bus.brokerusers import node_permissions, node_user


def test_node_broker_users_are_named_per_vhost():
    assert node_user("n1") == "hcc-node-n1"
    assert node_user("n1", "prod") == "hcc-node-prod-n1"
    configure, write, read = node_permissions("n-1")
    assert (configure, write) == ("^$", r"^hcc\.(events|dead)$")
    assert read == r"^hcc\.node\.n\-1$"
