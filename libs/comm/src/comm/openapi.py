"""The OpenAPI of what dependencies read from the request themselves: credentials, and query strings.

FastAPI documents a credential when a route declares it as a parameter (`Header(...)`, `APIKeyHeader`), and then
validates or solves that parameter on every request: measured on blog's read by slug (callgrind), a `Header`
parameter is 6 % of the request's instructions and each further level of dependencies about 5 %. The dependencies
that check the internal token (comm.tokens) and the gateway's `Authorization` read their header from the request
instead, and say what they require with `requires`; `document_security` puts that in the OpenAPI: the scheme under
`components.securitySchemes`, the requirement on each operation whose dependencies include such a dependency.
Likewise a query string read into one model in one step (comm.querystring, marked with `reads_query`):
`document_queries` lists the model's fields as the operation's query parameters.
"""

import copy
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.constants import REF_PREFIX
from fastapi.openapi.utils import validation_error_definition, validation_error_response_definition
from fastapi.routing import APIRoute
from pydantic import BaseModel

Requirement = list[dict[str, list[str]]]  # OpenAPI's `security`: any one of these; `{}` is "none needed"
F = TypeVar("F", bound=Callable[..., Any])
_REQUIREMENT = "openapi_security"
_QUERY = "openapi_query"
_VALIDATION_ERROR = {
    "description": "Validation Error",
    "content": {"application/json": {"schema": {"$ref": REF_PREFIX + "HTTPValidationError"}}},
}


def requires(requirement: Requirement) -> Callable[[F], F]:
    """Mark a dependency as needing `requirement` (`[{"Token": []}]`; `[{"Token": []}, {}]` for an optional one)."""
    return _mark(_REQUIREMENT, requirement)


def reads_query(model: type[BaseModel]) -> Callable[[F], F]:
    """Mark a dependency as reading the query string into `model` itself (comm.querystring)."""
    return _mark(_QUERY, model)


def document_security(app: FastAPI, schemes: Mapping[str, Mapping[str, Any]]) -> None:
    """Add `schemes` (name: OpenAPI security scheme) and the requirements marked by `requires` to the app's
    OpenAPI; a scheme no operation requires is left out."""

    def amend(schema: dict[str, Any], route: APIRoute) -> None:
        # the outermost marked dependency's (a required viewer over the optional one it builds on)
        requirement: Requirement | None = next(iter(_marked(route.dependant, _REQUIREMENT)), None)
        if requirement is None:
            return
        for method in route.methods or ():
            schema["paths"][route.path_format][method.lower()]["security"] = requirement
        documented = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        used = {name for alternative in requirement for name in alternative}
        documented.update({name: dict(scheme) for name, scheme in schemes.items() if name in used})

    _amend_openapi(app, amend)


def document_queries(app: FastAPI) -> None:
    """Document the fields of each model marked by `reads_query` as its operations' query parameters, as FastAPI
    documents parameters it reads itself (the models they name under `components.schemas`)."""

    def amend(schema: dict[str, Any], route: APIRoute) -> None:
        for model in _marked(route.dependant, _QUERY):
            parameters, definitions = _query_parameters(model)
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(definitions)
            for method in route.methods or ():
                operation = schema["paths"][route.path_format][method.lower()]
                operation.setdefault("parameters", []).extend(parameters)
                # A bad value is a 422, documented as FastAPI documents it for parameters it reads itself.
                if not {"422", "4XX", "default"} & operation.setdefault("responses", {}).keys():
                    operation["responses"]["422"] = copy.deepcopy(_VALIDATION_ERROR)
                    schemas.setdefault("ValidationError", validation_error_definition)
                    schemas.setdefault("HTTPValidationError", validation_error_response_definition)

    _amend_openapi(app, amend)


def _mark(name: str, value: Any) -> Callable[[F], F]:
    def mark(dependency: F) -> F:
        setattr(dependency, name, value)
        return dependency

    return mark


def _amend_openapi(app: FastAPI, amend: Callable[[dict[str, Any], APIRoute], None]) -> None:
    """Have the app's OpenAPI, once built, amended by `amend` for each of its documented routes."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for route in app.routes:
            if isinstance(route, APIRoute) and route.path_format in schema.get("paths", {}):
                amend(schema, route)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _query_parameters(model: type[BaseModel]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """OpenAPI parameter objects for the model's fields, and the schemas they refer to."""
    schema = model.model_json_schema(ref_template=REF_PREFIX + "{model}")
    required = set(schema.get("required", ()))
    parameters = []
    for name, field in schema["properties"].items():
        if field.get("default", ...) is None:
            del field["default"]  # as FastAPI leaves it out
        parameter = {"name": name, "in": "query", "required": name in required, "schema": field}
        if "description" in field:
            parameter["description"] = field["description"]
        parameters.append(parameter)
    return parameters, schema.get("$defs", {})


def _marked(dependant: Dependant, mark: str) -> list[Any]:
    """What the dependencies in `dependant`'s tree are marked with, outermost first."""
    found = getattr(dependant.call, mark, None)
    return [*(() if found is None else (found,)), *(m for d in dependant.dependencies for m in _marked(d, mark))]
