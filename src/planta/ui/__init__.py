"""The web UI: server-rendered pages at ``/ui`` on the same app and port as the API.

Jinja2 templates, one stylesheet and one small script under ``/ui/static``; nothing is loaded
from anywhere else. Pages are listed in :data:`PAGES` (see :mod:`planta.ui.pages` for how to
add one); the server registers :data:`router` and mounts :data:`STATIC_DIR`.
"""

from planta.ui.pages import PAGES, Page
from planta.ui.router import STATIC_DIR, router

__all__ = ["PAGES", "STATIC_DIR", "Page", "router"]
