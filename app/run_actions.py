"""What a person does to a run that takes more than a state change, shared by the single-run
and the bulk routes."""

from __future__ import annotations

from core import lifecycle
from core.store import Store


def remove_run(session, store: Store, run_id: int) -> bool:
    """Deletes a run that is not queued or running, with its metrics and its checkpoint;
    False (nothing deleted) while it is."""
    if not lifecycle.delete_run(session, run_id):
        return False
    store.delete(run_id)
    return True
