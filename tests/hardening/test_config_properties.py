"""Hypothesis: the config model and POST /api/runs accept exactly what the schema declares.

Ranges are read from the fields' own declared constraints (`Field(ge=..., le=...)`, Literal
choices), never restated here, so a changed bound is tested as it stands.

- Everything accepted is in range (and, over the API, stored as the right JSON type).
- Everything out of range, of the wrong type, or unknown is refused naming the field
  (a 422 whose error's loc[-1] is the field), and nothing is stored.

`trainer.config.TrainConfig` is the trainer's model and validates in pydantic's lax mode
("5" is read as 5); the API validates with `app.schemas.TrainConfigIn`, the same fields in
strict mode, so only the API's properties include "wrong type is refused".
"""

from __future__ import annotations

import json
import math
import typing
from dataclasses import dataclass
from typing import Any

import annotated_types
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from app.schemas import TrainConfigIn
from tests.hardening.conftest import stored_rows
from trainer.config import TrainConfig, parse_lr_ratio


@dataclass(frozen=True)
class Spec:
    """One config field's declared type and range."""

    name: str
    kind: str  # int, float, bool, choice, ratio
    lo: float | None = None
    lo_open: bool = False
    hi: float | None = None
    hi_open: bool = False
    choices: tuple[str, ...] = ()


def field_specs(model: type[BaseModel]) -> dict[str, Spec]:
    specs = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if typing.get_origin(annotation) is typing.Literal:
            specs[name] = Spec(name, "choice", choices=typing.get_args(annotation))
            continue
        if name == "lr_ratio":  # a str with its own validator (three parts, 1..1000 each)
            specs[name] = Spec(name, "ratio")
            continue
        kind = {int: "int", float: "float", bool: "bool"}[annotation]
        bounds: dict[str, Any] = {}
        for c in info.metadata:
            if isinstance(c, annotated_types.Ge):
                bounds.update(lo=c.ge, lo_open=False)
            elif isinstance(c, annotated_types.Gt):
                bounds.update(lo=c.gt, lo_open=True)
            elif isinstance(c, annotated_types.Le):
                bounds.update(hi=c.le, hi_open=False)
            elif isinstance(c, annotated_types.Lt):
                bounds.update(hi=c.lt, hi_open=True)
        specs[name] = Spec(name, kind, **bounds)
    return specs


TRAINER_SPECS = field_specs(TrainConfig)
API_SPECS = field_specs(TrainConfigIn)
BLUR = ("blur_sigma_min", "blur_sigma_max")


def in_declared_range(spec: Spec, value: Any) -> bool:
    """Is `value` of the field's type and inside its declared bounds?"""
    if spec.kind == "choice":
        return value in spec.choices
    if spec.kind == "ratio":
        try:
            parts = parse_lr_ratio(value)
        except (TypeError, ValueError):
            return False
        return value == ":".join(map(str, parts))  # stored in canonical form
    if spec.kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if spec.kind == "int" and not isinstance(value, int):
        return False
    if spec.kind == "float" and not (isinstance(value, (int, float)) and math.isfinite(value)):
        return False
    if spec.lo is not None and (value <= spec.lo if spec.lo_open else value < spec.lo):
        return False
    if spec.hi is not None and (value >= spec.hi if spec.hi_open else value > spec.hi):
        return False
    return True


# ------------------------------------------------------------------ strategies


def valid_value(spec: Spec) -> st.SearchStrategy:
    if spec.kind == "choice":
        return st.sampled_from(spec.choices)
    if spec.kind == "ratio":
        part = st.integers(1, 1000)
        space = st.sampled_from(["", " "])
        return st.tuples(space, part, space, part, space, part, space).map(
            lambda t: f"{t[0]}{t[1]}{t[2]}:{t[3]}:{t[4]}{t[5]}{t[6]}"
        )
    if spec.kind == "bool":
        return st.booleans()
    if spec.kind == "int":
        lo = int(spec.lo) + spec.lo_open if spec.lo is not None else None
        hi = int(spec.hi) - spec.hi_open if spec.hi is not None else 10**12
        return st.integers(lo, hi)
    return st.floats(
        spec.lo,
        spec.hi,
        exclude_min=spec.lo_open,
        exclude_max=spec.hi_open,
        allow_nan=False,
        allow_infinity=False,
    )


def _order_blur(config: dict[str, Any]) -> dict[str, Any]:
    # The one cross-field rule: blur_sigma_min <= blur_sigma_max.
    low, high = sorted((config["blur_sigma_min"], config["blur_sigma_max"]))
    return {**config, "blur_sigma_min": low, "blur_sigma_max": high}


@st.composite
def valid_configs(draw, specs: dict[str, Spec]) -> dict[str, Any]:
    """A valid config of any subset of fields (omitted ones take their defaults); the blur
    pair is sent together or not at all, so the defaults cannot break its order."""
    full = _order_blur(draw(st.fixed_dictionaries({n: valid_value(s) for n, s in specs.items()})))
    keep = draw(st.sets(st.sampled_from([n for n in specs if n not in BLUR] + ["blur"])))
    names = {n for n in keep if n != "blur"} | (set(BLUR) if "blur" in keep else set())
    return {n: full[n] for n in names}


def out_of_range(spec: Spec) -> st.SearchStrategy:
    """Values of the right type outside the declared range."""
    if spec.kind == "choice":
        return st.text(max_size=20).filter(lambda v: v not in spec.choices)
    if spec.kind == "ratio":
        part = st.integers(1, 1000)
        bad = st.one_of(st.integers(-5, 0), st.integers(1001, 10**6))
        return st.one_of(
            st.tuples(bad, part, part).map(lambda t: "{}:{}:{}".format(*t)),
            st.tuples(part, part, bad).map(lambda t: "{}:{}:{}".format(*t)),
            st.tuples(part, part).map(lambda t: "{}:{}".format(*t)),
            st.text(max_size=20).filter(lambda v: not in_declared_range(spec, v)),
        )
    if spec.kind == "bool":
        return st.nothing()  # every bool is in range
    options = []
    if spec.kind == "int":
        if spec.lo is not None:
            options.append(st.integers(max_value=int(spec.lo) - (not spec.lo_open)))
        if spec.hi is not None:
            options.append(st.integers(min_value=int(spec.hi) + (not spec.hi_open)))
    else:
        if spec.lo is not None:
            options.append(st.floats(max_value=spec.lo, exclude_max=not spec.lo_open))
        if spec.hi is not None:
            options.append(st.floats(min_value=spec.hi, exclude_min=not spec.hi_open))
        options.append(st.sampled_from([math.nan, math.inf, -math.inf]))
    return st.one_of(options) if options else st.nothing()


JUNK = st.one_of(
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def wrong_type(spec: Spec) -> st.SearchStrategy:
    """Values a strict JSON reading of the field's type refuses."""
    numbers = st.one_of(st.integers(), st.floats(allow_nan=False))
    by_kind = {
        "int": st.one_of(st.booleans(), st.text(max_size=10), st.floats(allow_nan=False), JUNK),
        "float": st.one_of(st.booleans(), st.text(max_size=10), JUNK),
        "bool": st.one_of(st.integers(), st.text(max_size=10), st.floats(allow_nan=False), JUNK),
        "choice": st.one_of(st.booleans(), numbers, JUNK),
        "ratio": st.one_of(st.booleans(), numbers, JUNK),
    }
    return by_kind[spec.kind]


UNKNOWN_FIELD = st.text(min_size=1, max_size=20).filter(lambda k: k not in TRAINER_SPECS)


@st.composite
def broken_configs(draw, specs: dict[str, Spec], wrong_types: bool):
    """A valid config with one to three fields broken; returns (body, names of the broken)."""
    body = dict(draw(valid_configs(specs)))
    kinds = ["out_of_range", "unknown"] + (["wrong_type"] if wrong_types else [])
    broken = set()
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(kinds))
        if kind == "unknown":
            name = draw(UNKNOWN_FIELD)
            body[name] = draw(st.one_of(valid_value(Spec("x", "int", 0, False, 9)), JUNK))
        else:
            choices = [n for n, s in specs.items() if kind == "wrong_type" or s.kind != "bool"]
            name = draw(st.sampled_from(choices))
            strategy = out_of_range if kind == "out_of_range" else wrong_type
            body[name] = draw(strategy(specs[name]))
        broken.add(name)
    return body, broken


def _named(errors: list[dict[str, Any]]) -> set[Any]:
    return {err["loc"][-1] for err in errors if err["loc"]}


def _assert_accepted_in_range(config: BaseModel, specs: dict[str, Spec]) -> None:
    for name, spec in specs.items():
        value = getattr(config, name)
        assert in_declared_range(spec, value), f"{name}={value!r} accepted but out of range"
    assert config.blur_sigma_min <= config.blur_sigma_max


# ------------------------------------------------------------------ the model


anything = st.dictionaries(
    st.one_of(st.sampled_from(sorted(TRAINER_SPECS)), UNKNOWN_FIELD),
    st.one_of(
        st.integers(),
        st.floats(),
        st.booleans(),
        st.text(max_size=12),
        st.sampled_from(["relu", "digits", "none", "bf16", "5:4:1", "1e3", "7"]),
        JUNK,
    ),
    max_size=6,
)


@pytest.mark.parametrize("model", [TrainConfig, TrainConfigIn], ids=["trainer", "api"])
@settings(max_examples=60, deadline=None)
@given(data=anything)
def test_config_model_accepts_only_values_in_their_declared_range(model, data):
    specs = field_specs(model)
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        # Defaults are valid, so whatever is refused was sent: every error names a sent key.
        assert _named(exc.errors()) <= set(data), exc.errors()
        return
    _assert_accepted_in_range(config, specs)


@settings(max_examples=60, deadline=None)
@given(case=broken_configs(TRAINER_SPECS, wrong_types=False))
def test_trainer_config_refuses_out_of_range_and_unknown_fields_naming_each(case):
    body, broken = case
    with pytest.raises(ValidationError) as refused:
        TrainConfig.model_validate(body)
    assert broken <= _named(refused.value.errors()), refused.value.errors()


@settings(max_examples=60, deadline=None)
@given(case=broken_configs(API_SPECS, wrong_types=True))
def test_api_config_refuses_wrong_types_too_naming_each_field(case):
    body, broken = case
    with pytest.raises(ValidationError) as refused:
        TrainConfigIn.model_validate(body)
    assert broken <= _named(refused.value.errors()), refused.value.errors()


@settings(max_examples=60, deadline=None)
@given(config=valid_configs(API_SPECS))
def test_every_config_within_the_declared_ranges_is_accepted(config):
    # API_SPECS: the trainer's ranges, with the API's own bound on train_limit and test_limit.
    _assert_accepted_in_range(TrainConfig.model_validate(config), TRAINER_SPECS)
    _assert_accepted_in_range(TrainConfigIn.model_validate(config), API_SPECS)


def test_blur_range_refusal_names_a_field():
    with pytest.raises(ValidationError) as refused:
        TrainConfigIn.model_validate({"blur_sigma_min": 2.0, "blur_sigma_max": 1.0})
    assert "blur_sigma_max" in _named(refused.value.errors())


# ------------------------------------------------------------------ POST /api/runs

# One installation per test, shared by its examples on purpose (each example checks the row
# count it changes); examples post real JSON text, so NaN and Infinity go over the wire too.
API_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def api(make_service):
    return make_service(None, SUBMIT_RATE_PER_MINUTE="1000000").client


def post(api, body: dict[str, Any]):
    return api.post(
        "/api/runs", content=json.dumps(body), headers={"Content-Type": "application/json"}
    )


@API_SETTINGS
@given(config=valid_configs(API_SPECS))
def test_posted_config_within_range_is_stored_in_range_with_its_json_types(api, config):
    before = stored_rows()["runs"]
    response = post(api, config)
    assert response.status_code == 201, response.text
    assert stored_rows()["runs"] == before + 1
    stored = api.get(f"/api/runs/{response.json()['id']}").json()["config"]
    assert set(stored) == set(API_SPECS)
    for name, spec in API_SPECS.items():
        assert in_declared_range(spec, stored[name]), (name, stored[name])
        if spec.kind == "int":
            assert type(stored[name]) is int, (name, stored[name])
    for name, value in config.items():
        expected = ":".join(map(str, parse_lr_ratio(value))) if name == "lr_ratio" else value
        assert stored[name] == expected, name


@API_SETTINGS
@given(case=broken_configs(API_SPECS, wrong_types=True))
def test_posted_config_out_of_range_wrong_type_or_unknown_is_422_naming_it_and_not_stored(
    api, case
):
    body, broken = case
    before = stored_rows()
    response = post(api, body)
    assert response.status_code == 422, response.text
    assert broken <= _named(response.json()["detail"]), response.text
    assert stored_rows() == before


@API_SETTINGS
@given(data=anything)
def test_whatever_is_posted_is_either_stored_in_range_or_422_naming_what_was_sent(api, data):
    before = stored_rows()["runs"]
    response = post(api, data)
    if response.status_code == 201:
        assert stored_rows()["runs"] == before + 1
        stored = response.json()["config"]
        for name, spec in API_SPECS.items():
            assert in_declared_range(spec, stored[name]), (name, stored[name])
    else:
        assert response.status_code == 422, response.text
        assert _named(response.json()["detail"]) <= set(data), response.text
        assert stored_rows()["runs"] == before
