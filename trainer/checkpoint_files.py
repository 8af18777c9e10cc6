"""A checkpoint folder's files, newest first: what trainer.checkpoint writes and what the
web app and the store look for (this module needs no torch)."""

LAST = "last.pt"
PREV = "prev.pt"
CHECKPOINT_NAMES = (LAST, PREV)
