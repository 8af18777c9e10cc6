"""Fixtures of the app tests: the API in-process over a temporary home, no worker."""

from __future__ import annotations

import pytest


@pytest.fixture
def api(make_service):
    """A TestClient of the app on a fresh SQLite file (tests/conftest.py make_service)."""
    return make_service(None).client
