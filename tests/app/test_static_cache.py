"""Static files are cached the way the web does it: versioned URLs served immutable, every
other request answered with an ETag and a 304 while the file is unchanged, and each page
naming its module graph as modulepreload links.

A bare FastAPI app with only the pages router, and a scratch static folder for the tests
that edit files.
"""

from __future__ import annotations

import gzip
import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app import assets as assets_module
from app import pages
from app.assets import Assets, etag_matches
from tests.app.test_pages import module_graph, parse


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI(docs_url=None, redoc_url=None)
    app.include_router(pages.router)
    return TestClient(app)


def versioned(client, page: str) -> list[str]:
    links = parse(client.get(page).text)
    return [u for u in links.urls if u.startswith("/static/v/")]


def test_pages_name_their_assets_by_a_versioned_url(client):
    urls = versioned(client, "/runs/7")
    version = assets_module.assets.tree().version
    assert any(u.endswith("/css/app.css") for u in urls)
    assert any(u.endswith("/js/pages/run.js") for u in urls)
    assert all(u.startswith(f"/static/v/{version}/") for u in urls), urls


def test_a_versioned_file_is_immutable_with_a_validator(client):
    url = next(u for u in versioned(client, "/") if u.endswith("/css/app.css"))
    response = client.get(url)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert re.fullmatch(r'"[0-9a-f]{32}"', response.headers["etag"])
    assert response.content == (pages.STATIC_DIR / "css" / "app.css").read_bytes()


def test_an_unversioned_file_is_revalidated_and_answered_304_while_unchanged(client):
    first = client.get("/static/js/lib/api.js")
    assert first.status_code == 200
    assert first.headers["cache-control"] == "no-cache"
    etag = first.headers["etag"]
    again = client.get("/static/js/lib/api.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    weak = client.get("/static/js/lib/api.js", headers={"If-None-Match": f'"x", W/{etag}'})
    assert weak.status_code == 304
    other = client.get("/static/js/lib/api.js", headers={"If-None-Match": '"other"'})
    assert other.status_code == 200 and other.content == first.content


def test_the_same_file_has_the_same_etag_with_or_without_a_version(client):
    url = next(u for u in versioned(client, "/") if u.endswith("/js/pages/runs.js"))
    plain = client.get("/static/js/pages/runs.js")
    assert client.get(url).headers["etag"] == plain.headers["etag"]
    assert client.get(url, headers={"If-None-Match": plain.headers["etag"]}).status_code == 304


def test_an_unknown_version_gets_the_current_file_but_not_as_immutable(client):
    response = client.get("/static/v/0000000000000000/js/lib/api.js")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"
    assert response.content == (pages.STATIC_DIR / "js" / "lib" / "api.js").read_bytes()


@pytest.mark.parametrize(
    "path", ["/static/v/x/%2e%2e/%2e%2e/pages.py", "/static/v/x/js/nope.js", "/static/v/x/js"]
)
def test_versioned_route_serves_only_files_inside_app_static(client, path):
    assert client.get(path).status_code == 404


def test_scripts_are_gzipped_for_clients_that_take_it(client):
    raw = (pages.STATIC_DIR / "js" / "lib" / "charts.js").read_bytes()
    response = client.get("/static/js/lib/charts.js", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.content == raw  # httpx decodes it
    plain = client.get("/static/js/lib/charts.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == raw


def test_vendor_files_are_immutable_at_their_package_version_and_304_otherwise(client):
    pinned = client.get(f"/static/vendor/plotly.min.js?v={pages.PLOTLY_VERSION}")
    assert "immutable" in pinned.headers["cache-control"]
    bare = client.get("/static/vendor/plotly.min.js")
    assert bare.headers["cache-control"] == "no-cache"
    etag = bare.headers["etag"]
    assert pinned.headers["etag"] == etag
    again = client.get("/static/vendor/plotly.min.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""


def test_a_page_preloads_every_module_its_entry_imports(client):
    html = client.get("/sweeps/2").text
    preloads = re.findall(r'<link rel="modulepreload" href="([^"]+)">', html)
    entry = parse(html).modules
    assert len(entry) == 1 and entry[0].endswith("/js/sweep/main.js")
    # the module graph as the browser would walk it, import by import
    graph = module_graph(client, entry[0])
    assert sorted(preloads) == sorted(graph[1:])
    assert all(client.get(u).status_code == 200 for u in preloads)


def test_the_version_changes_when_a_file_does_and_imports_are_followed(tmp_path):
    js = tmp_path / "js"
    (js / "lib").mkdir(parents=True)
    (js / "main.js").write_text(
        'import { a } from "./lib/a.js";\nimport {\n  b,\n} from "./lib/b.js";\n'
    )
    (js / "lib" / "a.js").write_text('export * from "./c.js";\nexport const a = 1;\n')
    (js / "lib" / "b.js").write_text('import "./a.js";\nexport const b = 2;\n')
    (js / "lib" / "c.js").write_text("export const c = 3;\n")
    store = Assets(tmp_path)
    before = store.tree()
    assert before.graph("js/main.js") == ("js/lib/a.js", "js/lib/b.js", "js/lib/c.js")
    assert store.tree() is before  # nothing changed: not hashed again
    (js / "lib" / "c.js").write_text("export const c = 4; // changed\n")
    after = store.tree()
    assert after.version != before.version
    assert after.digests["js/lib/c.js"] != before.digests["js/lib/c.js"]
    assert after.digests["js/lib/a.js"] == before.digests["js/lib/a.js"]
    assert 'href="/static/v/' + after.version + '/js/lib/c.js"' in store.module("js/main.js")


def test_gzip_of_a_file_is_packed_once_per_content():
    store = Assets()
    data = b"x" * 5000
    packed = store.gzipped(".js", "d1", data)
    assert gzip.decompress(packed) == data
    assert store.gzipped(".js", "d1", data) is packed
    assert store.gzipped(".js", "d2", b"tiny") is None  # too small to gain
    assert store.gzipped(".png", "d3", data) is None  # already packed formats


@pytest.mark.parametrize(
    ("header", "matches"),
    [(None, False), ("", False), ('"a"', True), ('W/"a"', True), ('"b", "a"', True), ("*", True),
     ('"b"', False)],
)  # fmt: skip
def test_etag_matching(header, matches):
    assert etag_matches(header, '"a"') is matches
