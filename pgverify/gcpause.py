"""Pause Python's cyclic garbage collector while millions of small, acyclic objects are made.

Loading a large case and presenting its results build millions of small objects that are kept;
the collector would walk them again and again (a third of the time at 10^6 transitions) and find
nothing to free.  Reference counting still frees everything as usual.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager

__all__ = ["gc_paused"]


@contextmanager
def gc_paused():
    """Disable the cyclic collector inside the block (restored as it was)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
