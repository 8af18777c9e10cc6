"""The FastAPI app: REST API under /api, HTML pages, events. It never trains anything."""

from __future__ import annotations

from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from app.api import router as api_router
from app.api.deps import validation_error_handler
from app.hub import EventHub
from app.reaper import reap_forever
from app.security import SecurityMiddleware
from core.config import get_settings
from core.db import get_engine


def create_app() -> FastAPI:
    settings = get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        settings.ensure_dirs()
        get_engine()  # the schema is `resnet-lab db upgrade`'s, run by serve and worker
        # One poller for every event stream of this process (see app.hub).
        hub = app.state.event_hub = EventHub(settings.events_poll_seconds)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(reap_forever, settings)
            tasks.start_soon(hub.run_forever)
            yield
            hub.close()
            tasks.cancel_scope.cancel()

    app = FastAPI(
        title="ResNet Lab",
        description="Run and compare ResNet18 training experiments. See docs/api.md.",
        version="0.1.0",
        lifespan=lifespan,
        # Served by app.pages with files from this app: FastAPI's own pages load them from a
        # CDN and start Swagger UI with an inline script, both refused by our CSP.
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(SecurityMiddleware)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.include_router(api_router)
    from app import auth, pages

    app.include_router(auth.router)
    app.include_router(pages.router)
    return app
