"""The OpenAPI document, written from the live contracts.

FastAPI documents the generic routes; this module adds, for each use case, a concrete
``/v1/usecases/<name>/predict`` path whose request schema lists the contract's fields by their
canonical names, with units, ranges and allowed values, so ``/docs`` shows a plant engineer
exactly what to send. The document is rebuilt when the live models change.
"""

from __future__ import annotations

import copy
from typing import Any

from planta.services.predict import Scorer
from planta_edge.contract import Field

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["kind", "status", "message"],
        "properties": {
            "kind": {"type": "string"}, "status": {"type": "integer"},
            "message": {"type": "string"}, "hint": {"type": ["string", "null"]},
            "request_id": {"type": ["string", "null"]},
            "violations": {"type": "array", "items": {
                "type": "object",
                "properties": {"record": {"type": ["integer", "null"]},
                               "field": {"type": ["string", "null"]},
                               "rule": {"type": "string"},
                               "value": {},
                               "message": {"type": "string"}}}},
        }}},
}


def field_schema(f: Field) -> dict[str, Any]:
    """JSON Schema of one contract field."""
    described = f.display + (f" [{f.unit}]" if f.unit and f.unit not in f.display else "")
    schema: dict[str, Any]
    if f.kind in ("number", "integer"):
        schema = {"type": "number" if f.kind == "number" else "integer"}
        low, high = f.lower_bound, f.upper_bound
        if f.physical_min is not None and (low is None or f.physical_min > low):
            low = f.physical_min
        if f.physical_max is not None and (high is None or f.physical_max < high):
            high = f.physical_max
        if low is not None:
            schema["minimum"] = low
        if high is not None:
            schema["maximum"] = high
        if f.unit:
            schema["x-unit"] = f.unit
    elif f.kind == "boolean":
        schema = {"type": "boolean"}
    elif f.kind == "datetime":
        schema = {"type": "string", "format": "date-time"}
    elif f.kind == "category" and f.categories:
        schema = {"type": "string", "enum": list(f.categories)}
    else:
        schema = {"type": "string", "minLength": 1}
    schema["description"] = described
    if f.nullable:
        schema = {"anyOf": [schema, {"type": "null"}], "description": described}
    return schema


def record_schema(scorer: Scorer) -> dict[str, Any]:
    fields = scorer.contract.inputs
    return {"type": "object", "additionalProperties": False,
            "required": [f.name for f in fields if not f.nullable],
            "properties": {f.name: field_schema(f) for f in fields}}


def answer_schema(scorer: Scorer) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "object",
                            "required": ["prediction_id", "prediction", "model_version"],
                            "properties": {"prediction_id": {"type": "string"},
                                           "model_version": {"type": "integer"},
                                           "prediction": {}, "flagged": {"type": "boolean"},
                                           "reasons": {"type": "array"}}}
    if scorer.task.value == "binary":
        item["properties"]["probability"] = {"type": "number", "minimum": 0, "maximum": 1}
    elif scorer.task.value == "multiclass":
        item["properties"]["probability"] = {"type": "object"}
    else:
        item["properties"]["score"] = {"type": "number"}
    return {"type": "object", "required": ["usecase", "model_version", "predictions"],
            "properties": {"usecase": {"type": "string"}, "model_version": {"type": "integer"},
                           "route": {"type": "string"},
                           "predictions": {"type": "array", "items": item}}}


def with_usecases(base: dict[str, Any], scorers: dict[str, Scorer], max_records: int
                  ) -> dict[str, Any]:
    """``base`` (FastAPI's document) plus one concrete predict path per use case."""
    doc = copy.deepcopy(base)
    paths: dict[str, Any] = doc.setdefault("paths", {})
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    generic = paths.pop("/v1/usecases/{name}/predict", None)
    for name, scorer in sorted(scorers.items()):
        rec_name = f"{_camel(name)}Record"
        schemas[rec_name] = record_schema(scorer)
        schemas[f"{_camel(name)}Answer"] = answer_schema(scorer)
        errors = {str(code): {"description": text, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Error"}}}}
            for code, text in ((400, "Malformed JSON or parameter"),
                               (401, "Token missing or invalid"),
                               (403, "Role too low, or cross-site request"),
                               (404, "No such use case or version"),
                               (413, "Body or batch over the limit"),
                               (415, "Not application/json"),
                               (422, "A record breaks the contract (field, record, rule named)"),
                               (503, "No model in production, or the log cannot be written"))}
        paths[f"/v1/usecases/{name}/predict"] = {"post": {
            "tags": ["predictions"],
            "summary": f"Predict {scorer.output.get('prediction', 'the target')} for "
                       f"'{name}' (model version {scorer.version})",
            "operationId": f"predict_{name}",
            "parameters": [
                {"name": "explain", "in": "query", "required": False,
                 "schema": {"type": "boolean"},
                 "description": "Add the top reasons for each prediction"},
                {"name": "version", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1},
                 "description": "Ask a specific model version instead of production"}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["records"], "additionalProperties": False,
                "properties": {"records": {
                    "type": "array", "minItems": 1, "maxItems": max_records,
                    "items": {"$ref": f"#/components/schemas/{rec_name}"}}}}}}},
            "responses": {"200": {"description": "One answer per record, in order",
                                  "content": {"application/json": {"schema": {
                                      "$ref": f"#/components/schemas/{_camel(name)}Answer"}}}},
                          **errors},
        }}
    if not scorers and generic is not None:
        paths["/v1/usecases/{name}/predict"] = generic
    _document_generic_routes(doc)
    return doc


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_ANY_OBJECT: dict[str, Any] = {"type": "object"}
JOB_OPTIONS: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {
    "version": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string"}]},
    "range_policy": {"type": "string", "enum": ["reject", "flag", "clip"]},
    "extra_policy": {"type": "string", "enum": ["ignore", "reject"]},
    "explain": {"type": "boolean"},
    "format": {"type": "string", "enum": ["parquet", "csv", "xlsx"]}}}
V2_TENSOR: dict[str, Any] = {"type": "object", "required": ["name", "datatype", "shape"],
                             "properties": {"name": {"type": "string"},
                                            "datatype": {"type": "string"},
                                            "shape": {"type": "array",
                                                      "items": {"type": "integer"}},
                                            "data": {"type": "array"},
                                            "parameters": _ANY_OBJECT}}
_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("/v1/usecases/{name}/feedback", "post"): _json_body({
        "type": "object", "required": ["feedback"], "properties": {"feedback": {
            "type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["value"], "properties": {
                    "prediction_id": {"type": "string"}, "entity": {"type": "string"},
                    "event_time": {"type": "string", "format": "date-time"},
                    "value": {}}}}}}),
    ("/v1/usecases/{name}/jobs", "post"): {"required": True, "content": {
        "application/json": {"schema": {
            "type": "object", "required": ["records"],
            "properties": {"records": {"type": "array", "items": _ANY_OBJECT},
                           "options": JOB_OPTIONS}}},
        "text/csv": {"schema": {"type": "string", "format": "binary"}},
        "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary"},
                           **JOB_OPTIONS["properties"]}}}}},
    ("/v1/usecases/{name}/rollback", "post"): _json_body({
        "type": "object", "required": ["reason"], "properties": {"reason": {"type": "string"}}}),
    ("/v1/usecases/{name}/versions/{version}/{action}", "post"): _json_body({
        "type": "object", "required": ["reason"],
        "properties": {"reason": {"type": "string"}, "exception": {"type": "boolean"},
                       "share": {"type": "number", "exclusiveMinimum": 0,
                                 "exclusiveMaximum": 1}}}),
    ("/v1/usecases/{name}/bundles", "post"): {"required": True, "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
}
for _path in ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"):
    _BODIES[(_path, "post")] = _json_body({
        "type": "object", "required": ["inputs"],
        "properties": {"id": {"type": "string"}, "parameters": _ANY_OBJECT,
                       "inputs": {"type": "array", "minItems": 1, "items": V2_TENSOR},
                       "outputs": {"type": "array", "items": {
                           "type": "object", "required": ["name"],
                           "properties": {"name": {"type": "string"}}}}}})
_QUERIES: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("/v1/usecases/{name}/predictions", "get"): [
        _query("since", {"type": "string"}, "From this time: 30m, 24h, 7d (ago) or ISO 8601"),
        _query("until", {"type": "string"}, "Before this time, as since"),
        _query("version", {"type": "integer", "minimum": 1}, "Only this model version"),
        _query("entity", {"type": "string"}, "Only this entity (machine, part)"),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 10_000},
               "At most this many (100 by default)")],
    ("/v1/jobs", "get"): [
        _query("usecase", {"type": "string"}, "Only this use case's jobs"),
        _query("status", {"type": "string", "enum": ["queued", "running", "done", "failed",
                                                     "cancelled"]}, "Only jobs in this status")],
    ("/v1/usecases/{name}/jobs", "post"): [
        _query("filename", {"type": "string"}, "The uploaded file's name (a label; its suffix "
               "says the format), for a raw file body")],
}
V2_NOT_READY: dict[str, Any] = {"type": "object", "required": ["name", "ready"],
                                "properties": {"name": {"type": "string"},
                                               "ready": {"type": "boolean"}}}
V2_ERROR: dict[str, Any] = {"type": "object", "required": ["error"],
                            "properties": {"error": {"type": "string"}}}


def _document_generic_routes(doc: dict[str, Any]) -> None:
    """Request bodies and query parameters of the routes that read the raw request (FastAPI
    cannot see them), and the error shapes: planta's ``Error`` under ``/v1``, the Open
    Inference Protocol's ``{"error": "..."}`` under ``/v2``."""
    schemas = doc["components"]["schemas"]
    schemas["V2Error"] = V2_ERROR
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            if (path, method) in _BODIES:
                op["requestBody"] = _BODIES[(path, method)]
            if (path, method) in _QUERIES:
                op["parameters"] = [*op.get("parameters", []), *_QUERIES[(path, method)]]
            ref: dict[str, Any] = {"$ref": "#/components/schemas/" + (
                "V2Error" if path.startswith("/v2") else "Error")}
            if path.startswith("/v2/models/") and path.endswith("/ready"):
                ref = {"anyOf": [ref, V2_NOT_READY]}  # 400 {"name", "ready": false}
            error = {"description": "Refused: the message says why",
                     "content": {"application/json": {"schema": ref}}}
            responses = op["responses"]
            if "HTTPValidationError" in str(responses.get("422")):
                responses["422"] = error  # planta answers a bad parameter with its own shape
            responses.setdefault("4XX", error)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_"))


__all__ = ["field_schema", "record_schema", "with_usecases"]
