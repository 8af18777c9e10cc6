"""`resnet-lab runs|submit|grid|wait|cancel|retry|export`: the client from a shell.

Exit codes: 0 ok; 1 a waited run did not succeed (failed, cancelled, or the wait timed out);
2 bad usage; 3 server unreachable or unavailable (503); 4 the API refused the request (4xx);
5 server error (500).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resnet_lab.client import Lab
from resnet_lab.errors import (
    APIError,
    LabError,
    ServerUnreachable,
    Unavailable,
    ValidationError,
    WaitTimeout,
)
from resnet_lab.models import Run

OK, RUN_FAILED, USAGE, UNREACHABLE, REFUSED, SERVER_ERROR = 0, 1, 2, 3, 4, 5
Handler = Callable[[argparse.Namespace], int]


def add_commands(sub: argparse._SubParsersAction, root: argparse.ArgumentParser | None = None):
    """Adds the client's subcommands to `resnet-lab` (app/cli.py); with `root`, --url and
    --token are also accepted before the subcommand."""
    if root is not None:
        _connection_options(root, argparse.SUPPRESS)
    common = argparse.ArgumentParser(add_help=False)
    _connection_options(common, argparse.SUPPRESS)

    runs = sub.add_parser("runs", help="list or show runs (client of a running server)")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True)
    p = runs_sub.add_parser("ls", parents=[common], help="list runs, oldest first")
    p.add_argument("--status", action="append", help="queued, running, succeeded... (repeat)")
    p.add_argument("--sweep", type=int, help="only this sweep's runs")
    p.add_argument("--q", help="search words: id, name, note, tag or field=value")
    p.add_argument("--tag", help="only runs with this tag")
    p.add_argument("--sort", default="id", help="column, '-' for descending (default id)")
    p.add_argument("--limit", type=int, help="at most this many runs")
    _format_options(p)
    p.set_defaults(func=_guarded(runs_ls))
    p = runs_sub.add_parser("show", parents=[common], help="one run: config, status, results")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true", help="the API's JSON")
    p.set_defaults(func=_guarded(runs_show))

    _deferred(
        sub.add_parser("submit", add_help=False, help="queue one run (flags: every config field)"),
        _guarded(submit),
    )
    grid = sub.add_parser("grid", help="sweeps: a grid of runs times seeds")
    grid_sub = grid.add_subparsers(dest="grid_command", required=True)
    _deferred(
        grid_sub.add_parser(
            "submit", add_help=False, help="queue a grid (--grid field=v1,v2 or --preset)"
        ),
        _guarded(grid_submit),
    )

    p = sub.add_parser(
        "wait", parents=[common], help="wait until runs are final (exit 1: any not succeeded)"
    )
    p.add_argument("ids", type=int, nargs="*", metavar="ID", help="run ids")
    p.add_argument("--sweep", type=int, action="append", help="every run of this sweep (repeat)")
    p.add_argument("--timeout", type=float, help="give up after this many seconds (exit 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_guarded(wait))

    for name, what in (
        ("cancel", "cancel queued or running runs"),
        ("retry", "queue failed, cancelled or lost runs again"),
    ):
        p = sub.add_parser(name, parents=[common], help=what)
        p.add_argument("ids", type=int, nargs="+", metavar="ID")
        p.set_defaults(func=_guarded(_each(name)))

    p = sub.add_parser("export", parents=[common], help="a sweep's runs as CSV (or JSON)")
    p.add_argument("sweep", type=int, metavar="SWEEP")
    _format_options(p, default_csv=True)
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.set_defaults(func=_guarded(export))


def main(argv: list[str] | None = None) -> int:
    """The client commands alone (`python -m resnet_lab`)."""
    parser = argparse.ArgumentParser(prog="resnet-lab", description=__doc__)
    add_commands(parser.add_subparsers(dest="command", required=True), parser)
    args = parser.parse_args(argv)
    return args.func(args)


# -- plumbing --------------------------------------------------------------------------------


def _connection_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--url", default=default, help="server (default $RESNET_LAB_URL or http://127.0.0.1:8000)"
    )
    parser.add_argument("--token", default=default, help="API token (default $API_TOKEN)")


def _format_options(parser: argparse.ArgumentParser, default_csv: bool = False) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="JSON")
    group.add_argument("--csv", action="store_true", default=default_csv, help="CSV")


def _lab(args: argparse.Namespace) -> Lab:
    return Lab(getattr(args, "url", None), getattr(args, "token", None))


def _deferred(parser: argparse.ArgumentParser, handler: Handler) -> None:
    """Leaves the command's arguments unparsed: its flags come from the server's config
    schema, read only when the command runs (serve and worker never need a server)."""

    def parse_known_args(args=None, namespace=None):
        namespace = namespace or argparse.Namespace()
        namespace.func = handler
        namespace.rest = list(args or [])
        return namespace, []

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]


def _guarded(handler: Handler) -> Handler:
    """Turns the client's errors into one line on stderr and an exit code."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except ServerUnreachable as exc:
            _fail(f"{exc} (set --url or RESNET_LAB_URL)")
            return UNREACHABLE
        except Unavailable as exc:
            after = f"; retry after {exc.retry_after:g} s" if exc.retry_after else ""
            _fail(f"server unavailable ({exc.status_code}): {exc.message}{after}")
            return UNREACHABLE
        except ValidationError as exc:
            _fail("; ".join(f"{_flag(e.field)}: {e.message}" for e in exc.errors))
            return REFUSED
        except APIError as exc:
            _fail(f"{exc.message} ({exc.status_code})")
            return REFUSED if exc.status_code < 500 else SERVER_ERROR
        except WaitTimeout as exc:
            _fail(str(exc))
            return RUN_FAILED
        except LabError as exc:
            _fail(str(exc))
            return SERVER_ERROR

    return run


def _fail(message: str) -> None:
    print(f"resnet-lab: error: {message}", file=sys.stderr)


def _flag(field: str) -> str:
    """The command-line flag behind an API field: width -> --width, grid.x -> --grid x."""
    head, _, rest = field.partition(".")
    if head == "grid":
        return f"--grid {rest}".rstrip()
    if head == "base" and rest:
        head = rest.partition(".")[0]
    return f"--{head.replace('_', '-')}" if head else "request"


# -- runs ------------------------------------------------------------------------------------


def _summary(run: Run) -> str:
    c = run.config
    keys = ("dataset", "activation", "lr_ratio", "augmentation")
    parts = [str(c[k]) for k in keys if k in c]
    parts.insert(1, f"w{c.get('width', '?')}")
    return " ".join([*parts, f"seed {c.get('seed', 0)}"])


def _acc(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.2f}%"


def runs_ls(args: argparse.Namespace) -> int:
    with _lab(args) as lab:
        runs = lab.runs(
            status=args.status, sweep=args.sweep, q=args.q, tag=args.tag, sort=args.sort,
            limit=args.limit,
        )  # fmt: skip
    if args.json:
        print(json.dumps([r.raw for r in runs], indent=1))
    elif args.csv:
        sys.stdout.write(runs.to_csv())
    else:
        rows = [("ID", "STATUS", "SWEEP", "EPOCHS", "ACC", "CONFIG", "NAME")]
        rows += [
            (str(r.id), r.status, str(r.sweep_id or ""), f"{r.epochs_done}/{r.epochs_total}",
             _acc(r.final_test_acc), _summary(r), r.name or "")
            for r in runs
        ]  # fmt: skip
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    return OK


def runs_show(args: argparse.Namespace) -> int:
    with _lab(args) as lab:
        run = lab.run(args.id)
    if args.json:
        print(json.dumps(run.raw, indent=1))
        return OK
    print(f"run {run.id}  {run.status}  {run.epochs_done}/{run.epochs_total} epochs")
    for key, value in (("name", run.name), ("sweep", run.sweep_id), ("tags", " ".join(run.tags)),
                       ("final test acc", _acc(run.final_test_acc)),
                       ("best test acc", _acc(run.best_test_acc)), ("error", run.error),
                       ("note", run.note)):  # fmt: skip
        if value:
            print(f"{key}: {value}")
    print("config:")
    for key, value in run.config.items():
        print(f"  {key} = {value}")
    return OK


# -- submitting ------------------------------------------------------------------------------


_TYPES: dict[str, Callable[[str], Any]] = {"integer": int, "number": float, "string": str}


def _boolean(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _converter(prop: dict[str, Any]) -> Callable[[str], Any]:
    kind = prop.get("type")
    if kind == "boolean":
        return _boolean
    return _TYPES.get(kind, str)


def _help(prop: dict[str, Any]) -> str:
    bits = [prop.get("description", "")]
    bounds = [f"{word} {prop[k]}" for k, word in (("minimum", ">="), ("exclusiveMinimum", ">"),
              ("maximum", "<="), ("exclusiveMaximum", "<")) if k in prop]  # fmt: skip
    if bounds:
        bits.append(", ".join(bounds))
    if "default" in prop:
        bits.append(f"default {prop['default']}")
    return "; ".join(b for b in bits if b).replace("%", "%%")


def _config_flags(parser: argparse.ArgumentParser, schema: dict[str, Any]) -> None:
    group = parser.add_argument_group("config fields (from the server's /api/config-schema)")
    for name, prop in schema.get("properties", {}).items():
        flags = [f"--{name.replace('_', '-')}"] + ([f"--{name}"] if "_" in name else [])
        options: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": _help(prop)}
        if prop.get("type") == "boolean":
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = _converter(prop)
            options["metavar"] = prop.get("type", "value").upper()
            if "enum" in prop:
                options["choices"] = prop["enum"]
                options["metavar"] = "{" + ",".join(map(str, prop["enum"])) + "}"
        group.add_argument(*flags, **options)


def _command_parser(prog: str, args: argparse.Namespace, description: str):
    """The command's parser with the config flags of the server it talks to; the Lab."""
    pre = argparse.ArgumentParser(add_help=False)
    _connection_options(pre, None)
    known, _ = pre.parse_known_args(args.rest)
    url = known.url or getattr(args, "url", None)
    token = known.token or getattr(args, "token", None)
    lab = Lab(url, token)
    parser = argparse.ArgumentParser(prog=prog, description=description)
    _connection_options(parser, None)
    try:
        schema = lab.config_schema()
    except LabError as exc:
        if "-h" not in args.rest and "--help" not in args.rest:
            lab.close()
            raise
        schema = {}
        parser.epilog = f"Config flags come from the server, not reachable now: {exc}"
    _config_flags(parser, schema)
    return parser, lab, schema


def _config_of(ns: argparse.Namespace, schema: dict[str, Any]) -> dict[str, Any]:
    return {k: getattr(ns, k) for k in schema.get("properties", {}) if hasattr(ns, k)}


def submit(args: argparse.Namespace) -> int:
    parser, lab, schema = _command_parser(
        "resnet-lab submit", args, "Queue one run; omitted fields take the server's defaults."
    )
    parser.add_argument("--name", help="the run's name")
    parser.add_argument("--tag", action="append", help="a tag (repeat)")
    parser.add_argument("--note", help="a note")
    parser.add_argument("--json", action="store_true", help="print the run as JSON")
    ns = parser.parse_args(args.rest)
    with lab:
        run = lab.submit(_config_of(ns, schema), name=ns.name, tags=ns.tag, note=ns.note)
    print(
        json.dumps(run.raw, indent=1) if ns.json else f"run {run.id} {run.status}: {_summary(run)}"
    )
    return OK


def _factor(schema: dict[str, Any], parser: argparse.ArgumentParser):
    def parse(text: str) -> tuple[str, list[Any]]:
        field, eq, values = text.partition("=")
        field = field.strip().replace("-", "_")
        if not eq or not values:
            raise argparse.ArgumentTypeError(f"{text!r}: use field=value1,value2")
        fields = schema.get("properties", {})
        if fields and field not in fields:
            raise argparse.ArgumentTypeError(f"{field!r} is not a config field")
        prop = fields.get(field, {})
        convert = _converter(prop)
        try:
            return field, [convert(v.strip()) for v in values.split(",")]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{field}: {exc}") from None

    return parse


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use integers like 0,1,2") from None


def grid_submit(args: argparse.Namespace) -> int:
    parser, lab, schema = _command_parser(
        "resnet-lab grid submit",
        args,
        "Queue a sweep: every combination of the --grid values times the seeds; the config "
        "flags set the base of every run.",
    )
    parser.add_argument(
        "--grid", action="append", type=_factor(schema, parser), default=[],
        metavar="FIELD=V1,V2", help="a factor and its values (repeat for more factors)",
    )  # fmt: skip
    parser.add_argument("--preset", choices=["report"], help="the report's 36 cells")
    parser.add_argument("--seeds", type=_seeds, default=[0], help="e.g. 0,1,2 (default 0)")
    parser.add_argument("--name", help="the sweep's name")
    parser.add_argument("--json", action="store_true", help="print the sweep as JSON")
    ns = parser.parse_args(args.rest)
    if not ns.grid and not ns.preset:
        parser.error("give --grid FIELD=V1,V2 (repeatable) or --preset report")
    with lab:
        sweep = lab.submit_grid(
            dict(ns.grid), ns.seeds, base=_config_of(ns, schema), preset=ns.preset, name=ns.name
        )
    if ns.json:
        print(json.dumps(sweep.raw, indent=1))
    else:
        ids = " ".join(map(str, sweep.run_ids))
        print(f"sweep {sweep.id} ({sweep.name}): {len(sweep.run_ids)} runs: {ids}")
    return OK


# -- following -------------------------------------------------------------------------------


def wait(args: argparse.Namespace) -> int:
    if not args.ids and not args.sweep:
        _fail("give run ids or --sweep N")
        return USAGE
    with _lab(args) as lab:
        targets: list[Any] = [*args.ids, *(lab.sweep(s) for s in args.sweep or [])]
        runs = lab.wait(targets, progress=not args.no_progress, timeout=args.timeout)
    for run in runs:
        print(f"run {run.id} {run.status} {_acc(run.final_test_acc)}".rstrip())
    return OK if all(r.status == "succeeded" for r in runs) else RUN_FAILED


def _each(action: str) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        code = OK
        with _lab(args) as lab:
            for run_id in args.ids:
                try:
                    run = getattr(lab, action)(run_id)
                except APIError as exc:
                    if isinstance(exc, Unavailable) or exc.status_code >= 500:
                        raise  # the server's trouble, not this run's: stop here
                    _fail(f"run {run_id}: {exc.message}")
                    code = REFUSED
                    continue
                print(f"run {run.id} {run.status}")
        return code

    return handler


def export(args: argparse.Namespace) -> int:
    with _lab(args) as lab:
        if args.json:
            lab.sweep(args.sweep)  # an unknown sweep is a 404, not an empty list
            text = json.dumps(lab.runs(sweep=args.sweep).rows(), indent=1) + "\n"
        else:
            text = lab.export_csv(args.sweep)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return OK
