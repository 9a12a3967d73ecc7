"""Answers 404, in the API's error shape, for paths no route serves.

API Gateway and `chalice local` answer an unknown path themselves (403 "Missing Authentication
Token") unless some route matches it; these catch-all routes, the root and up to four segments
deep, match what nothing else does (literal segments always win over {parameters}). Deeper
unknown paths still get the gateway's 403; in AWS a gateway response can map that to 404. GET / is
the web console (static.SITES), so the root catches only the other methods.
"""

from __future__ import annotations

from chalice import Blueprint

from . import context
from .errors import NotFound
from .middleware import api_view

bp = Blueprint(__name__)

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
PATHS = ("/", "/{p1}", "/{p1}/{p2}", "/{p1}/{p2}/{p3}", "/{p1}/{p2}/{p3}/{p4}")


def _not_found(**_segments):
    path = (context.current_request().context or {}).get("path") or "this path"
    raise NotFound(f"no route serves {path[:100]}; the routes are listed in /openapi.json")


for _depth, _path in enumerate(PATHS):
    _view = api_view(_not_found)
    _view.__name__ = f"not_found_{_depth}"
    # GET / is the web console (static.SITES); every other method there is still a 404.
    bp.route(_path, methods=[m for m in METHODS if m != "GET"] if _path == "/" else METHODS)(_view)
