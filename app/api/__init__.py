"""The REST API, one router per resource, gathered in `router`."""

from fastapi import APIRouter

from app.api import datasets, events, health, runs, sweeps

router = APIRouter()
router.include_router(health.router)
router.include_router(runs.router)
router.include_router(sweeps.router)
router.include_router(events.router)
router.include_router(datasets.router)
