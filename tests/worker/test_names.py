"""The names the web side uses for the worker's code (core.queue: core may not import the
worker package) resolve to that code: a renamed module or task fails here, not in a
queue that silently never trains."""

from __future__ import annotations

import importlib

from app.cli import worker_command
from core.queue import QUEUE, TASKS_MODULE, TRAIN_TASK, WORKER_APP


def test_the_app_module_the_worker_command_names_holds_the_celery_app_with_the_train_task():
    command = worker_command("w@test")
    assert command[command.index("-A") + 1] == WORKER_APP
    assert command[command.index("--queues") + 1] == QUEUE
    module = importlib.import_module(WORKER_APP)
    assert TASKS_MODULE in module.celery_app.conf.include
    importlib.import_module(TASKS_MODULE)  # what the worker loads through include
    task = module.celery_app.tasks[TRAIN_TASK]
    assert task.name == TRAIN_TASK and task.__module__ == TASKS_MODULE
    assert module.celery_app.conf.task_default_queue == QUEUE
