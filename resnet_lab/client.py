"""`Lab`: the REST API of a ResNet Lab server, from a notebook or a script.

Speaks only HTTP (no torch, no server code): reads retry on connection errors with backoff,
errors become the exceptions of resnet_lab.errors with the API's own message.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

from resnet_lab.errors import LabError, ServerUnreachable, Unavailable, WaitTimeout, from_response
from resnet_lab.models import Epoch, Run, Sweep
from resnet_lab.tables import Table

DEFAULT_URL = "http://127.0.0.1:8000"
PAGE = 500  # GET /api/runs: limit <= 500
MAX_METRIC_IDS = 500  # GET /api/metrics: at most 500 run ids per call
READ_RETRIES = 3
STREAM_TRIES = 3  # event streams that break before wait() polls instead
MAX_MISSES = 10  # failed reads in a row before wait() gives up on the server

RunRef = int | Run
Target = RunRef | Sweep | Iterable[RunRef | Sweep]


def _id(ref: RunRef | Sweep) -> int:
    return ref.id if isinstance(ref, (Run, Sweep)) else int(ref)


class Lab:
    """A client of one server.

    >>> lab = Lab("http://127.0.0.1:8000", token=None)   # or RESNET_LAB_URL / API_TOKEN
    >>> sweep = lab.submit_grid({"activation": ["relu", "tanh"]}, seeds=[0, 1])
    >>> lab.wait(sweep)
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = READ_RETRIES,
        transport: httpx.BaseTransport | None = None,
    ):
        self.url = (url or os.environ.get("RESNET_LAB_URL") or DEFAULT_URL).rstrip("/")
        token = token if token is not None else os.environ.get("API_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.retries = retries
        self._statuses: dict[str, list[str]] | None = None
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            transport=transport,
        )

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call. GETs are retried on connection errors with backoff; writes are not
        (a submission whose answer was lost may have been stored)."""
        attempts = 1 + (self.retries if method == "GET" else 0)
        for attempt in range(attempts):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt + 1 < attempts:
                    time.sleep(0.5 * 2**attempt)
                    continue
                raise ServerUnreachable(self.url, _reason(exc)) from None
            if response.is_error:
                raise from_response(response)
            return response
        raise AssertionError("unreachable")

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    # -- reading ----------------------------------------------------------------------------

    def statuses(self) -> dict[str, list[str]]:
        """The status vocabulary: all, active, final, changing, retryable (cached)."""
        if self._statuses is None:
            self._statuses = self._json("GET", "/api/statuses")
        return self._statuses

    def config_schema(self) -> dict[str, Any]:
        """The trainer config's JSON schema: every field, its default, range and help."""
        return self._json("GET", "/api/config-schema")

    def run(self, run: RunRef) -> Run:
        """One run, fresh from the server."""
        return Run.from_json(self._json("GET", f"/api/runs/{_id(run)}"))

    def runs(
        self,
        status: str | Iterable[str] | None = None,
        sweep: int | Sweep | None = None,
        q: str | None = None,
        tag: str | None = None,
        *,
        sort: str = "id",
        limit: int | None = None,
        **filters: Any,
    ) -> Table[Run]:
        """Runs matching every filter (all pages), oldest first by default. `status` may be
        a list; `q` matches ids, names, notes, tags or `field=value`; `filters` are the other
        query parameters of GET /api/runs (dataset, activation, seed, worker...)."""
        params: dict[str, Any] = {k: v for k, v in filters.items() if v is not None}
        if status is not None:
            params["status"] = [status] if isinstance(status, str) else list(status)
        if sweep is not None:
            params["sweep_id"] = _id(sweep)
        if q:
            params["q"] = q
        if tag:
            params["tag"] = tag
        params["sort"] = sort
        out: Table[Run] = Table()
        offset = 0
        while True:
            size = PAGE if limit is None else min(PAGE, limit - len(out))
            page = self._json(
                "GET", "/api/runs", params={**params, "limit": size, "offset": offset}
            )
            out.extend(Run.from_json(item) for item in page["items"])
            offset += len(page["items"])
            done = limit is not None and len(out) >= limit
            if done or not page["items"] or offset >= page["total"]:
                return out

    def sweep(self, sweep: int | Sweep) -> Sweep:
        """One sweep with its run ids and counts."""
        return Sweep.from_json(self._json("GET", f"/api/sweeps/{_id(sweep)}"))

    def metrics(self, runs: Target, *, config: bool = True) -> Table[Epoch]:
        """Every epoch of many runs, one row per run and epoch (long format), in batches of
        at most 500 runs per call. With `config`, each row carries its run's config fields
        (dataset, activation, ...) for grouping; unknown run ids are left out."""
        known = self._runs_of(runs, fetch=config)
        out: Table[Epoch] = Table()
        ids = list(known)
        for start in range(0, len(ids), MAX_METRIC_IDS):
            batch = ",".join(map(str, ids[start : start + MAX_METRIC_IDS]))
            answer = self._json("GET", "/api/metrics", params={"run_ids": batch})
            for item in answer["runs"]:
                run = known.get(item["run_id"])
                cfg = run.config if (config and run is not None) else {}
                out.extend(Epoch.from_json(item["run_id"], row, cfg) for row in item["epochs"])
        return out

    def export_csv(self, sweep: int | Sweep | None = None) -> str:
        """The server's CSV of a sweep's runs (or of every run): config and results."""
        path = "/api/runs.csv" if sweep is None else f"/api/sweeps/{_id(sweep)}.csv"
        return self.request("GET", path).text

    def _runs_of(self, target: Target, fetch: bool) -> dict[int, Run | None]:
        """Run id -> Run (or None where not fetched) for runs, ids and sweeps, in order."""
        out: dict[int, Run | None] = {}
        for item in _items(target):
            if isinstance(item, Sweep):
                out.update((r.id, r) for r in self.runs(sweep=item))
            elif isinstance(item, Run):
                out[item.id] = item
            elif fetch:
                out[int(item)] = self.run(item)
            else:
                out[int(item)] = None
        return out

    # -- writing ----------------------------------------------------------------------------

    def submit(
        self,
        config: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        tags: list[str] | None = None,
        note: str | None = None,
        **fields: Any,
    ) -> Run:
        """Queues one run: trainer config fields (omitted ones take the server's defaults),
        given as a dict and/or keywords; name, tags and note are set right after."""
        run = Run.from_json(self._json("POST", "/api/runs", json={**(config or {}), **fields}))
        if name is not None or tags is not None or note is not None:
            run = self.edit(run, name=name, tags=tags, note=note)
        return run

    def submit_grid(
        self,
        factors: dict[str, list[Any]] | None = None,
        seeds: Iterable[int] = (0,),
        *,
        base: dict[str, Any] | None = None,
        preset: str | None = None,
        name: str | None = None,
    ) -> Sweep:
        """Queues a sweep: every combination of the factors' values, times the seeds
        (or `preset="report"`, the report's 36 cells); `base` applies to every run."""
        body: dict[str, Any] = {"seeds": list(seeds), "base": dict(base or {})}
        if factors:
            body["grid"] = {k: list(v) for k, v in factors.items()}
        if preset:
            body["preset"] = preset
        if name:
            body["name"] = name
        return Sweep.from_json(self._json("POST", "/api/sweeps", json=body))

    def cancel(self, run: RunRef) -> Run:
        """Queued: cancelled at once; running: stops within seconds. 409 once final."""
        return Run.from_json(self._json("POST", f"/api/runs/{_id(run)}/cancel"))

    def retry(self, run: RunRef) -> Run:
        """A failed, cancelled or lost run queued again (resumes from its checkpoint)."""
        return Run.from_json(self._json("POST", f"/api/runs/{_id(run)}/retry"))

    def delete(self, run: RunRef) -> None:
        """Removes a final run with its metrics and checkpoint (409 while queued/running)."""
        self.request("DELETE", f"/api/runs/{_id(run)}")

    def bulk(
        self,
        action: str,
        runs: Target | None = None,
        *,
        tags: Iterable[str] = (),
        **filters: Any,
    ) -> dict[str, Any]:
        """One action ("tag", "untag", "cancel", "retry", "delete") on many runs in one
        request: the runs given (ids, Runs, sweeps), or else every run that matches the
        filters (those of runs(): status, sweep, q, tag, dataset, activation...; none: every
        run). At most 1000 runs. The answer: `done`, `skipped` and, per run, `{id, outcome,
        status, reason}`; a run the action does not apply to is skipped, not an error."""
        body: dict[str, Any] = {"action": action}
        if runs is not None:
            if filters:
                raise TypeError("bulk: give runs or filters, not both")
            body["ids"] = list(self._runs_of(runs, fetch=False))
        else:
            wanted = {k: v for k, v in filters.items() if v is not None}
            if isinstance(wanted.get("status"), str):
                wanted["status"] = [wanted["status"]]
            elif "status" in wanted:
                wanted["status"] = list(wanted["status"])
            if "sweep" in wanted:
                wanted["sweep_id"] = _id(wanted.pop("sweep"))
            body["filter"] = wanted
        if tags:
            body["tags"] = list(tags)
        return self._json("POST", "/api/runs/bulk", json=body)

    _UNSET: Any = object()

    def edit(
        self, run: RunRef, *, name: Any = _UNSET, tags: Any = _UNSET, note: Any = _UNSET
    ) -> Run:
        """Sets the run's name, tags or note (only those given; None clears one)."""
        body = {
            k: v for k, v in (("name", name), ("tags", tags), ("note", note)) if v is not Lab._UNSET
        }
        return Run.from_json(self._json("PATCH", f"/api/runs/{_id(run)}", json=body))

    def tag(self, run: RunRef, *tags: str, replace: bool = False) -> Run:
        """Adds tags to the run (or, with replace, sets exactly these)."""
        current = [] if replace else self.run(run).tags
        return self.edit(run, tags=list(dict.fromkeys([*current, *tags])))

    def note(self, run: RunRef, text: str | None) -> Run:
        """Sets the run's note (None clears it)."""
        return self.edit(run, note=text)

    def download_checkpoint(self, run: RunRef, path: str | Path = ".") -> Path:
        """Streams the run's latest checkpoint to `path` (a folder: the server's file name).
        The file appears whole or not at all. NotFound while the run has none."""
        target = Path(path)
        for attempt in range(1 + self.retries):
            try:
                with self._http.stream("GET", f"/api/runs/{_id(run)}/checkpoint") as response:
                    if response.is_error:
                        response.read()
                        raise from_response(response)
                    if target.is_dir():
                        target = target / _filename(response, f"run-{_id(run)}.pt")
                    partial = target.with_name(target.name + ".part")
                    with partial.open("wb") as out:
                        for chunk in response.iter_bytes(1 << 20):
                            out.write(chunk)
                    partial.replace(target)
                    return target
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise ServerUnreachable(self.url, _reason(exc)) from None
                time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    # -- waiting ----------------------------------------------------------------------------

    def wait(
        self,
        target: Target,
        progress: bool = True,
        timeout: float | None = None,
        poll: float = 2.0,
    ) -> Table[Run]:
        """Blocks until every run (of the runs, ids or sweeps given) is final, with a tqdm
        bar of runs done. Follows the server's event stream of a sweep or a single run, and
        reconnects when it drops; polls otherwise, or when streams keep failing.
        Returns the runs as they ended; WaitTimeout after `timeout` seconds."""
        from tqdm.auto import tqdm

        deadline = None if timeout is None else time.monotonic() + timeout
        final = set(self.statuses()["final"])
        items = list(_items(target))
        ids = list(self._runs_of(items, fetch=False))
        state = {i: self.run(i) for i in ids}
        bar = tqdm(total=len(ids), disable=not progress, unit="run", desc="runs final")
        try:
            self._follow(_stream_path(items), state, final, bar, deadline, poll)
        finally:
            bar.close()
        return Table(state[i] for i in ids)

    def _follow(
        self,
        stream: str | None,
        state: dict[int, Run],
        final: set[str],
        bar: Any,
        deadline: float | None,
        poll: float,
    ) -> None:
        """Until every run is final: the event stream while it works, else polling."""
        drops = misses = 0  # streams that broke; failures in a row of any kind
        while not _advance(bar, state, final):
            _check(deadline)
            ended = False
            try:
                if stream is not None:
                    ended = self._listen(stream, state, final, bar, deadline)
                else:
                    _sleep(poll, deadline)
                # Events only say what changed after the stream began: read the runs too.
                self._refresh(state, final)
                misses = 0
            except (httpx.TransportError, ServerUnreachable, Unavailable) as exc:
                misses += 1
                if stream is not None:
                    drops += 1
                    if drops >= STREAM_TRIES:
                        stream = None  # the stream keeps breaking (a proxy?): poll instead
                if misses > MAX_MISSES:
                    if isinstance(exc, httpx.TransportError):
                        raise ServerUnreachable(self.url, _reason(exc)) from None
                    raise
                _sleep(min(0.5 * 2**misses, 5.0), deadline)
            if ended:
                stream = None  # the server said done; anything left is polled

    def _refresh(self, state: dict[int, Run], final: set[str]) -> None:
        for run_id, run in list(state.items()):
            if run.status not in final:
                state[run_id] = self.run(run_id)

    def _listen(
        self,
        path: str,
        state: dict[int, Run],
        final: set[str],
        bar: Any,
        deadline: float | None,
    ) -> bool:
        """Reads one event stream until `end` (True) or the deadline; raises if it drops."""
        read = 30.0 if deadline is None else max(0.5, min(30.0, deadline - time.monotonic()))
        timeout = httpx.Timeout(read, connect=5.0)
        with self._http.stream("GET", path, timeout=timeout) as response:
            if response.is_error:
                response.read()
                raise from_response(response)
            for name, data in _events(response.iter_lines()):
                if name == "end":
                    return True
                if name in ("run", "status") and isinstance(data, dict) and data.get("id") in state:
                    state[data["id"]] = Run.from_json(data)
                    if _advance(bar, state, final):
                        return True
                _check(deadline)
        raise httpx.RemoteProtocolError("event stream closed before its end")


def _advance(bar: Any, state: dict[int, Run], final: set[str]) -> bool:
    """Moves the bar to the number of final runs; True once all are."""
    done = sum(r.status in final for r in state.values())
    if done != bar.n:
        bar.update(done - bar.n)
    return done == len(state)


def _sleep(seconds: float, deadline: float | None) -> None:
    if deadline is not None:
        seconds = min(seconds, deadline - time.monotonic())
    if seconds > 0:
        time.sleep(seconds)


def _check(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise WaitTimeout("timed out before every run was final")


def _items(target: Target) -> Iterator[RunRef | Sweep]:
    if isinstance(target, (int, str, Run, Sweep)):
        yield target  # type: ignore[misc]
    else:
        yield from target


def _stream_path(items: list[RunRef | Sweep]) -> str | None:
    """The one event stream that covers everything waited for, if there is one."""
    if len(items) != 1:
        return None
    item = items[0]
    kind = "sweeps" if isinstance(item, Sweep) else "runs"
    return f"/api/{kind}/{_id(item)}/events"


def _events(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """(event, data) from server-sent event lines; comments (pings) are skipped."""
    name, data = "message", []
    for line in lines:
        if not line:
            if data:
                text = "\n".join(data)
                try:
                    yield name, json.loads(text)
                except ValueError:
                    yield name, text
            name, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)


def _filename(response: httpx.Response, fallback: str) -> str:
    found = re.search(r'filename="?([^";]+)"?', response.headers.get("content-disposition", ""))
    name = Path(found.group(1)).name if found else ""
    return name or fallback


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


__all__ = ["DEFAULT_URL", "Lab", "LabError"]
