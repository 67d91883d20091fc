"""ASGI entry point for an external server: ``uvicorn service.main:app``.

Settings come from ``SANITAS_*`` variables. ``sanitas serve`` does the same in-process.
Importing this module must never load torch, Opacus, sdmetrics or scikit-learn: the
API hands all ML work to child processes (tests/unit/test_layering.py checks it).
"""

from service.app import create_app

app = create_app()
