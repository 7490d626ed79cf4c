"""Process-wide tuning for a serving process (`insights dev`, `insights serve <name>`)."""

from __future__ import annotations

import gc

# Collect young objects after 50,000 net allocations instead of 700. The services allocate
# events, documents and responses by the thousand for each batch; with the default the
# collector ran every few events and walked them all again, and took half of the projector's
# CPU. Cycles (tracebacks, closed connections) are still collected, only later.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_garbage_collector() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


def freeze_startup_objects() -> None:
    """Exempt what start-up built (modules, schemas, routes) from every later collection."""
    gc.collect()
    gc.freeze()
