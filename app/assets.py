"""The pages' own static files (app/static): versioned URLs, validators and module graphs.

Pages refer to `/static/v/<version>/<path>`, where the version is a hash of every file under
app/static. Such a URL always means the same bytes, so it is served `immutable` and a browser
never asks for it again; a changed file makes a new version and so new URLs for every file.
ES modules import each other by relative paths, which stay inside the same versioned tree.
Requests without a version (`/static/<path>`) get an ETag and `no-cache`: a revalidation that
is answered 304 while the file is unchanged.

The tree is hashed once, and again only when a file's size or modification time changes
(a stat of each file per call), so an edited script is picked up by the next page load.
Each page also names every module its entry imports, directly or not, as
`<link rel="modulepreload">`: the browser fetches the whole graph at once instead of one
import level after another.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import posixpath
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from markupsafe import Markup

STATIC_DIR = Path(__file__).resolve().parent / "static"
PREFIX = "/static/v"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# Files worth compressing: text, above a packet or so.
_COMPRESSIBLE = {".js", ".css", ".svg", ".json", ".map"}
_MIN_GZIP = 1024

# `import ... from "x"`, `export ... from "x"` and `import "x"` at the start of a line.
_IMPORT = re.compile(
    r"""^\s*(?:(?:import|export)\s[^'";]*?\sfrom\s*|import\s*)["']([^"']+)["']""", re.M
)


@dataclass
class Tree:
    version: str
    digests: dict[str, str]  # path under app/static ("js/lib/api.js") -> sha256 hex
    imports: dict[str, tuple[str, ...]]  # module path -> the paths it imports directly
    _graphs: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def graph(self, entry: str) -> tuple[str, ...]:
        """Every module `entry` imports, directly or not, in first-seen order (not itself)."""
        if entry not in self._graphs:
            seen: list[str] = []
            todo = list(self.imports.get(entry, ()))
            while todo:
                path = todo.pop(0)
                if path == entry or path in seen:
                    continue
                seen.append(path)
                todo.extend(self.imports.get(path, ()))
            self._graphs[entry] = tuple(seen)
        return self._graphs[entry]


def _walk(base: Path) -> list[tuple[str, int, int]]:
    out = []
    for folder, dirs, files in os.walk(base):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(folder, name)
            st = os.stat(full)
            out.append(
                (os.path.relpath(full, base).replace(os.sep, "/"), st.st_mtime_ns, st.st_size)
            )
    return out


def _imports(path: str, text: str) -> tuple[str, ...]:
    here = posixpath.dirname(path)
    found = []
    for spec in _IMPORT.findall(text):
        if spec.startswith("."):
            found.append(posixpath.normpath(posixpath.join(here, spec)))
    return tuple(found)


def _build(base: Path, signature: list[tuple[str, int, int]]) -> Tree:
    digests: dict[str, str] = {}
    imports: dict[str, tuple[str, ...]] = {}
    whole = hashlib.sha256()
    for path, _, _ in signature:
        data = (base / path).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        digests[path] = digest
        whole.update(f"{path}\0{digest}\n".encode())
        if path.endswith(".js"):
            imports[path] = _imports(path, data.decode("utf-8", "replace"))
    return Tree(whole.hexdigest()[:16], digests, imports)


class Assets:
    """The tree of one static folder, rebuilt when a file in it changes."""

    def __init__(self, base: Path = STATIC_DIR):
        self.base = base
        self._lock = threading.Lock()
        self._signature: list[tuple[str, int, int]] | None = None
        self._tree: Tree | None = None
        self._gzipped: dict[str, bytes] = {}

    def tree(self) -> Tree:
        signature = _walk(self.base)
        with self._lock:
            if self._tree is None or signature != self._signature:
                self._tree = _build(self.base, signature)
                self._signature = signature
            return self._tree

    def url(self, path: str) -> str:
        """The versioned URL of a file under app/static ("css/app.css")."""
        return f"{PREFIX}/{self.tree().version}/{path}"

    def module(self, entry: str) -> Markup:
        """A page's entry module as a script tag, after a modulepreload link for every
        module it imports (a classic script before it, Plotly, still runs first)."""
        tree = self.tree()
        prefix = f"{PREFIX}/{tree.version}/"
        links = [
            Markup('<link rel="modulepreload" href="{}">').format(prefix + path)
            for path in tree.graph(entry)
        ]
        script = Markup('<script type="module" src="{}"></script>').format(prefix + entry)
        return Markup("\n").join([*links, script])

    def gzipped(self, suffix: str, digest: str, data: bytes) -> bytes | None:
        """`data` (whose sha256 is `digest`) gzipped, packed once per content; None where
        that gains nothing."""
        if suffix not in _COMPRESSIBLE or len(data) < _MIN_GZIP:
            return None
        with self._lock:
            packed = self._gzipped.get(digest)
        if packed is None:
            packed = gzip.compress(data, compresslevel=6, mtime=0)
            with self._lock:
                if len(self._gzipped) > 256:  # old versions of edited files
                    self._gzipped.clear()
                self._gzipped[digest] = packed
        return packed


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names this (strong) ETag; weak forms compare too."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return etag in tags


assets = Assets()
