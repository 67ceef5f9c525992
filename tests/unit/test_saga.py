"""The task saga: table-driven transitions of a copy-shaped graph of steps."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from appliance.tasks.saga import (
    CancelStep,
    Dispatch,
    IllegalTransition,
    Step,
    StepState,
    Task,
    TaskState,
    cancel,
    node_offline,
    node_online,
    retry,
    start,
    step_cancelled,
    step_failed,
    step_started,
    step_succeeded,
)

S = StepState


def copy_task() -> Task:
    """export → send (overlaps export) → import (needs the whole package)."""
    return Task(
        id=uuid4(),
        state=TaskState.RUNNING,
        steps=(
            Step(uuid4(), "export", "src"),
            Step(uuid4(), "send", "src", needs={"export": "started"}),
            Step(uuid4(), "import", "dst", needs={"send": "succeeded"}),
        ),
    )


def ids(task: Task) -> dict[str, UUID]:
    return {s.name: s.id for s in task.steps}


def states(task: Task) -> list[str]:
    return [s.state.value for s in task.steps]


def test_start_dispatches_only_steps_without_needs():
    task = copy_task()
    out = start(task)
    assert out.actions == (Dispatch(ids(task)["export"], 0),)
    assert states(out.task) == ["dispatched", "pending", "pending"]


def test_send_overlaps_export_and_import_waits_for_send():
    task = start(copy_task()).task
    i = ids(task)
    out = step_started(task, i["export"])
    assert out.actions == (Dispatch(i["send"], 0),)
    task = step_started(out.task, i["send"]).task
    task = step_succeeded(task, i["export"]).task
    assert states(task) == ["succeeded", "running", "pending"]
    out = step_succeeded(task, i["send"])
    assert out.actions == (Dispatch(i["import"], 0),)
    out = step_succeeded(out.task, i["import"])
    assert out.task.state == TaskState.SUCCEEDED
    assert out.actions == ()


def test_duplicate_and_stale_events_change_nothing():
    task = start(copy_task()).task
    i = ids(task)
    task = step_succeeded(task, i["export"]).task
    again = step_succeeded(task, i["export"])
    assert again.task == task
    assert again.actions == ()
    assert step_started(task, i["export"]).task == task  # late "started" after success
    assert step_failed(task, i["export"]).task == task  # a failure after success is stale


def test_failure_fails_task_and_cancels_running_siblings():
    task = start(copy_task()).task
    i = ids(task)
    task = step_started(task, i["export"]).task
    task = step_started(task, i["send"]).task
    out = step_failed(task, i["export"])
    assert out.task.state == TaskState.FAILED
    assert out.actions == (CancelStep(i["send"], "src"),)
    assert states(out.task) == ["failed", "cancelled", "cancelled"]


def test_retry_resumes_unfinished_steps_with_a_new_attempt():
    task = start(copy_task()).task
    i = ids(task)
    task = step_succeeded(step_started(task, i["export"]).task, i["export"]).task
    task = step_failed(step_started(task, i["send"]).task, i["send"]).task
    out = retry(task)
    assert out.task.state == TaskState.RUNNING
    assert out.actions == (Dispatch(i["send"], 1),)
    assert [s.attempt for s in out.task.steps] == [0, 1, 1]
    assert states(out.task) == ["succeeded", "dispatched", "pending"]


@pytest.mark.parametrize("state", [TaskState.RUNNING, TaskState.SUCCEEDED, TaskState.CANCELLING])
def test_retry_only_from_failed_or_cancelled(state):
    with pytest.raises(IllegalTransition):
        retry(Task(uuid4(), state, ()))


def test_cancel_stops_active_steps_and_settles_when_they_confirm():
    task = start(copy_task()).task
    i = ids(task)
    task = step_started(task, i["export"]).task
    out = cancel(task)
    assert out.task.state == TaskState.CANCELLING
    assert set(out.actions) == {CancelStep(i["export"], "src"), CancelStep(i["send"], "src")}
    task = step_cancelled(out.task, i["export"]).task
    assert task.state == TaskState.CANCELLING
    task = step_cancelled(task, i["send"]).task
    assert task.state == TaskState.CANCELLED
    assert states(task) == ["cancelled", "cancelled", "cancelled"]


def test_cancel_of_a_task_with_nothing_running_is_immediate():
    task = Task(uuid4(), TaskState.RUNNING, (Step(uuid4(), "a", "n"),))
    out = cancel(task)
    assert out.task.state == TaskState.CANCELLED
    assert out.actions == ()


def test_cancel_twice_is_harmless_and_cancel_after_end_is_illegal():
    task = start(copy_task()).task
    once = cancel(task).task
    assert cancel(once).task == once
    done = Task(uuid4(), TaskState.SUCCEEDED, ())
    with pytest.raises(IllegalTransition):
        cancel(done)


def test_a_step_that_finishes_while_cancelling_still_settles():
    task = start(copy_task()).task
    i = ids(task)
    task = cancel(task).task
    assert step_succeeded(task, i["export"]).task.state == TaskState.CANCELLED


def test_node_offline_makes_steps_wait_not_fail():
    task = start(copy_task()).task
    i = ids(task)
    task = step_started(task, i["export"]).task
    waiting = node_offline(task, "src").task
    assert states(waiting) == ["waiting-for-node", "waiting-for-node", "pending"]
    assert waiting.state == TaskState.RUNNING
    assert node_offline(task, "other").task == task
    back = node_online(waiting, "src").task
    assert states(back) == ["running", "running", "pending"]


def test_unknown_step_is_a_key_error():
    with pytest.raises(KeyError):
        step_started(copy_task(), uuid4())
