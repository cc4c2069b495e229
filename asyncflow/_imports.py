"""The lock that asyncflow's imports on first use take.

``import asyncflow`` loads almost nothing: the client, the runtime and the command line are
imported when first used, possibly by several threads at the same moment. Some of those
packages import each other's modules in a circle while they load, which Python's per-module
import locks report as ``_DeadlockError`` (or show as a partly initialised module) when two
threads start loading them at once. Every first-use import of a package from outside it takes
this one lock, so those loads happen one after the other.
"""

from __future__ import annotations

import threading

__all__ = ["IMPORTS"]

#: Held around each first-use import (re-entrant: such an import may trigger another).
IMPORTS = threading.RLock()
