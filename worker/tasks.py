"""The one task: train a run. Like a web view, it loads the row, calls the library,
records the outcome; the heavy lifting is `trainer.train` (or `trainer.packed.train_packed`
when the worker packs compatible queued runs together: `resnet-lab worker --pack K`)."""

from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from celery.signals import worker_shutting_down
from sqlalchemy import case, select

from core import lifecycle, worker_registry
from core.config import Settings, get_settings
from core.crashes import Breadcrumb
from core.db import ACTIVE, Run, RunStatus, new_session
from core.queue import ring
from core.store import Store, open_store
from trainer.checkpoint import CheckpointWriteError
from trainer.config import TrainConfig, pack_key
from trainer.results import EpochMetrics, RunResult
from worker import faults
from worker.celery_app import TRAIN_TASK, celery_app
from worker.epochs import EpochsNotRecorded, database_problem, give_up
from worker.heartbeat import Heartbeat, Watch
from worker.identity import worker_name
from worker.runlog import RunLogHandler

log = logging.getLogger(__name__)

# Set when the worker is asked to shut down (SIGTERM, Ctrl-C): the run in progress stops
# between batches and goes back to the queue, instead of holding the shutdown for hours.
shutting_down = threading.Event()

# How many queued runs a packing worker looks through for companions of the run it took.
COMPANION_SCAN = 200

# Where training is, for the supervisor to read if this process dies (core.crashes).
breadcrumb = Breadcrumb.from_env()


@worker_shutting_down.connect
def _on_shutdown(**_kwargs) -> None:
    shutting_down.set()


@celery_app.task(name=TRAIN_TASK)
def train_run(run_id: int) -> str:
    return run_one(int(run_id))


@dataclass
class Member:
    """A run this worker owns, with what training it needs."""

    run_id: int
    owner: lifecycle.Owner
    config: TrainConfig
    checkpoint_dir: Path | None = None  # this host's copy, once pulled from the store


class StopCheck:
    """A run's should_stop: cancel, takeover or shutdown, read from flags the heartbeat
    thread sets. After a gap long enough for another worker to have taken the run over (this
    process was stopped, or swapped out), ownership is checked in the database before the
    trainer goes on, so a woken worker never writes a checkpoint over the new owner's.
    While the database is out of reach that check is skipped (the checkpoint fence and the
    next heartbeat still catch a takeover), and once the epochs cannot be recorded any more
    (worker.epochs) it raises the reason, which stops training."""

    def __init__(self, member: Member, beat: Heartbeat, verify_after: float, pause=None):
        self.member = member
        self.beat = beat
        self.verify_after = verify_after
        self.last_call: float | None = None
        self.pause = pause  # test only: worker.faults' "pause:N"
        self.publishing = 0  # checkpoints this process has come to publish for the run

    def __call__(self) -> bool:
        self.beat.watch.training_started()
        self.beat.epochs.check()
        run_id = self.member.run_id
        now = time.monotonic()
        if self.last_call is not None and now - self.last_call > self.verify_after:
            self._verify(run_id)
        self.last_call = now
        return self.beat.stop_requested[run_id].is_set() or shutting_down.is_set()

    def _verify(self, run_id: int) -> None:
        try:
            with new_session() as session:
                owned = lifecycle.owns(session, run_id, self.member.owner)
        except Exception as exc:
            if database_problem(exc) is None:
                raise
            log.info("run %s: ownership not checked (database unreachable); going on", run_id)
            return  # no news: keep going
        if not owned:
            self.beat.lose(run_id)

    def may_publish(self) -> bool:
        """The fence of every checkpoint write: asked in the database right before the file
        is published, so that a worker that lost the run (paused, then woken) writes none."""
        run_id = self.member.run_id
        self.publishing += 1
        if self.pause is not None:
            self.pause(self.publishing)
        owned = not self.beat.superseded[run_id].is_set()
        if owned:
            try:
                with new_session() as session:
                    owned = lifecycle.owns(session, run_id, self.member.owner)
            except Exception as exc:  # unverifiable: keep the last checkpoint, not risk it
                log.warning("run %s: ownership unknown (database unreachable); checkpoint "
                            "not published", run_id,
                            exc_info=database_problem(exc) is None)  # fmt: skip
                return False
        if not owned:
            log.warning("run %s was taken over; this worker publishes no checkpoint", run_id)
            self.beat.lose(run_id)
        return owned


def run_one(run_id: int) -> str:
    """Train one run (with its pack companions, if packing) to the end; returns what became
    of the run the task named (for logs and tests)."""
    settings = get_settings()
    if shutting_down.is_set():
        ring([run_id])  # taken while shutting down: leave it to the next worker
        return "requeued"
    store = open_store(settings)
    with new_session() as session:
        first = _claim(session, run_id, settings, store)
        if not isinstance(first, Member):
            return first
        members = [first]
        if settings.pack > 1:
            members += _claim_companions(session, first, settings, store)
        worker_registry.worker_took(session, worker_name(), run_id)

    # The run page says which runs trained together (environment["pack"]).
    pack = ",".join(str(m.run_id) for m in members) if len(members) > 1 else None
    watch = Watch()
    logs = RunLogHandler()
    beat = Heartbeat(
        {m.run_id: m.owner for m in members},
        watch,
        interval=settings.heartbeat_interval,
        stall_timeout=settings.stall_timeout,
        logs=logs,
    )
    with logs:
        return _train_members(members, pack, settings, store, watch, beat)


def _train_members(members, pack, settings, store: Store, watch: Watch, beat: Heartbeat) -> str:
    """Train the claimed runs to the end and record what became of each; returns the
    outcome of the run the task named."""
    _announce(members, beat)
    hooks = _Hooks(members, beat, watch, store, settings)
    outcomes: dict[int, str] = {}

    def on_leave(i: int, result: RunResult) -> None:
        # A member that leaves a pack is recorded at once: it gets no heartbeat after.
        outcomes[i] = _record_outcome(members[i], result, beat, pack)
        beat.finished.add(members[i].run_id)

    try:
        _record_environment(members, pack)
        # With a remote RUNS_DIR: this host's copy of the published checkpoints, under the
        # heartbeat so that a long download does not look like a dead worker.
        for m in members:
            m.checkpoint_dir = store.pull(m.run_id)
        results = _train(members, settings, hooks, on_leave)
    except Exception as exc:
        return _stopped_by(exc, members)
    finally:
        beat.close()
        breadcrumb.clear()
    for i, result in enumerate(results):
        if i not in outcomes:
            outcomes[i] = _record_outcome(members[i], result, beat, pack)
    return outcomes[0]


def _announce(members: list[Member], beat: Heartbeat) -> None:
    """The attempt's first log line, the breadcrumb a crash leaves, and the heartbeat."""
    first = members[0]
    log.info(
        "runs %s: attempt %s on %s, training %s",
        [m.run_id for m in members],
        first.owner.attempt,
        first.owner.worker,
        first.config.model_dump_json() if len(members) == 1 else f"a pack of {len(members)}",
    )
    breadcrumb.start([(m.run_id, m.owner.worker, m.owner.attempt) for m in members])
    beat.start()


def _record_environment(members: list[Member], pack: str | None) -> None:
    """The run page shows what it trains on from the start."""
    from trainer.precision import describe_environment, select_runtime

    environment = describe_environment(select_runtime(members[0].config))
    if pack is not None:
        environment["pack"] = pack
    with new_session() as session:
        for m in members:
            lifecycle.set_environment(session, m.run_id, environment, m.owner)


class _Hooks:
    """What the trainer calls back for member i: progress, epochs, stops, checkpoints."""

    def __init__(self, members, beat: Heartbeat, watch: Watch, store: Store, settings) -> None:
        self.members, self.beat, self.watch, self.store = members, beat, watch, store
        pause = faults.pause_injector(settings.test_fault, settings.home_dir)
        self.checks = [StopCheck(m, beat, settings.heartbeat_timeout / 2, pause) for m in members]
        self.inject = faults.injector(settings.test_fault, settings.home_dir)

    def on_batch(self, epoch: int, batch: int, batches: int) -> None:
        self.watch.batch_done()
        breadcrumb.at(epoch, batch, batches)
        if self.inject is not None:  # counted from the run's start: a resumed run hits it too
            self.inject((epoch - 1) * batches + batch)

    def on_epoch(self, i: int, metrics: EpochMetrics) -> None:
        member = self.members[i]
        log.info(
            "run %s epoch %s/%s: test accuracy %.4f, train loss %.4f, %.0f images/s",
            member.run_id, metrics.epoch, member.config.epochs, metrics.test_acc,
            metrics.train_loss, metrics.images_per_second,
        )  # fmt: skip
        # Recorded now, with the log lines so far; kept in memory while the database is out
        # of reach (worker.epochs), and training goes on.
        self.beat.epochs.add(member.run_id, member.owner, metrics)

    def should_stop(self, i: int) -> bool:
        return self.checks[i]()

    def may_checkpoint(self, i: int) -> bool:
        return self.checks[i].may_publish()

    def publish(self, i: int, path: Path) -> None:
        # Right after the fence let the file through, before the next epoch: a successor on
        # another host resumes from it.
        self.store.push(self.members[i].run_id, path.parent)


def _stopped_by(exc: Exception, members: list[Member]) -> str:
    """What an exception out of training makes of the runs: kept for a resume when the
    database is out of reach, failed with the reason otherwise."""
    ids = [m.run_id for m in members]
    if isinstance(exc, EpochsNotRecorded):  # out of reach past DB_OUTAGE_GRACE, or disk full
        give_up(exc, [(m.run_id, m.owner) for m in members])
        return "stopped"
    if isinstance(exc, CheckpointWriteError):
        log.error("runs %s: %s", ids, exc)
        message = (
            f"{exc}\n\nThe epochs trained so far are kept; free some space and retry the run "
            "to resume from its last checkpoint."
        )
    elif database_problem(exc) is not None:  # marking them failed would fail too
        log.exception("runs %s stopped: the database cannot be written; a worker resumes "
                      "them once it can", ids, exc_info=exc)  # fmt: skip
        return "stopped"
    else:
        log.error("runs %s failed", ids, exc_info=exc)
        trace = "".join(traceback.format_exception(exc, limit=8))
        message = f"{type(exc).__name__}: {exc}\n\n{trace}"
    with new_session() as session:
        for m in members:
            lifecycle.fail(session, m.run_id, message, m.owner)  # refused once finished
    return "failed"


def _claim(session, run_id: int, settings: Settings, store: Store) -> Member | str:
    run = session.get(Run, run_id)
    if run is None:
        return "missing"
    if run.cancel_requested and run.status in ACTIVE:
        lifecycle.mark_cancelled(session, run_id)
        return "cancelled"
    # A redelivered task for a run another worker is still beating on exits here.
    owner = lifecycle.claim(session, run_id, worker_name(), settings.heartbeat_timeout)
    if owner is None:
        return "skipped"
    lifecycle.set_checkpoint(session, run_id, store.location(run_id), owner)
    return Member(run_id, owner, TrainConfig.model_validate(run.config))


def _claim_companions(session, first: Member, settings: Settings, store: Store) -> list[Member]:
    """Up to pack - 1 more queued runs that can train in one network with `first`, claimed
    with the same compare-and-set as any task; their own queue messages then find them
    taken and do nothing. Runs with `first`'s activation come first (a pack of one
    activation applies it whole at every site; a mixed one slices and joins there), then
    the others; in id order within each."""
    key, activation = pack_key(first.config), _activation(first.config)
    queued = session.execute(
        select(Run.id, Run.config)
        .where(Run.status == RunStatus.queued, Run.cancel_requested.is_(False))
        .order_by(case((Run.activation == first.config.activation, 0), else_=1), Run.id)
        .limit(COMPANION_SCAN)
    ).all()
    candidates = []
    for run_id, config in queued:
        config = TrainConfig.model_validate(config)
        if run_id != first.run_id and pack_key(config) == key:
            candidates.append((_activation(config) != activation, run_id))
    companions: list[Member] = []
    for _, run_id in sorted(candidates):
        if len(companions) == settings.pack - 1:
            break
        member = _claim(session, run_id, settings, store)
        if isinstance(member, Member):
            companions.append(member)
    return companions


def _activation(config: TrainConfig) -> tuple[str, float | None]:
    """The activation as a function (trainer.packed_model.same_function, without torch)."""
    slope = config.leaky_relu_slope if config.activation == "leaky_relu" else None
    return config.activation, slope


def _train(members, settings, hooks: _Hooks, on_leave) -> list[RunResult]:
    common = dict(
        on_batch=hooks.on_batch,
        checkpoint_seconds=settings.checkpoint_seconds,
        data_dir=settings.resolved_data_dir,
    )
    if len(members) == 1:
        from trainer.loop import train  # torch loads here, in the worker only

        result = train(
            members[0].config,
            on_epoch=lambda metrics: hooks.on_epoch(0, metrics),
            should_stop=lambda: hooks.should_stop(0),
            checkpoint_dir=members[0].checkpoint_dir,
            on_checkpoint=lambda path: hooks.publish(0, path),
            may_checkpoint=lambda: hooks.may_checkpoint(0),
            **common,
        )
        return [result]
    from trainer.packed import train_packed

    return train_packed(
        [m.config for m in members],
        on_epoch=hooks.on_epoch,
        should_stop=hooks.should_stop,
        on_leave=on_leave,
        checkpoint_dirs=[m.checkpoint_dir for m in members],
        on_checkpoint=hooks.publish,
        may_checkpoint=hooks.may_checkpoint,
        **common,
    )


def _record_outcome(member: Member, result: RunResult, beat: Heartbeat, pack: str | None) -> str:
    run_id, owner = member.run_id, member.owner
    try:
        beat.epochs.drain(run_id)  # the epochs an outage kept in memory come first
    except EpochsNotRecorded as exc:
        give_up(exc, [(run_id, owner)])
        return "stopped"
    if pack is not None:
        result.environment["pack"] = pack
    if beat.superseded[run_id].is_set():
        log.warning("run %s was taken over by another worker; leaving it to them", run_id)
        return "superseded"
    with new_session() as session:
        # Idempotent: fills in an epoch whose write a crash interrupted in an earlier attempt.
        for metrics in result.epochs:
            if not lifecycle.record_epoch(session, run_id, metrics, owner):
                return "superseded"
        if result.stopped_early and shutting_down.is_set():
            if lifecycle.cancel_requested(session, run_id):
                lifecycle.finish(session, run_id, result, owner)
                return "cancelled"
            # Not the user's stop: the next worker resumes it from the last checkpoint.
            if lifecycle.requeue(session, run_id, (RunStatus.running,), owner.condition()):
                ring([run_id])  # the broker may be down: the doorbell sends it later
            return "requeued"
        if not lifecycle.finish(session, run_id, result, owner):
            return "superseded"
    return "cancelled" if result.stopped_early else "succeeded"
