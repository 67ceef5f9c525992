"""The node runtime: enrollment, job journal, command consumer, step runner, heartbeat."""
