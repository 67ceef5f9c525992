"""Store rows → API views (progress, rate, ETA computed here)."""

from __future__ import annotations

from collections.abc import Sequence

from appliance.api.schemas import StepView, TaskEventView, TaskView
from appliance.store.fleet import aware
from appliance.store.models import Step, Task, TaskEvent


def step_view(step: Step, offline: frozenset[str] = frozenset()) -> StepView:
    total = step.bytes_total
    percent = None
    eta = None
    if total:
        percent = round(100.0 * min(step.bytes_done, total) / total, 2)
        if step.rate_bytes_per_s > 0 and step.state == "running":
            eta = round(max(total - step.bytes_done, 0) / step.rate_bytes_per_s, 1)
    if step.state == "succeeded" and total:
        percent = 100.0
    started, finished = aware(step.started_at), aware(step.finished_at)
    average = None
    # a retried step keeps its first start: an average would span the pause between attempts
    if step.state == "succeeded" and not step.attempt and step.bytes_done and started and finished:
        seconds = (finished - started).total_seconds()
        average = round(step.bytes_done / seconds, 1) if seconds > 0 else None
    return StepView(
        id=step.id,
        name=step.name,
        node_id=step.node_id,
        state=step.state,
        attempt=step.attempt,
        bytes_done=step.bytes_done,
        bytes_total=total,
        percent=percent,
        rate_bytes_per_s=step.rate_bytes_per_s,
        eta_s=eta,
        average_bytes_per_s=average,
        message=_waiting(step, offline) or step.message,
        started_at=started,
        finished_at=finished,
        error=step.error,
        result=step.result,
    )


def _waiting(step: Step, offline: frozenset[str]) -> str | None:
    if step.state not in ("dispatched", "running", "waiting-for-node"):
        return None
    if step.node_id in offline:
        return f"waiting for node {step.node_id}: it is offline (commands wait in its queue)"
    peer = step.command.get("body", {}).get("destination_node")
    if step.command.get("type") == "send" and peer in offline:  # the receiver is down
        return f"waiting for node {peer}: it is offline (the send goes on when it is back)"
    return None


def task_view(task: Task, steps: Sequence[Step], offline: frozenset[str] = frozenset()) -> TaskView:
    """``offline``: nodes without a recent heartbeat; their active steps say so."""
    views = [step_view(s, offline) for s in steps]
    totals = [s.bytes_total for s in steps if s.bytes_total]
    return TaskView(
        id=task.id,
        kind=task.kind,
        state=task.state,
        spec=task.spec,
        created_by=task.created_by,
        created_at=aware(task.created_at) or task.created_at,
        updated_at=aware(task.updated_at) or task.updated_at,
        finished_at=aware(task.finished_at),
        error=task.error,
        bytes_done=sum(s.bytes_done for s in steps),
        bytes_total=sum(totals) if totals else None,
        steps=views,
    )


def event_view(event: TaskEvent) -> TaskEventView:
    return TaskEventView(
        ts=aware(event.ts) or event.ts, type=event.type, step_id=event.step_id,
        message=event.message,
    )  # fmt: skip
