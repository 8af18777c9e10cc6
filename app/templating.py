"""The Jinja2 templates: the dashboard's pages (app.pages) and the study report
(app.report)."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates

from app.assets import assets

HERE = Path(__file__).resolve().parent
# An installed wheel carries the templates inside the package (see pyproject.toml); a source
# checkout (editable installs included) keeps them in the repository's templates/.
TEMPLATES_DIR = HERE / "templates" if (HERE / "templates").is_dir() else HERE.parent / "templates"

templates = Jinja2Templates(directory=TEMPLATES_DIR)
templates.env.autoescape = True  # every template, whatever its file name
# {{ static_url("css/app.css") }}: a versioned URL; {{ module("js/pages/runs.js") }}: a page's
# entry module with modulepreload links for its imports (app.assets).
templates.env.globals["static_url"] = assets.url
templates.env.globals["module"] = assets.module
