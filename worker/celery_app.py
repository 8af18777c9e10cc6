"""The Celery app the workers run (built in core.queue, like the web app's). Start a worker
with `resnet-lab worker` or `celery -A worker.celery_app worker`."""

from __future__ import annotations

import faulthandler
import sys

from core.queue import TRAIN_TASK, celery
from worker import recovery

# A crash in native code prints every thread's Python stack to the real stderr (Celery
# redirects sys.stderr later), where the supervisor keeps it for the run's log.
faulthandler.enable(file=sys.__stderr__, all_threads=True)

__all__ = ["TRAIN_TASK", "app", "celery_app"]

celery_app = celery()
app = celery_app
recovery.connect_signals()
