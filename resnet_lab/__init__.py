"""Python client of ResNet Lab's REST API: submit runs and grids, wait for them, and read
their results and per-epoch metrics as tables (pandas optional).

    import resnet_lab
    lab = resnet_lab.Lab()  # RESNET_LAB_URL (default http://127.0.0.1:8000), API_TOKEN
"""

from resnet_lab.client import DEFAULT_URL, Lab
from resnet_lab.errors import (
    APIError,
    AuthError,
    Conflict,
    FieldError,
    LabError,
    NotFound,
    ServerError,
    ServerUnreachable,
    Unavailable,
    ValidationError,
    WaitTimeout,
)
from resnet_lab.models import Epoch, Run, Sweep
from resnet_lab.tables import Table

__all__ = [
    "DEFAULT_URL",
    "APIError",
    "AuthError",
    "Conflict",
    "Epoch",
    "FieldError",
    "Lab",
    "LabError",
    "NotFound",
    "Run",
    "ServerError",
    "ServerUnreachable",
    "Sweep",
    "Table",
    "Unavailable",
    "ValidationError",
    "WaitTimeout",
]
