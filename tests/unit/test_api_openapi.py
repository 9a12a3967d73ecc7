"""/openapi.json describes every route of the app, and only those (importing the app does no I/O)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from openapi_spec_validator import OpenAPIV30SpecValidator

API_DIR = Path(__file__).resolve().parents[2] / "api_chalice"
if str(API_DIR) not in sys.path:
    sys.path.insert(0, str(API_DIR))

import app as api_app  # noqa: E402
from chalicelib import routes_fallback, static  # noqa: E402
from chalicelib.config import Settings  # noqa: E402
from chalicelib.openapi import PROXY_ERRORS, document  # noqa: E402

pytestmark = pytest.mark.unit

DOC = document(Settings())


def _app_routes() -> dict[str, set[str]]:
    # The catch-alls answer 404 and the pages are HTML: neither is part of the API's description.
    return {path: set(methods) for path, methods in api_app.app.routes.items()
            if path not in routes_fallback.PATHS and path not in static.PUBLIC_ROUTES}


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(ref: str) -> dict:
    node = DOC
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_the_document_is_valid_openapi_3_0():
    """What `openapi-spec-validator /openapi.json` says, as code generators and Swagger UI need it."""
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
              for e in OpenAPIV30SpecValidator(DOC).iter_errors()]
    assert errors == []


def test_every_route_is_documented_and_every_documented_route_exists():
    documented = {path: {m.upper() for m in item} for path, item in DOC["paths"].items()}
    assert documented == _app_routes()


def test_path_parameters_match_the_route_templates():
    for path, item in DOC["paths"].items():
        in_template = set(re.findall(r"{(\w+)}", path))
        for method, op in item.items():
            declared = {_resolve(p["$ref"])["name"] if "$ref" in p else p["name"]
                        for p in op["parameters"]
                        if (_resolve(p["$ref"]) if "$ref" in p else p)["in"] == "path"}
            assert declared == in_template, f"{method.upper()} {path}"


def test_every_reference_resolves():
    refs = set(_refs(DOC))
    assert refs, "the document uses no $ref at all"
    for ref in refs:
        assert isinstance(_resolve(ref), dict), ref


def test_every_operation_documents_success_and_errors_in_the_error_shape():
    error = {"$ref": "#/components/schemas/Error"}
    proxy_error = {"$ref": "#/components/schemas/ProxyError"}
    assert set(DOC["components"]["schemas"]["Error"]["required"]) == {"error", "message", "request_id"}
    # NGINX's own 429/502/504 carry no request id; API Gateway's do.
    assert DOC["components"]["schemas"]["ProxyError"]["required"] == ["error", "message"]
    for path, item in DOC["paths"].items():
        for method, op in item.items():
            assert "200" in op["responses"], f"{method} {path}"
            # Whatever stands in front of the API may answer these on any route.
            assert set(PROXY_ERRORS) <= set(op["responses"]), f"{method} {path}"
            assert "Retry-After" in op["responses"]["429"]["headers"], f"{method} {path}"
            for code, response in op["responses"].items():
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if code in PROXY_ERRORS:
                    assert schema == proxy_error, f"{method} {path} {code}"
                elif code.startswith(("4", "5")) and path != "/health":
                    assert schema == error, f"{method} {path} {code}"
            if path == "/health":
                assert op["security"] == []  # the one route open without a key
            else:
                assert {"401", "403"} <= set(op["responses"]), f"{method} {path}"


def test_catch_all_routes_cover_the_root_and_unknown_paths_up_to_four_segments():
    assert routes_fallback.PATHS[0] == "/" and "/" in api_app.app.routes
    for depth, path in enumerate(routes_fallback.PATHS[1:], start=1):
        assert path.count("/") == depth and path.count("{") == depth and path in api_app.app.routes


def test_every_view_reports_errors_through_the_middleware():
    for path, methods in api_app.app.routes.items():
        for method, entry in methods.items():
            assert getattr(entry.view_function, "rdc_api_view", False), f"{method} {path} is not an api_view"
