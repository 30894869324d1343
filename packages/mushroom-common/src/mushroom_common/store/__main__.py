"""`python -m mushroom_common.store upgrade|prune` (the same as `mushroom-db`)."""

from mushroom_common.store.cli import app

app()
