"""Details of the pages, in a real browser at a phone's width and two desktop widths, against
`resnet-lab serve` without a worker (runs are finished by the test through core.lifecycle,
as a worker finishes them):

- Compare: each legend entry names its fields; the learning rate is drawn as steps on a log
  axis, as on the run page.
- One value is not a range: a grid heatmap with one finished square, and a run's throughput
  after one epoch, get ranges that read as such, not a sliver around the value.
- Forms: the dataset options fit their select, the dataset's note says nothing twice, and
  the New run form shows the training time.
- Token mode (API_TOKEN): the header says whether this browser is signed in and logs out; a
  form submitted after its session ended comes back filled after the login.

Screenshots land in artifacts/screenshots/details-*-<width>.png.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import urllib.request
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from core import lifecycle
from core.db import make_engine
from tests.browser.conftest import Server, _resnet_lab, watched_page
from tests.conftest import TINY, start_serve, stop_process_group
from trainer.config import TrainConfig
from trainer.results import EpochMetrics, RunResult

pytestmark = pytest.mark.browser

WIDTHS = (390, 1400, 1920)
TOKEN = "a long enough token for the browser test"
# (activation, width, batch size, seed, name): three runs that differ in four fields
COMPARED = [
    ("relu", 4, 32, 0, "base"),
    ("tanh", 6, 64, 1, None),
    ("leaky_relu", 8, 96, 2, "leaky baseline"),
]
LRS = [0.1, 0.01, 0.001]  # one epoch in each phase of the schedule
SPEED = 112.7  # images/s of the one-epoch run
CURVES = "document.querySelector('#compare-curves')"
HEATMAP = "document.querySelector('#heatmap-0')"

# How many pixels the widest option text needs beyond its select's text box (the arrow
# takes about 20 px); <= 0 when every option fits.
OPTION_CUT_JS = """(sel) => {
  const s = document.querySelector(sel);
  const cs = getComputedStyle(s);
  const ctx = document.createElement('canvas').getContext('2d');
  ctx.font = `${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
  const room = s.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight) - 20;
  return Math.max(...[...s.options].map((o) => ctx.measureText(o.textContent).width)) - room;
}"""

# How far the legend's widest text sticks out past its chart's right edge; <= 0 when none does.
LEGEND_CUT_JS = """(sel) => {
  const div = document.querySelector(sel);
  const texts = [...div.querySelectorAll('.legend .legendtext')];
  const right = Math.max(...texts.map((t) => t.getBoundingClientRect().right));
  return right - div.getBoundingClientRect().right;
}"""


def request(server_url: str, method: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(
        server_url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(req, timeout=10) as response:
        return json.loads(response.read())


def finish(server: Server, run_id: int, epochs: list[EpochMetrics], config: dict) -> None:
    """Finishes a queued run as a worker would, on the server's own database."""
    engine = make_engine(f"sqlite:///{server.home / 'resnet-lab.db'}")
    try:
        with Session(engine, expire_on_commit=False) as session:
            owner = lifecycle.claim(session, run_id, "browser-test", heartbeat_timeout=3600)
            assert owner is not None, run_id
            for row in epochs:
                assert lifecycle.record_epoch(session, run_id, row, owner)
            last = epochs[-1].test_acc
            result = RunResult(config=TrainConfig(**config), final_test_acc=last,
                               best_test_acc=last, best_epoch=len(epochs))  # fmt: skip
            assert lifecycle.finish(session, run_id, result, owner)
    finally:
        engine.dispose()


def epoch(n: int, lr: float, acc: float, speed: float = 100.0) -> EpochMetrics:
    return EpochMetrics(epoch=n, lr=lr, train_loss=2 - acc, train_acc=acc, test_loss=2 - acc,
                        test_acc=acc, seconds=3.0, images_per_second=speed)  # fmt: skip


@pytest.fixture(scope="module")
def serve_workers() -> int:
    return 0  # nothing trains: the test finishes the runs it needs


@pytest.fixture(scope="module")
def runs(server) -> dict:
    """Three finished runs to compare, and a grid of two squares with one finished."""
    compared = []
    for activation, width, batch_size, seed, name in COMPARED:
        config = {**TINY, "epochs": 3, "activation": activation, "width": width,
                  "batch_size": batch_size, "seed": seed}  # fmt: skip
        run_id = request(server.url, "POST", "/api/runs", config)["id"]
        rows = [epoch(i + 1, lr, 0.3 + 0.1 * i + width / 100) for i, lr in enumerate(LRS)]
        finish(server, run_id, rows, config)
        if name:
            request(server.url, "PATCH", f"/api/runs/{run_id}", {"name": name})
        compared.append(run_id)
    base = {**TINY, "epochs": 1}
    sweep = request(server.url, "POST", "/api/sweeps",
                    {"base": base, "grid": {"activation": ["relu", "tanh"]}})  # fmt: skip
    one = sweep["run_ids"][0]
    finish(server, one, [epoch(1, 0.1, 0.4015, SPEED)], {**base, "activation": "relu"})
    return {"compared": compared, "sweep": sweep["id"], "one_epoch": one}


@pytest.fixture(scope="module")
def locked() -> Iterator[str]:
    """A second `resnet-lab serve`, with API_TOKEN, no worker; its base URL."""
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items()
               if k not in ("BROKER_URL", "DATABASE_URL", "DATA_DIR", "RUNS_DIR")}  # fmt: skip
        env.update(RESNET_LAB_HOME=home, API_TOKEN=TOKEN, PYTHONUNBUFFERED="1")
        proc, url = start_serve("--home", home, "--workers", "0", env=env, command=_resnet_lab())
        try:
            yield url
        finally:
            stop_process_group(proc)


@pytest.fixture
def sized(browser, watch, request) -> Iterator:
    """A page at the test's width (its `width` parameter)."""
    with watched_page(browser, watch, request.node.callspec.params["width"]) as page:
        yield page


def shot(page, screenshots, name: str, width: int, locator=None) -> None:
    page.mouse.move(0, 0)  # no hover label in the picture
    path = screenshots / f"details-{name}-{width}.png"
    if locator is None:
        page.screenshot(path=path, full_page=True)
    else:
        locator.screenshot(path=path)


def repeated_phrase(text: str) -> str | None:
    """A run of three words that the text says twice, or None."""
    words = re.findall(r"[\w-]+", text.lower())
    seen = set()
    for i in range(len(words) - 2):
        phrase = " ".join(words[i : i + 3])
        if phrase in seen:
            return phrase
        seen.add(phrase)
    return None


def clean(watch) -> None:
    assert not watch.foreign_requests(), watch.foreign_requests()
    assert not watch.page_errors, watch.page_errors
    assert not watch.console_errors, watch.console_errors


@pytest.mark.timeout(180)
@pytest.mark.parametrize("width", WIDTHS)
def test_compare_ranges_and_forms(server, runs, sized, watch, screenshots, width):
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)
    page = sized

    # --- Compare: legend entries name their fields; the learning rate as steps, log axis
    ids = ",".join(map(str, runs["compared"]))
    page.goto(f"{server.url}/compare?run_ids={ids}&group=none")
    page.wait_for_function(f"{CURVES}.data?.length === 3")
    names = page.evaluate(f"{CURVES}.data.map((t) => t.name)")
    assert names[0].startswith(f"#{runs['compared'][0]} base: "), names
    for part in ("activation ReLU", "width 4", "batch size 32", "seed 0"):
        assert part in names[0], names
    for name in names:
        assert all(f in name for f in ("activation ", "width ", "batch size ", "seed ")), names
    # long entries broken into lines on a phone, not cut off at the chart's edge
    assert page.evaluate(LEGEND_CUT_JS, "#compare-curves") <= 0, names
    shot(page, screenshots, "compare-legend", width, page.locator("#compare-curves"))

    page.select_option("#metric", "lr")
    page.wait_for_function(f"{CURVES}.layout.yaxis.type === 'log'")
    shapes = page.evaluate(f"{CURVES}.data.map((t) => t.line.shape)")
    assert shapes == ["hv"] * 3, shapes
    expect(page.locator("#log-y")).to_be_checked()
    expect(page.locator("#log-y")).to_be_disabled()
    assert "log=1" not in page.url  # forced by the metric, not the user's choice
    shot(page, screenshots, "compare-lr", width, page.locator("#compare-curves"))
    page.select_option("#metric", "test_acc")  # the user's own choice back: linear
    page.wait_for_function(f"{CURVES}.layout.yaxis.type === 'linear'")
    expect(page.locator("#log-y")).not_to_be_checked()
    expect(page.locator("#log-y")).to_be_enabled()

    # --- One finished square: the colour scale spans ten points around its 40.15 %
    page.goto(f"{server.url}/sweeps/{runs['sweep']}")
    page.wait_for_function(f"{HEATMAP}?.data?.[0]?.zmax !== undefined")
    zmin, zmax = page.evaluate(f"['zmin', 'zmax'].map((k) => {HEATMAP}.data[0][k])")
    assert zmin < 40.15 < zmax and zmax - zmin == pytest.approx(10), (zmin, zmax)
    page.locator("#heatmap-0").scroll_into_view_if_needed()
    shot(page, screenshots, "heatmap-one-square", width, page.locator("#heatmap-0"))

    # --- One epoch's speed: an axis from 0, not 112 to 113.5
    page.goto(f"{server.url}/runs/{runs['one_epoch']}")
    page.wait_for_function("document.querySelector('#chart-speed')?.layout?.yaxis?.range")
    low, high = page.evaluate("document.querySelector('#chart-speed').layout.yaxis.range")
    assert low == 0 and high >= 2 * SPEED - 1e-6, (low, high)
    # and one epoch's accuracies (train and test, 40.15 %): 20 points around them
    low, high = page.evaluate("document.querySelector('#chart-acc').layout.yaxis.range")
    assert low < 40.15 < high and high - low >= 20, (low, high)
    shot(page, screenshots, "accuracy-one-epoch", width, page.locator("#chart-acc"))
    page.locator("#chart-speed").scroll_into_view_if_needed()
    shot(page, screenshots, "throughput-one-epoch", width, page.locator("#chart-speed"))

    # --- New run: options that fit, a note that says things once, the training time
    page.goto(f"{server.url}/runs/new")
    cifar = page.locator("#run-dataset option[value=cifar10]")
    expect(cifar).to_have_text(re.compile("to download"))
    assert page.evaluate(OPTION_CUT_JS, "#run-dataset") <= 0, "a dataset option is cut"
    page.select_option("#run-dataset", "cifar10")
    note = page.locator("#run-dataset-ready")
    expect(note).to_contain_text("downloaded on first use")
    assert repeated_phrase(note.inner_text()) is None, note.inner_text()
    # runs at widths 4-8 were timed: the default width 64 is scaled from them
    expect(page.locator("#estimate-time")).to_have_text(re.compile(r"^~\d"))
    before = page.locator("#estimate-time").inner_text()
    page.fill("#run-epochs", "400")  # twice the default: twice the time
    expect(page.locator("#estimate")).to_contain_text("400 epochs")
    assert page.locator("#estimate-time").inner_text() != before
    shot(page, screenshots, "run-form-dataset", width, page.locator("#fields fieldset").first)
    shot(page, screenshots, "run-form-estimate", width, page.locator(".form-actions"))

    # --- New grid: the same select and note
    page.goto(f"{server.url}/sweeps/new")
    page.click("#base-box > summary")
    assert page.evaluate(OPTION_CUT_JS, "#base-dataset") <= 0, "a dataset option is cut"
    page.select_option("#base-dataset", "cifar10")
    base_note = page.locator("#base-dataset-ready")
    expect(base_note).to_contain_text("downloaded on first use")
    assert repeated_phrase(base_note.inner_text()) is None, base_note.inner_text()
    clean(watch)


def log_in(page) -> None:
    page.wait_for_url(re.compile(r"/login\?"))
    page.fill("#token", TOKEN)
    page.click("form[action='/login'] button[type=submit]")


def end_session(page, url: str) -> None:
    """The session ends behind the page's back (a logout in another tab)."""
    page.request.post(url + "/logout", max_redirects=0)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("width", WIDTHS)
def test_token_mode_header_and_forms_kept_across_login(locked, sized, watch, screenshots, width):
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)
    page = sized
    # asked while logged out, on purpose: the estimate (in the background) and the submits
    watch.expected_responses |= {(401, "/api/sweeps/estimate"), (401, "/api/runs"),
                                 (401, "/api/sweeps")}  # fmt: skip

    # --- logged out: the header says so, the form stays put, the estimate asks for a login
    page.goto(locked + "/runs/new")
    expect(page.locator("#auth-state")).to_have_text("not signed in")
    expect(page.locator("#estimate-none")).to_contain_text("log in to see it")
    assert page.url.endswith("/runs/new")
    page.click("#login-link")
    log_in(page)
    page.wait_for_url(re.compile(r"/runs/new$"))
    expect(page.locator("#auth-state")).to_have_text("signed in")
    expect(page.locator("#logout")).to_be_visible()
    expect(page.locator("#estimate-time")).to_be_visible()
    shot(page, screenshots, "token-signed-in", width, page.locator("header"))

    # --- New run: filled, the session ends, submitted: back filled after the login
    page.click("#fill-smoke")
    page.fill("#run-epochs", "2")
    page.fill("#run-width", "6")
    page.fill("#run-lr", "0.05")
    page.select_option("#run-activation", "tanh")
    end_session(page, locked)
    page.click("#submit")
    log_in(page)
    page.wait_for_url(re.compile(r"/runs/new$"))
    expect(page.locator("#draft-note")).to_be_visible()
    expect(page.locator("#run-epochs")).to_have_value("2")
    expect(page.locator("#run-width")).to_have_value("6")
    expect(page.locator("#run-lr")).to_have_value("0.05")
    expect(page.locator("#run-activation")).to_have_value("tanh")
    expect(page.locator("#run-dataset")).to_have_value("digits")
    expect(page.locator("#estimate-time")).to_be_visible()  # signed in again: asked and answered
    shot(page, screenshots, "token-run-form-kept", width)
    page.click("#submit")
    page.wait_for_url(re.compile(r"/runs/\d+$"))
    run_id = int(page.url.rsplit("/", 1)[1])
    config = request(locked, "GET", f"/api/runs/{run_id}")["config"]
    assert (config["epochs"], config["width"], config["lr"], config["activation"]) == (
        2, 6, 0.05, "tanh"
    )  # fmt: skip
    page.goto(locked + "/runs/new")  # the kept entries were taken once
    expect(page.locator("#draft-note")).to_be_hidden()
    expect(page.locator("#run-epochs")).not_to_have_value("2")

    # --- New grid: ticked values, an extra ratio, another varied field, seeds, a name
    page.goto(locked + "/sweeps/new")
    page.check("#factors input[data-factor=activation][value=tanh]")
    page.check("#factors input[data-factor=activation][value=relu]")
    page.fill("#lr-ratio-extra", "3:1:1")
    page.click("#add-factor")
    page.select_option("#extra-factors select", "width")
    page.fill("#extra-factors input", "4, 6")
    page.fill("#sweep-seeds", "0-1")
    page.fill("#sweep-name", "kept grid")
    page.click("#fill-smoke")
    expect(page.locator("#estimate-runs")).to_have_attribute("data-runs", "8")
    end_session(page, locked)
    page.click("#submit")
    log_in(page)
    page.wait_for_url(re.compile(r"/sweeps/new$"))
    expect(page.locator("#draft-note")).to_be_visible()
    expect(page.locator("#estimate-runs")).to_have_attribute("data-runs", "8")
    activation = "#factors input[data-factor=activation]"
    expect(page.locator(f"{activation}[value=tanh]")).to_be_checked()
    expect(page.locator(f"{activation}[value=sigmoid]")).not_to_be_checked()
    expect(page.locator("#lr-ratio-extra")).to_have_value("3:1:1")
    expect(page.locator("#extra-factors select")).to_have_value("width")
    expect(page.locator("#extra-factors input")).to_have_value("4, 6")
    expect(page.locator("#sweep-seeds")).to_have_value("0-1")
    expect(page.locator("#sweep-name")).to_have_value("kept grid")
    expect(page.locator("#base-dataset")).to_have_value("digits")
    expect(page.locator("#estimate-time")).to_be_visible()
    shot(page, screenshots, "token-grid-form-kept", width)

    # --- Log out from the header: signed out, and writes need a login again
    page.click("#logout")
    page.wait_for_url(locked + "/")
    expect(page.locator("#auth-state")).to_have_text("not signed in")
    expect(page.locator("#login-link")).to_have_attribute("href", "/login?next=/")
    status = page.evaluate(
        """async () => (await fetch('/api/runs', {method: 'POST', headers: {'Content-Type':
           'application/json'}, body: '{}'})).status"""
    )
    assert status == 401
    shot(page, screenshots, "token-signed-out", width, page.locator("header"))
    clean(watch)
