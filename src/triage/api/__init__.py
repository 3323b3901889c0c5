"""The HTTP layer: create_app(config) and one module per endpoint family."""

from triage.api.app import create_app

__all__ = ["create_app"]
