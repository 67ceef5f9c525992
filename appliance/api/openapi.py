"""OpenAPI 3.1 document built from the declared routes and their pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from appliance.api.framework import PROBLEM, Api, Problem, Route

REF = "#/components/schemas/{model}"


def _model_types(routes: list[Route]) -> list[Any]:
    found: list[Any] = [Problem]
    for r in routes:
        for m in (r.body, r.response):
            if m is not None and m not in found:
                found.append(m)
    return found


def _schema_name(model: Any) -> str:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model.__name__.replace("[", "_").replace("]", "").replace(", ", "_")
    return re.sub(r"\W+", "_", repr(model)).strip("_")


def build(api: Api, *, version: str, title: str = "hcc API") -> dict[str, Any]:
    models = _model_types(api.routes)
    base_models = [m for m in models if isinstance(m, type) and issubclass(m, BaseModel)]
    refs, top = models_json_schema([(m, "serialization") for m in base_models], ref_template=REF)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    names: dict[Any, dict[str, Any]] = {}
    for m in base_models:
        names[m] = refs[(m, "serialization")]
    for m in models:
        if m not in names:  # a list or union: inline schema
            schema = TypeAdapter(m).json_schema(ref_template=REF, mode="serialization")
            schemas.update(schema.pop("$defs", {}))
            names[m] = schema
    paths: dict[str, Any] = {}
    for r in api.routes:
        paths.setdefault(r.path, {})[r.method.lower()] = _operation(r, names)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(r: Route, names: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    problem = {"content": {PROBLEM: {"schema": {"$ref": REF.format(model="Problem")}}}}
    slug = re.sub(r"[^a-z0-9]+", "_", r.path.lower()).strip("_")
    op: dict[str, Any] = {
        "summary": r.summary,
        "operationId": f"{r.method.lower()}_{slug}",
        "tags": [r.tag],
        "responses": {"default": {"description": "Error", **problem}},
    }
    params = [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
        for n in re.findall(r"{(\w+)}", r.path)
    ]
    params += [
        {"name": n, "in": "query", "required": False, "schema": {"type": t}, "description": d}
        for n, t, d in r.params
    ]
    if params:
        op["parameters"] = params
    if r.role is not None:
        op["security"] = [{"bearer": []}]
        op["description"] = f"Needs role {r.role.value} or higher."
    if r.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": names[r.body]}},
        }
    ok: dict[str, Any] = {"description": "OK"}
    if r.response is not None:
        ok["content"] = {"application/json": {"schema": names[r.response]}}
    op["responses"][str(r.status)] = ok
    return op
