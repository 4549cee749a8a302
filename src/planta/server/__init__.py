"""The HTTP server: API, Open Inference Protocol, and (later) the web UI, on one port."""

from planta.server.app import create_app
from planta.server.runtime import ServeOptions

__all__ = ["ServeOptions", "create_app"]
