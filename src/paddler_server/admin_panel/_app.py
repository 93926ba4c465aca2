"""Litestar app serving the admin panel's HTML shell and static assets."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

import jinja2
from litestar import Litestar, MediaType, Response, get
from litestar.datastructures import CacheControlHeader
from litestar.handlers import HTTPRouteHandler
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from paddler_server._settings import BalancerSettings

logger = logging.getLogger("paddler.admin_panel")

_PACKAGE = resources.files("paddler_server.admin_panel")
_STATIC_DIR = Path(str(_PACKAGE / "static"))

#: The pages of the panel; every one is the same shell, the script picks the view.
PAGES: dict[str, str] = {"/": "dashboard", "/model": "model", "/prompt": "prompt"}
#: What any other path shows. Like Paddler's ``GET /{anything}``, every path answers 200 with
#: the shell (a bookmarked or mistyped link opens the panel), whose script says there is no
#: such page and links to the real ones.
NOT_FOUND_PAGE = "not-found"


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("paddler_server.admin_panel", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def render_shell(settings: BalancerSettings, page: str) -> str:
    """Render the HTML shell for ``page`` with the balancer's settings as data attributes.

    Addresses are shown as the operator typed them, so the browser resolves the names itself.
    """
    template = _environment().get_template("shell.html")
    return template.render(settings=settings, page=page)


def create_admin_panel_app(settings: BalancerSettings) -> Litestar:
    """Build the admin panel app for a balancer started with ``settings``."""
    shells = {path: render_shell(settings, page) for path, page in PAGES.items()}
    favicon = (_STATIC_DIR / "favicon.svg").read_bytes()

    def make_page_handler(path: str) -> HTTPRouteHandler:
        body = shells[path]

        @get(path, media_type=MediaType.HTML, name=f"page:{PAGES[path]}", sync_to_thread=False)
        def page() -> Response[str]:
            return Response(body, media_type=MediaType.HTML, headers=_NO_STORE)

        return page

    not_found = render_shell(settings, NOT_FOUND_PAGE)

    @get("/{path:path}", media_type=MediaType.HTML, name="page:any", sync_to_thread=False)
    def any_page() -> Response[str]:
        return Response(not_found, media_type=MediaType.HTML, headers=_NO_STORE)

    @get("/favicon.ico", sync_to_thread=False)
    def favicon_ico() -> Response[bytes]:
        return Response(favicon, media_type="image/svg+xml")

    @get("/health", media_type=MediaType.TEXT, sync_to_thread=False)
    def health() -> str:
        return "OK"

    handlers: list[ControllerRouterHandler] = [make_page_handler(path) for path in PAGES]
    handlers += [
        any_page,
        favicon_ico,
        health,
        # no-cache: revalidate (ETag) so an upgraded balancer never runs stale modules.
        create_static_files_router(
            path="/static",
            directories=[_STATIC_DIR],
            cache_control=CacheControlHeader(no_cache=True),
        ),
    ]
    logger.debug("admin panel for management %s", settings.management_addr)
    return Litestar(route_handlers=handlers)


_NO_STORE = {"Cache-Control": "no-store"}  # the shell embeds the live configuration
