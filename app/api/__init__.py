"""The REST API, one router per resource, gathered in `router`."""

from fastapi import APIRouter

from app.api import bulk, datasets, events, groups, health, metrics, runs, sweeps, workers

router = APIRouter()
router.include_router(health.router)
# /api/runs/bulk, /groups and /scatter before /api/runs/{run_id}, which would take them.
router.include_router(bulk.router)
router.include_router(groups.router)
router.include_router(runs.router)
router.include_router(sweeps.router)
router.include_router(events.router)
router.include_router(datasets.router)
router.include_router(workers.router)
router.include_router(metrics.router)
