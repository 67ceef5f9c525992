"""The task engine's pure core: a task is a small graph of steps, each run by one node.

A step may *need* other steps either ``started`` (it can overlap them: a send streams
what an export is still writing, an import takes each file the send delivers) or
``succeeded`` (a deploy needs the imported template).
Functions here take a snapshot of a task and one happening, and return the new states
and what to do next. No I/O, no clock, no SQL: the store applies the result in one
transaction together with the outbox rows for the commands it implies.

States
------
step: pending → dispatched → running → succeeded | failed | cancelled
      (running/dispatched ↔ waiting-for-node while its node is offline)
task: running → succeeded | failed | cancelling → cancelled;  failed → running (retry)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal
from uuid import UUID


class StepState(StrEnum):
    PENDING = "pending"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    WAITING_FOR_NODE = "waiting-for-node"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TaskState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


ACTIVE_STEP_STATES = frozenset(
    {StepState.DISPATCHED, StepState.RUNNING, StepState.WAITING_FOR_NODE}
)
TERMINAL_TASK_STATES = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED})

Need = Literal["started", "succeeded"]


@dataclass(frozen=True)
class StepPlan:
    """A step as a task kind plans it."""

    name: str
    node_id: str
    command: dict[str, Any]
    """``{"type": ..., "body": {...}}``; the envelope is added at dispatch."""
    needs: dict[str, Need] = field(default_factory=dict)


@dataclass(frozen=True)
class StepRecord:
    """What a binder sees of a step: its planned command and, once done, its result."""

    name: str
    node_id: str
    command: Mapping[str, Any]
    result: Mapping[str, Any] | None


Binder = Callable[[StepRecord, Sequence[StepRecord]], dict[str, Any]]
"""Completes a step's command body at dispatch (tokens, results of earlier steps)."""


class IllegalTransition(Exception):
    """The operation is not allowed in the task's current state (the API answers 409)."""


@dataclass(frozen=True)
class Step:
    id: UUID
    name: str
    node_id: str
    state: StepState = StepState.PENDING
    attempt: int = 0
    needs: Mapping[str, Need] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    id: UUID
    state: TaskState
    steps: tuple[Step, ...]

    def step(self, step_id: UUID) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def by_name(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)


@dataclass(frozen=True)
class Dispatch:
    """Publish the step's command (with its current attempt) to its node."""

    step_id: UUID
    attempt: int


@dataclass(frozen=True)
class CancelStep:
    """Ask the step's node to stop it."""

    step_id: UUID
    node_id: str


Action = Dispatch | CancelStep


@dataclass(frozen=True)
class Outcome:
    task: Task
    actions: tuple[Action, ...] = ()


def _replace_step(task: Task, new: Step) -> Task:
    return replace(task, steps=tuple(new if s.id == new.id else s for s in task.steps))


def _needs_met(task: Task, step: Step) -> bool:
    for name, need in step.needs.items():
        other = task.by_name(name)
        if need == "succeeded" and other.state != StepState.SUCCEEDED:
            return False
        if need == "started" and other.state not in (
            StepState.RUNNING,
            StepState.SUCCEEDED,
        ):
            return False
    return True


def _advance(task: Task) -> Outcome:
    """Dispatch every pending step whose needs are met; settle the task when all is done."""
    if task.state != TaskState.RUNNING:
        return Outcome(task)
    actions: list[Action] = []
    for step in task.steps:
        if step.state == StepState.PENDING and _needs_met(task, step):
            task = _replace_step(task, replace(step, state=StepState.DISPATCHED))
            actions.append(Dispatch(step.id, step.attempt))
    if all(s.state == StepState.SUCCEEDED for s in task.steps):
        task = replace(task, state=TaskState.SUCCEEDED)
    return Outcome(task, tuple(actions))


def start(task: Task) -> Outcome:
    """A new task: dispatch the steps that need nothing."""
    return _advance(task)


def step_started(task: Task, step_id: UUID) -> Outcome:
    step = task.step(step_id)
    if step.state not in ACTIVE_STEP_STATES:
        return Outcome(task)
    task = _replace_step(task, replace(step, state=StepState.RUNNING))
    return _advance(task)


def step_succeeded(task: Task, step_id: UUID) -> Outcome:
    step = task.step(step_id)
    if step.state not in ACTIVE_STEP_STATES:
        return Outcome(task)
    task = _replace_step(task, replace(step, state=StepState.SUCCEEDED))
    if task.state == TaskState.CANCELLING:
        return _settle_cancel(task)
    return _advance(task)


def step_failed(task: Task, step_id: UUID) -> Outcome:
    """A failed step fails the task and stops the steps still running beside it."""
    step = task.step(step_id)
    if step.state not in ACTIVE_STEP_STATES:
        return Outcome(task)
    task = _replace_step(task, replace(step, state=StepState.FAILED))
    if task.state == TaskState.CANCELLING:
        return _settle_cancel(task)
    actions: list[Action] = []
    for other in task.steps:
        if other.state in ACTIVE_STEP_STATES:
            actions.append(CancelStep(other.id, other.node_id))
            task = _replace_step(task, replace(other, state=StepState.CANCELLED))
        elif other.state == StepState.PENDING:
            task = _replace_step(task, replace(other, state=StepState.CANCELLED))
    return Outcome(replace(task, state=TaskState.FAILED), tuple(actions))


def step_cancelled(task: Task, step_id: UUID) -> Outcome:
    """The node confirms it stopped a step (it reports a failure with code ``cancelled``)."""
    step = task.step(step_id)
    if step.state not in ACTIVE_STEP_STATES:
        return Outcome(task)
    task = _replace_step(task, replace(step, state=StepState.CANCELLED))
    if task.state == TaskState.CANCELLING:
        return _settle_cancel(task)
    return step_failed(_replace_step(task, replace(step, state=StepState.RUNNING)), step_id)


def cancel(task: Task) -> Outcome:
    if task.state in TERMINAL_TASK_STATES:
        raise IllegalTransition(f"task is already {task.state}")
    if task.state == TaskState.CANCELLING:
        return Outcome(task)
    actions: list[Action] = []
    for step in task.steps:
        if step.state in ACTIVE_STEP_STATES:
            actions.append(CancelStep(step.id, step.node_id))
        elif step.state == StepState.PENDING:
            task = _replace_step(task, replace(step, state=StepState.CANCELLED))
    task = replace(task, state=TaskState.CANCELLING)
    settled = _settle_cancel(task)
    return Outcome(settled.task, tuple(actions))


def _settle_cancel(task: Task) -> Outcome:
    if any(s.state in ACTIVE_STEP_STATES for s in task.steps):
        return Outcome(task)
    return Outcome(replace(task, state=TaskState.CANCELLED))


def retry(task: Task) -> Outcome:
    """Resume a failed or cancelled task at the steps that did not succeed (new attempt)."""
    if task.state not in (TaskState.FAILED, TaskState.CANCELLED):
        raise IllegalTransition(f"only a failed or cancelled task can be retried, not {task.state}")
    for step in task.steps:
        if step.state in (StepState.FAILED, StepState.CANCELLED):
            task = _replace_step(
                task, replace(step, state=StepState.PENDING, attempt=step.attempt + 1)
            )
    return _advance(replace(task, state=TaskState.RUNNING))


def node_offline(task: Task, node_id: str) -> Outcome:
    """Steps of a node that stopped sending heartbeats wait for it; they are not failed."""
    for step in task.steps:
        if step.node_id == node_id and step.state in (StepState.DISPATCHED, StepState.RUNNING):
            task = _replace_step(task, replace(step, state=StepState.WAITING_FOR_NODE))
    return Outcome(task)


def node_online(task: Task, node_id: str) -> Outcome:
    """The node is back: its waiting steps run again (its journal resumes them)."""
    for step in task.steps:
        if step.node_id == node_id and step.state == StepState.WAITING_FOR_NODE:
            task = _replace_step(task, replace(step, state=StepState.RUNNING))
    return Outcome(task)
