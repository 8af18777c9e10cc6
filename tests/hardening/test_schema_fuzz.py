"""schemathesis against the app's own OpenAPI schema: no 5xx, every answer as documented.

In process (ASGI, no sockets) over a temporary home with the embedded SQLite broker and no
worker: submitted runs stay queued. The number of generated cases per operation is bounded
(FUZZ_EXAMPLES) so the whole file runs in under a minute on two cores.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import HOST, ASGIClient
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from app.main import create_app
from tests.conftest import TINY, record_epochs
from trainer.results import EpochMetrics

FUZZ_EXAMPLES = 40

CHECKS = [
    not_a_server_error,  # no 5xx, whatever the input
    status_code_conformance,  # every status code answered is documented for the operation
    content_type_conformance,  # ... with the documented media type
    response_schema_conformance,  # ... and a body that matches the documented schema
    negative_data_rejection,  # input that breaks the schema is refused with a 4xx
]


@pytest.fixture
def asgi_client(make_service) -> Iterator[ASGIClient]:
    """A requests-style client that calls the service's app in process. The app's lifespan
    is already running (make_service entered its TestClient), so this one does not start it."""
    # A huge rate limit so the fuzzer is never throttled mid-run (the limit has its own test
    # in test_security.py), and a small grid limit so a fuzzed sweep stays cheap to store.
    service = make_service(None, SUBMIT_RATE_PER_MINUTE="1000000", MAX_SWEEP_RUNS="50")
    _seed_rows(service.client)
    client = ASGIClient(service.client.app)
    yield client
    client.close()


def _seed_rows(client) -> None:
    """Run 1 (with two epochs) and sweep 1 exist, so boundary ids (1) reach the real code
    paths (metrics, summaries, CSV, 409s), not only the 404s."""
    run = client.post("/api/runs", json=TINY)
    assert run.status_code == 201, run.text
    sweep = client.post(
        "/api/sweeps",
        json={"base": TINY, "grid": {"activation": ["relu", "tanh"]}, "seeds": [0, 1]},
    )
    assert sweep.status_code == 201, sweep.text
    record_epochs(
        run.json()["id"],
        *(
            EpochMetrics(
                epoch=epoch,
                lr=0.1,
                train_loss=1.0,
                train_acc=0.5,
                test_loss=float("nan"),  # a diverged epoch: stored and served as null
                test_acc=0.4,
                seconds=1.0,
                images_per_second=100.0,
            )
            for epoch in (1, 2)
        ),
    )


# The schema is the app's own, loaded eagerly: generating it touches no disk or database.
# (schemathesis.pytest.from_fixture would build it per test, but schemathesis 4.32's lazy
# loader reads `node._nodeid`, which pytest 9 no longer has.)
#
# The server-sent event endpoints (/api/runs/{id}/events, /api/sweeps/{id}/events) are left
# out: their streams end only when the run finishes or the client goes away, and with no
# worker nothing ever finishes, so each fuzzed call would hang until a timeout. Their
# id parameters are the same dependencies fuzzed on the other routes, and `after_epoch` is a
# bounded Query; tests/integration/test_service.py covers the streams themselves.
schema = schemathesis.openapi.from_dict(create_app().openapi()).exclude(path_regex=r"/events$")


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    # One installation per operation, shared by its generated cases on purpose: state left by
    # one case (a created run, a cancelled one) is more input for the next.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_api_answers_every_generated_request_without_5xx_and_as_documented(case, asgi_client):
    case.call_and_validate(base_url=f"http://{HOST}", session=asgi_client, checks=CHECKS)
