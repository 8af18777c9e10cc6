"""The REST API, one router per resource, gathered in `router`."""

from fastapi import APIRouter

from app.api import datasets, events, health, metrics, runs, sweeps, workers

router = APIRouter()
router.include_router(health.router)
router.include_router(runs.router)
router.include_router(sweeps.router)
router.include_router(events.router)
router.include_router(datasets.router)
router.include_router(workers.router)
router.include_router(metrics.router)
