"""JSON Schema of every message (``hcc schema``), the base of the AsyncAPI document."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema
from pydantic_core import core_schema

from protocol.messages import COMMAND_TYPES, EVENT_TYPES, type_name

COMPONENTS_REF = "#/components/schemas/{model}"
"""Where shared schemas live in an AsyncAPI (or OpenAPI) document."""

ENVELOPE_DESCRIPTIONS = {
    "v": "Envelope version (1). A message of another version is dead-lettered, not parsed.",
    "id": "Unique id of this message; also its AMQP message_id property.",
    "type": "What the message is (the AMQP type property carries it too).",
    "task_id": "The task the step belongs to; null outside a task (heartbeats).",
    "step_id": "The step this command or event is about; null outside a step.",
    "attempt": "Attempt of the step, from 0. Commands are idempotent by (step_id, attempt).",
    "node_id": "The node the command is for, or that sent the event. DNS-label-like: "
    "it is also part of queue names, routing keys and broker user names.",
    "ts": "When the message was made (RFC 3339, UTC).",
}
"""Descriptions of the envelope fields (protocol/messages.py Envelope), added where the
models themselves carry none."""


def message_schemas() -> dict[str, dict[str, Any]]:
    """``{type: JSON Schema}`` for every command and event."""
    return {
        type_name(model): model.model_json_schema(mode="serialization")
        for model in (*COMMAND_TYPES, *EVENT_TYPES)
    }


class _AsWritten(GenerateJsonSchema):
    """Serialization schemas with every field required.

    :func:`protocol.messages.dump` writes every field (defaults and nulls included), so a
    reader may rely on each being there; pydantic's default leaves fields with a default
    out of ``required``.
    """

    def field_is_required(
        self,
        field: core_schema.ModelField | core_schema.DataclassField | core_schema.TypedDictField,
        total: bool,
    ) -> bool:
        if self.mode == "serialization":
            return field.get("serialization_exclude_if") is None
        return super().field_is_required(field, total)


def component_schemas(
    models: Iterable[type[BaseModel]],
    mode: JsonSchemaMode,
    *,
    every_field_required: bool = False,
    ref_template: str = COMPONENTS_REF,
) -> tuple[dict[type[BaseModel], dict[str, Any]], dict[str, dict[str, Any]]]:
    """The schemas of ``models`` as shared components: ``({model: {"$ref": ...}}, {name:
    schema})``. Nested models are components too, referenced through ``ref_template``
    instead of ``$defs``, so the schemas hold no 2020-12-only keyword.

    ``every_field_required`` (serialization mode only): see :class:`_AsWritten`.
    """
    models = list(models)
    generator = _AsWritten if every_field_required else GenerateJsonSchema
    refs, top = models_json_schema(
        [(m, mode) for m in models], ref_template=ref_template, schema_generator=generator
    )
    defs: dict[str, dict[str, Any]] = dict(top.get("$defs", {}))
    return {m: refs[(m, mode)] for m in models}, defs


def describe_envelope(schema: dict[str, Any]) -> None:
    """Add :data:`ENVELOPE_DESCRIPTIONS` to an envelope's schema (in place)."""
    for name, prop in schema.get("properties", {}).items():
        # beside a $ref (body) draft-07 ignores every other keyword: nothing to add there
        if name in ENVELOPE_DESCRIPTIONS and not {"description", "$ref"} & prop.keys():
            prop["description"] = ENVELOPE_DESCRIPTIONS[name]
