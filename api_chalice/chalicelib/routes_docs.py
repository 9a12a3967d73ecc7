"""The OpenAPI document of the API, served at /openapi.json."""

from __future__ import annotations

from chalice import Blueprint

from .middleware import api_view
from .openapi import document

bp = Blueprint(__name__)


@bp.route("/openapi.json", methods=["GET"])
@api_view
def openapi_json():
    return document()
