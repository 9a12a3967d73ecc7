"""The pages the API serves besides its JSON: every `static.Site` (the interactive docs at /docs)."""

from __future__ import annotations

from chalice import Blueprint

from .middleware import api_view
from .static import SITES, mount

bp = Blueprint(__name__)

for _site in SITES:
    mount(bp, _site, api_view)
