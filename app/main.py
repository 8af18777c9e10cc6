"""The FastAPI app: REST API under /api, HTML pages, events. It never trains anything."""

from __future__ import annotations

import gc
import math
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.api import router as api_router
from app.api.deps import validation_error_handler
from app.api.errors import database_error_handler, server_error_handler
from app.hub import EventHub
from app.reaper import reap_forever
from app.security import SecurityMiddleware
from core.config import get_settings
from core.db import get_engine


def _sqlite_wait(dbapi_connection, _record) -> None:
    # Runs after core.db's own pragmas (listeners run in order), replacing its 30 s.
    ms = math.ceil(get_settings().api_db_timeout * 1000)
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={ms}")
    cursor.close()


def _postgres_wait(_dialect, _record, _cargs, cparams) -> None:
    seconds = get_settings().api_db_timeout
    cparams.setdefault("connect_timeout", max(math.ceil(seconds), 2))  # libpq advises 2 s at least
    lock = f"-c lock_timeout={math.ceil(seconds * 1000)}"
    cparams["options"] = f"{cparams.get('options', '')} {lock}".strip()


def limit_database_waits(engine: Engine) -> None:
    """This process answers requests: a locked database or an unreachable server fails a
    request after API_DB_TIMEOUT, answered 503 (app.api.errors), where workers wait 30 s on
    SQLite's lock and as long as it takes on PostgreSQL's."""
    listener = {"sqlite": ("connect", _sqlite_wait), "postgresql": ("do_connect", _postgres_wait)}
    name, hook = listener.get(engine.dialect.name, (None, None))
    if hook is None or event.contains(engine, name, hook):
        return
    event.listen(engine, name, hook)
    engine.dispose()  # connections opened before would keep the longer wait


def create_app() -> FastAPI:
    settings = get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        settings.ensure_dirs()
        # The schema is `resnet-lab db upgrade`'s, run by serve and worker.
        limit_database_waits(get_engine())
        # One poller for every event stream of this process (see app.hub).
        hub = app.state.event_hub = EventHub(settings.events_poll_seconds)
        # What starting up made (modules, routes, schemas: ~170,000 objects) lives as long as
        # the app: kept out of the collector's full passes, which would otherwise walk it all
        # (~0.1 s) every few large responses.
        gc.freeze()
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(reap_forever, settings)
                tasks.start_soon(hub.run_forever)
                yield
                hub.close()
                tasks.cancel_scope.cancel()
        finally:
            gc.unfreeze()  # a process that starts apps one after another (tests) frees them

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
    app.add_exception_handler(DBAPIError, database_error_handler)
    app.add_exception_handler(PoolTimeout, database_error_handler)
    app.add_exception_handler(Exception, server_error_handler)
    app.include_router(api_router)
    from app import auth, pages

    app.include_router(auth.router)
    app.include_router(pages.router)
    return app
