"""The web admin panel: a Litestar app serving a dependency-free browser UI.

The browser talks to the management and inference services directly; this app only
serves the HTML shell (carrying the configured addresses) and the static assets.
"""

from paddler_server.admin_panel._app import create_admin_panel_app

__all__ = ["create_admin_panel_app"]
