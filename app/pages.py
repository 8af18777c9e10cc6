"""HTML pages of the dashboard and the static files they load.

Every page is a shell: it gets only ids and static configuration (the trainer's config
schema) from here and fetches its data from the JSON API in the browser. Nothing in this
module touches the database but the header's login state under API_TOKEN (one indexed
read, app.sessions), and nothing imports torch.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import plotly
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from app.api.health import statuses
from app.assets import IMMUTABLE, REVALIDATE, assets, etag_matches
from app.schemas import TrainConfigIn
from app.security import AUTH_COOKIE
from app.sessions import login_state
from app.templating import TEMPLATES_DIR, templates  # noqa: F401 (TEMPLATES_DIR: tests)
from app.text import ascii_id
from core.config import get_settings
from trainer.config import ACTIVATIONS, AUGMENTATIONS, REPORT_GRID, REPORT_LR_RATIOS

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
PLOTLY_VERSION = plotly.__version__
DOCS_VERSION = metadata.version("fastapi-offline")

router = APIRouter(include_in_schema=False)

_STATIC_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


@lru_cache(maxsize=1)
def config_schema() -> dict[str, Any]:
    """The trainer config's JSON schema as the API checks it: fields, defaults, ranges,
    formats and help text (the forms validate against it before sending)."""
    return TrainConfigIn.model_json_schema()


# The smoke-test preset of both forms: digits, tiny model, seconds per run on a CPU.
SMOKE = {
    "dataset": "digits",
    "width": 8,
    "epochs": 3,
    "batch_size": 64,
    "train_limit": 512,
    "test_limit": 256,
}


def _static_config() -> dict[str, Any]:
    return {
        "smoke": SMOKE,
        "schema": config_schema(),
        "activations": list(ACTIVATIONS),
        "augmentations": list(AUGMENTATIONS),
        "report_lr_ratios": list(REPORT_LR_RATIOS),
        "report_grid": REPORT_GRID,
    }


def render_page(request: Request, name: str, page: str, **data: Any) -> HTMLResponse:
    # `data` goes to the page's scripts as JSON (page_data) and to the template itself; the
    # status vocabulary (GET /api/statuses) goes to every page's scripts, which would
    # otherwise ask for it before anything else.
    page_data = {**data, "statuses": statuses()}
    context = {**data, "page": page, "page_data": page_data, "plotly_version": PLOTLY_VERSION}
    # the same settings as the security middleware's, which decides what a session may do
    context["signed_in"] = login_state(request.cookies.get(AUTH_COOKIE), get_settings())
    return templates.TemplateResponse(request, name, context)


# ---------------------------------------------------------------- pages


@router.get("/", response_class=HTMLResponse)
def runs_page(request: Request) -> HTMLResponse:
    # the schema names every config field the table can show as a column
    return render_page(request, "runs.html", "runs", schema=config_schema())


@router.get("/runs/new", response_class=HTMLResponse)
def new_run_page(request: Request, copy: int | None = None) -> HTMLResponse:
    return render_page(request, "run_new.html", "new-run", copy=copy, **_static_config())


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: int) -> HTMLResponse:
    return render_page(request, "run.html", "run", run_id=run_id, schema=config_schema())


@router.get("/sweeps", response_class=HTMLResponse)
def sweeps_page(request: Request) -> HTMLResponse:
    return render_page(request, "sweeps.html", "sweeps")


@router.get("/sweeps/new", response_class=HTMLResponse)
def new_sweep_page(request: Request) -> HTMLResponse:
    return render_page(request, "sweep_new.html", "new-sweep", **_static_config())


@router.get("/sweeps/{sweep_id}", response_class=HTMLResponse)
def sweep_page(request: Request, sweep_id: int) -> HTMLResponse:
    return render_page(request, "sweep.html", "sweep", sweep_id=sweep_id, report_grid=REPORT_GRID)


@router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request, run_ids: str = "") -> HTMLResponse:
    # Parts that are not ids (in ASCII digits) are left out: the page shows the others.
    ids = [i for p in run_ids.replace(" ", "").split(",") if (i := ascii_id(p)) is not None]
    return render_page(request, "compare.html", "compare", run_ids=ids)


@router.get("/workers", response_class=HTMLResponse)
def workers_page(request: Request) -> HTMLResponse:
    return render_page(request, "workers.html", "workers")


@router.get("/docs", response_class=HTMLResponse)
def swagger_page(request: Request) -> HTMLResponse:
    """Swagger UI over /openapi.json, with its files and init script served from here."""
    return render_page(request, "docs.html", "api", docs_version=DOCS_VERSION)


@router.get("/redoc", response_class=HTMLResponse)
def redoc_page(request: Request) -> HTMLResponse:
    return render_page(request, "redoc.html", "api", docs_version=DOCS_VERSION)


# ---------------------------------------------------------------- static files


def _vendor_sources() -> dict[str, Any]:
    """Third-party files the pages need, each from the installed package that ships it:
    Plotly from plotly, Swagger UI and ReDoc from fastapi-offline. Never from a CDN: the
    Content-Security-Policy allows this origin only, and the dashboard must work offline."""
    docs = resources.files("fastapi_offline") / "static"
    return {
        "plotly.min.js": resources.files("plotly") / "package_data" / "plotly.min.js",
        "swagger-ui-bundle.js": docs / "swagger-ui-bundle.js",
        "swagger-ui.css": docs / "swagger-ui.css",
        "redoc.standalone.js": docs / "redoc.standalone.js",
    }


@lru_cache(maxsize=8)
def _vendor_file(name: str) -> tuple[bytes, bytes, str]:
    """A vendored file, raw and gzipped, and its ETag (read and packed once; they are
    megabytes)."""
    raw = _vendor_sources()[name].read_bytes()
    etag = f'"{hashlib.sha256(raw).hexdigest()[:32]}"'
    return raw, gzip.compress(raw, compresslevel=6, mtime=0), etag


def _vendor_version(name: str) -> str:
    return PLOTLY_VERSION if name == "plotly.min.js" else DOCS_VERSION


def _cached(
    request: Request, raw: bytes, packed: bytes | None, media_type: str, etag: str, cache: str
) -> Response:
    """The file, gzipped where the client takes it, or 304 when the client's copy (its
    If-None-Match) is this one."""
    headers = {"Cache-Control": cache, "ETag": etag, "Vary": "Accept-Encoding"}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    if packed is not None and "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(packed, media_type=media_type, headers=headers)
    return Response(raw, media_type=media_type, headers=headers)


@router.get("/static/vendor/{name}")
def vendor_file(name: str, request: Request, v: str | None = None) -> Response:
    """Plotly, Swagger UI, ReDoc. Asked for with ?v=<the package's version> (as the pages
    do), the file is immutable; otherwise revalidated by its ETag."""
    if name not in _vendor_sources():
        raise HTTPException(status_code=404, detail="Not found")
    raw, packed, etag = _vendor_file(name)
    cache = IMMUTABLE if v == _vendor_version(name) else REVALIDATE
    return _cached(request, raw, packed, _STATIC_TYPES[Path(name).suffix], etag, cache)


def _static_target(path: str) -> Path:
    """The file under app/static; anything that resolves outside it, or names no file the
    system could open (a NUL, a name too long), is a 404."""
    base = STATIC_DIR.resolve()
    try:
        target = (base / path).resolve()
        found = target.is_relative_to(base) and target.is_file()
    except (OSError, ValueError):  # ValueError: "embedded null byte"
        found = False
    if not found:
        raise HTTPException(status_code=404, detail="Not found")
    return target


def _static_response(request: Request, path: str, immutable: bool) -> Response:
    target = _static_target(path)
    tree = assets.tree()
    name = target.relative_to(STATIC_DIR.resolve()).as_posix()
    raw = target.read_bytes()
    # The tree was checked against the files' sizes and times just now (assets.tree()).
    digest = tree.digests.get(name) or hashlib.sha256(raw).hexdigest()
    if name not in tree.digests:
        immutable = False  # not in the tree the version was made of
    media_type = _STATIC_TYPES.get(target.suffix) or (
        mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    )
    packed = assets.gzipped(target.suffix, digest, raw)
    cache = IMMUTABLE if immutable else REVALIDATE
    return _cached(request, raw, packed, media_type, f'"{digest[:32]}"', cache)


@router.get("/static/v/{version}/{path:path}")
def versioned_static_file(version: str, path: str, request: Request) -> Response:
    """A file under app/static at the version the pages name (app.assets): immutable. An
    older version (a page loaded before the files changed) gets today's file, revalidated."""
    return _static_response(request, path, immutable=version == assets.tree().version)


@router.get("/static/{path:path}")
def static_file(path: str, request: Request) -> Response:
    """A file under app/static without a version: revalidated by its ETag (a 304 while it
    is unchanged)."""
    return _static_response(request, path, immutable=False)
