"""The HTML pages: each renders, loads nothing from other hosts, and gets Plotly from the app.

A bare FastAPI app with only the pages router: no database, no broker, no API.
"""

from __future__ import annotations

import json
import posixpath
import re
import subprocess
import sys
from html.parser import HTMLParser
from importlib import resources

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app import auth, pages
from app.api.deps import current_settings
from core.config import Settings

PAGES = [
    "/",
    "/runs/new",
    "/runs/new?copy=3",
    "/runs/7",
    "/sweeps",
    "/sweeps/new",
    "/sweeps/new?preset=report",
    "/sweeps/2",
    "/compare",
    "/compare?run_ids=1,2,3",
    "/workers",
    "/docs",
    "/redoc",
]


class _Links(HTMLParser):
    """Collects every src/href/action of a page, and the ids of its elements."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.ids: set[str] = set()
        self.scripts: list[str] = []
        self.modules: list[str] = []
        self.inline_scripts = 0
        self._in_script: str | None = None
        self.page_data: str = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href", "action"):
            if attrs.get(name):
                self.urls.append(attrs[name])
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "script":
            if attrs.get("src"):
                self.scripts.append(attrs["src"])
                if attrs.get("type") == "module":
                    self.modules.append(attrs["src"])
                self._in_script = None
            else:
                self._in_script = attrs.get("type") or "text/javascript"
                if self._in_script != "application/json":
                    self.inline_scripts += 1

    def handle_data(self, data):
        if self._in_script == "application/json":
            self.page_data += data

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = None


def parse(html: str) -> _Links:
    links = _Links()
    links.feed(html)
    return links


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI(docs_url=None, redoc_url=None)  # as app.main: /docs is ours
    app.include_router(pages.router)
    app.include_router(auth.router)  # GET /login renders the form without the database
    app.dependency_overrides[current_settings] = lambda: Settings(api_token="secret")
    return TestClient(app)


@pytest.mark.parametrize("path", PAGES)
def test_page_renders_with_nav(client, path):
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    links = parse(response.text)
    for href in ("/", "/runs/new", "/sweeps/new", "/sweeps", "/compare", "/workers", "/docs"):
        assert href in links.urls, f"nav link {href} missing on {path}"
    json.loads(links.page_data)  # the data handed to the page's scripts is valid JSON


@pytest.mark.parametrize("path", PAGES + ["/login"])
def test_page_loads_nothing_from_other_hosts(client, path):
    html = client.get(path).text
    links = parse(html)
    external = [u for u in links.urls if re.match(r"^(https?:)?//", u, re.I)]
    assert not external, f"{path} refers to other hosts: {external}"
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", html, re.I)
    assert links.inline_scripts == 0, "scripts live in app/static, not inline"


@pytest.mark.parametrize("path", PAGES + ["/login"])
def test_every_script_and_stylesheet_of_a_page_is_served(client, path):
    links = parse(client.get(path).text)
    assets = [u for u in links.urls if u.startswith("/static/")]
    assert any(re.fullmatch(r"/static/v/[0-9a-f]+/css/app\.css", u) for u in assets), assets
    for url in assets:
        response = client.get(url)
        assert response.status_code == 200, url
        if url.split("?")[0].endswith(".js"):
            assert response.headers["content-type"].startswith("text/javascript"), url
        if url.endswith(".css"):
            assert response.headers["content-type"].startswith("text/css"), url


@pytest.mark.parametrize("path", ["/runs/7", "/sweeps/2", "/compare?run_ids=1,2"])
def test_chart_pages_preload_plotly_from_the_app_for_their_modules_to_run(client, path):
    html = client.get(path).text
    links = parse(html)
    # lib/charts.js runs the file the link names (data-plotly), after the page's modules
    preload = r'<link rel="preload" as="script" href="(/static/v/[0-9a-f]+/[^"]+)" data-plotly>'
    found = re.search(preload, html)
    assert found and found.group(1).endswith("/plotly/plotly-cartesian.min.js"), html
    assert client.get(found.group(1)).status_code == 200
    assert links.modules, "the page's own code is an ES module"


@pytest.mark.parametrize("path", [p for p in PAGES if not p.startswith("/login")])
def test_page_code_is_es_modules_whose_imports_all_resolve(client, path):
    links = parse(client.get(path).text)
    assert links.modules, path
    for module in links.modules:
        for url in module_graph(client, module):
            response = client.get(url)
            assert response.status_code == 200, url
            assert response.headers["content-type"].startswith("text/javascript"), url


IMPORT = re.compile(r"""^\s*(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']""", re.M)
NAMED = re.compile(r"""^\s*import\s*\{([^}]*)\}\s*from\s*["']([^"']+)["']""", re.M)
EXPORT = re.compile(r"export\s+(?:async\s+)?(?:function|const|let|class)\s+(\w+)")


def module_graph(client, entry: str) -> list[str]:
    """Every module reachable from `entry` by static imports (URLs)."""
    seen, todo = [], [entry]
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        seen.append(url)
        text = client.get(url).text
        todo.extend(posixpath.normpath(posixpath.join(posixpath.dirname(url), rel))
                    for rel in IMPORT.findall(text))  # fmt: skip
    return seen


def test_every_named_import_is_exported_by_its_module(client):
    for path in (pages.STATIC_DIR / "js").rglob("*.js"):
        text = path.read_text()
        for names, rel in NAMED.findall(text):
            target = (path.parent / rel).resolve()
            assert target.is_file(), f"{path.name} imports missing {rel}"
            target_text = target.read_text()
            exported = set(EXPORT.findall(target_text))
            for group in re.findall(r"export\s*\{([^}]*)\}", target_text):
                exported |= {n.strip() for n in group.split(",") if n.strip()}
            for name in names.split(","):
                name = name.strip().split(" as ")[0].strip()
                assert not name or name in exported, f"{path.name}: {name} not exported by {rel}"


def test_no_module_keeps_its_own_copy_of_the_status_sets():
    for path in (pages.STATIC_DIR / "js").rglob("*.js"):
        text = path.read_text()
        assert not re.search(r"new Set\(\[\s*\"(queued|running|succeeded)", text), path.name


@pytest.mark.parametrize(
    ("path", "vendor"),
    [
        ("/docs", "swagger-ui-bundle.js"),
        ("/docs", "swagger-ui.css"),
        ("/redoc", "redoc.standalone.js"),
    ],
)
def test_api_docs_pages_load_their_files_from_the_app(client, path, vendor):
    links = parse(client.get(path).text)
    url = next(u for u in links.urls if u.startswith(f"/static/vendor/{vendor}"))
    response = client.get(url)
    assert response.status_code == 200 and len(response.content) > 100_000
    assert links.inline_scripts == 0


def test_plotly_js_is_the_installed_packages_file_with_a_js_content_type(client):
    expected = (resources.files("plotly") / "package_data" / "plotly.min.js").read_bytes()
    url = f"/static/vendor/plotly.min.js?v={pages.PLOTLY_VERSION}"  # as the pages ask for it
    response = client.get(url, headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.content == expected
    assert "immutable" in response.headers["cache-control"]


def test_the_pages_plotly_bundle_is_the_installed_packages_plotly_js_version():
    """The partial bundle (scripts/vendor_plotly.sh) and the full one that reports inline
    are the same plotly.js release: rerun the script after upgrading plotly."""
    version = re.compile(rb"plotly\.js (?:\(cartesian - minified\) )?v(\S+)")
    full = (resources.files("plotly") / "package_data" / "plotly.min.js").read_bytes()[:300]
    partial = (pages.STATIC_DIR / "plotly" / "plotly-cartesian.min.js").read_bytes()[:300]
    assert version.search(partial).group(1) == version.search(full).group(1)


def test_plotly_js_is_gzipped_for_clients_that_accept_it(client):
    expected = (resources.files("plotly") / "package_data" / "plotly.min.js").read_bytes()
    response = client.get("/static/vendor/plotly.min.js", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.content == expected  # httpx decodes it


@pytest.mark.parametrize(
    "path", ["/static/%2e%2e/pages.py", "/static/..%2fpages.py", "/static/js/nope.js", "/static/js"]
)
def test_static_route_serves_only_files_inside_app_static(client, path):
    assert client.get(path).status_code == 404


def test_new_run_page_hands_the_config_schema_to_its_script(client):
    data = json.loads(parse(client.get("/runs/new").text).page_data)
    props = data["schema"]["properties"]
    assert props["epochs"]["default"] == 200
    assert props["activation"]["enum"] == ["relu", "leaky_relu", "tanh", "sigmoid"]
    assert data["report_grid"]["lr_ratio"] == ["2:1:1", "5:3:2", "5:4:1"]


def test_every_page_hands_its_scripts_the_status_vocabulary(client):
    from app.api.health import statuses

    for path in ("/", "/runs/7", "/sweeps/2", "/compare", "/workers"):
        assert json.loads(parse(client.get(path).text).page_data)["statuses"] == statuses()


def test_pages_pass_only_ids_to_their_scripts(client):
    assert json.loads(parse(client.get("/runs/7").text).page_data)["run_id"] == 7
    assert json.loads(parse(client.get("/sweeps/2").text).page_data)["sweep_id"] == 2
    data = json.loads(parse(client.get("/compare?run_ids=3,x,1,<b>").text).page_data)
    assert data["run_ids"] == [3, 1]


@pytest.mark.parametrize("run_ids", ["²", "1,²,3", "١", "99999999999999999999999"])
def test_compare_page_skips_ids_that_are_not_plain_digits(client, run_ids):
    response = client.get("/compare", params={"run_ids": run_ids})
    assert response.status_code == 200, response.text
    ids = json.loads(parse(response.text).page_data)["run_ids"]
    assert ids == ([1, 3] if run_ids == "1,²,3" else [])


def test_non_numeric_ids_are_not_pages(client):
    assert client.get("/runs/abc").status_code == 422
    assert client.get("/sweeps/1;drop").status_code == 422


def test_login_form_escapes_what_it_echoes(client):
    evil = '/runs"><script>alert(1)</script>'
    response = client.get("/login", params={"next": evil, "error": "<img src=x onerror=alert(2)>"})
    assert response.status_code == 200
    assert "<script>alert(1)" not in response.text
    assert "<img src=x" not in response.text
    assert "&lt;img src=x onerror=alert(2)&gt;" in response.text
    links = parse(response.text)
    assert "/login" in links.urls  # the form posts to /login


def test_login_form_refuses_to_send_you_off_site(client):
    html = client.get("/login", params={"next": "//evil.example/x"}).text
    assert 'name="next" value="/"' in html


def test_templates_autoescape():
    template = pages.templates.env.from_string("{{ x }}")
    assert template.render(x="<b>") == "&lt;b&gt;"


def test_pages_module_does_not_import_torch():
    code = "import sys, app.pages; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
