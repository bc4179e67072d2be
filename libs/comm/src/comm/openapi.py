"""Security schemes in an app's OpenAPI for credentials its dependencies read from the request themselves.

FastAPI documents a credential when a route declares it as a parameter (`Header(...)`, `APIKeyHeader`), and then
validates or solves that parameter on every request: measured on blog's read by slug (callgrind), a `Header`
parameter is 6 % of the request's instructions and each further level of dependencies about 5 %. The dependencies
that check the internal token (comm.tokens) and the gateway's `Authorization` read their header from the request
instead, and say what they require with `requires`; `document_security` puts that in the OpenAPI: the scheme under
`components.securitySchemes`, the requirement on each operation whose dependencies include such a dependency.
"""

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

Requirement = list[dict[str, list[str]]]  # OpenAPI's `security`: any one of these; `{}` is "none needed"
F = TypeVar("F", bound=Callable[..., Any])
_REQUIREMENT = "openapi_security"


def requires(requirement: Requirement) -> Callable[[F], F]:
    """Mark a dependency as needing `requirement` (`[{"Token": []}]`; `[{"Token": []}, {}]` for an optional one)."""

    def mark(dependency: F) -> F:
        setattr(dependency, _REQUIREMENT, requirement)
        return dependency

    return mark


def document_security(app: FastAPI, schemes: Mapping[str, Mapping[str, Any]]) -> None:
    """Add `schemes` (name: OpenAPI security scheme) and the requirements marked by `requires` to the app's
    OpenAPI; a scheme no operation requires is left out."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        paths = schema.get("paths", {})
        used: set[str] = set()
        for route in app.routes:
            if not isinstance(route, APIRoute) or route.path_format not in paths:
                continue
            requirement = _requirement(route.dependant)
            if requirement is None:
                continue
            for method in route.methods or ():
                paths[route.path_format][method.lower()]["security"] = requirement
            used.update(name for alternative in requirement for name in alternative)
        documented = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        documented.update({name: dict(scheme) for name, scheme in schemes.items() if name in used})
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _requirement(dependant: Dependant) -> Requirement | None:
    """The requirement of the outermost marked dependency (a required viewer over the optional one it builds on)."""
    found: Requirement | None = getattr(dependant.call, _REQUIREMENT, None)
    if found is not None:
        return found
    return next((r for d in dependant.dependencies if (r := _requirement(d)) is not None), None)
