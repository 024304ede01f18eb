"""``anachron server``'s HTTP side: the JSON API under ``/api/v1`` (with Kestra-compatible trigger
backfills) and, with ``anachron.ui``, the web UI. Needs the ``server`` extra (FastAPI, uvicorn)."""

from .app import create_app

__all__ = ["create_app"]
