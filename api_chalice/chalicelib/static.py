"""Pages served by the API itself from files under chalicelib/web/ (vendored with their licences).

A `Site` is one HTML page and the folder of its assets. The API serves them, not NGINX, so a page
works the same behind API Gateway (where the stage adds a path prefix) and behind NGINX locally:
the page refers to its assets with relative URLs carrying a content hash, so an asset can be cached
for a year and a new release is fetched at once. Every page answer carries the pages' own strict
Content-Security-Policy (scripts, styles and requests from this origin only, no inline script, no
eval); the JSON routes keep theirs (`default-src 'none'`, added by NGINX).

To add a page: put its files in chalicelib/web/<name>/ and a `Site` in SITES; routes_pages mounts
every site, and auth serves them without an API key (a browser cannot send one for a page load).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chalice import Blueprint, Response

from . import context
from .errors import NotFound

WEB = Path(__file__).resolve().parent / "web"
# data: images: Swagger UI's stylesheet draws its icons as inline SVG data URIs (CSS, not script).
PAGE_CSP = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff",
                "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
}
# A versioned asset URL names its content: it can be kept for a year.
IMMUTABLE = "public, max-age=31536000, immutable"
# A page, or an asset asked for without (or with an old) version: revalidate with the ETag each time.
REVALIDATE = "no-cache"
_ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_PLACEHOLDER = re.compile(r"\{\{\s*asset:([A-Za-z0-9._-]+)\s*\}\}")


@dataclass(frozen=True)
class Site:
    """One page at `page` (a route such as /docs), its assets at `assets`/<name> from `directory`.

    In the page's HTML, `{{asset:NAME}}` becomes the relative, versioned URL of that asset.
    """

    page: str
    assets: str
    directory: Path
    index: str = "index.html"

    @property
    def asset_route(self) -> str:
        return f"{self.assets.rstrip('/')}/{{name}}"


SITES: tuple[Site, ...] = (
    Site(page="/docs", assets="/docs", directory=WEB / "docs"),
    # The web console at the root, its files under /console/.
    Site(page="/", assets="/console", directory=WEB / "console"),
)
# Route templates served without an API key.
PUBLIC_ROUTES = frozenset(r for s in SITES for r in (s.page, s.asset_route))


@dataclass(frozen=True)
class _File:
    body: bytes | str
    content_type: str
    etag: str
    version: str


class _Files:
    """Files read once per process (a Lambda container, a `chalice local`), with their hashes."""

    def __init__(self) -> None:
        self._cache: dict[Path, _File] = {}

    def get(self, path: Path) -> _File | None:
        if path not in self._cache:
            content_type = CONTENT_TYPES.get(path.suffix)
            if content_type is None or not path.is_file():
                return None
            raw = path.read_bytes()
            digest = hashlib.sha256(raw).hexdigest()
            # Text goes out as str: API Gateway then passes it through without base64.
            body: bytes | str = raw.decode("utf-8") if content_type.startswith("text/") else raw
            self._cache[path] = _File(body, content_type, f'"{digest[:32]}"', digest[:12])
        return self._cache[path]


_files = _Files()


def _asset(site: Site, name: str) -> _File | None:
    if not _ASSET_NAME.match(name) or name == site.index:
        return None
    path = site.directory / name
    # The name pattern has no '/', so this cannot leave the directory; checked all the same.
    if path.resolve().parent != site.directory.resolve():
        return None
    return _files.get(path)


def render_page(site: Site) -> _File:
    """The page's HTML with each {{asset:NAME}} replaced by its relative, versioned URL."""
    page = _files.get(site.directory / site.index)
    if page is None:
        raise FileNotFoundError(f"{site.directory / site.index} is missing from the package")
    prefix = posixpath.relpath(site.assets.rstrip("/") or "/", posixpath.dirname(site.page) or "/")

    def url(m: re.Match) -> str:
        asset = _asset(site, m.group(1))
        if asset is None:
            raise FileNotFoundError(f"{site.index} refers to {m.group(1)}, which {site.directory} does not hold")
        return f"{prefix}/{m.group(1)}?v={asset.version}"

    html = _PLACEHOLDER.sub(url, str(page.body))
    digest = hashlib.sha256(html.encode()).hexdigest()
    return _File(html, page.content_type, f'"{digest[:32]}"', digest[:12])


def _answer(file: _File, cache_control: str) -> Response:
    headers = {**PAGE_HEADERS, "Content-Type": file.content_type, "Cache-Control": cache_control,
               "ETag": file.etag}
    request = context.current_request()
    if_none_match = (request.headers or {}).get("if-none-match", "")
    if file.etag in (tag.strip() for tag in if_none_match.split(",")):
        return Response(body="", status_code=304, headers=headers)
    return Response(body=file.body, status_code=200, headers=headers)


def mount(bp: Blueprint, site: Site, wrap: Callable[[Callable], Callable]) -> None:
    """Register the page and asset routes of `site` on `bp`; `wrap` is the API's view wrapper."""
    page_cache: list[_File] = []

    def page_view():
        if site.page.endswith("/"):
            # API Gateway serves the stage root both as /<stage> and /<stage>/; only the second makes
            # the page's relative asset URLs land under the stage.
            path = (context.current_request().context or {}).get("path") or "/"
            if not path.endswith("/"):
                return Response(body="", status_code=308,
                                headers={**PAGE_HEADERS, "Location": path.rsplit("/", 1)[-1] + "/"})
        if not page_cache:
            page_cache.append(render_page(site))
        return _answer(page_cache[0], REVALIDATE)

    def asset_view(name):
        asset = _asset(site, name)
        if asset is None:
            raise NotFound(f"{site.assets}/{name[:100]} is not a file of this page; open {site.page}")
        version = ((context.current_request().query_params or {}).get("v") or "")
        return _answer(asset, IMMUTABLE if version == asset.version else REVALIDATE)

    slug = site.page.strip("/").replace("/", "_") or "root"
    page_view.__name__ = f"page_{slug}"
    asset_view.__name__ = f"page_{slug}_asset"
    bp.route(site.page, methods=["GET"])(wrap(page_view))
    bp.route(site.asset_route, methods=["GET"])(wrap(asset_view))
