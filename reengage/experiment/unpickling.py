"""Reading pickles that earlier versions of the package wrote: a checkpoint keeps loading after a class moves.

A pickle names each class by its module and name. A checkpoint pickles the training environment, so that of a
run trained under observation noise names the noise wrapper and its smoothing settings by the modules that
defined them when it was written. :data:`MOVED_MODULES` maps each such old module to the one that defines those
classes now; :func:`load` and :func:`loads` read checkpoints through it.
"""

from __future__ import annotations

import io
import pickle
from typing import IO, Any

# old module -> the module that defines its classes now (the names of the classes did not change)
MOVED_MODULES = {
    "reengage.robustness.noise": "reengage.observation_noise",
    "reengage.robustness.noise_wrapper": "reengage.noise_wrapper",
}


class _Unpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that finds the classes of moved modules at their new place."""

    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(MOVED_MODULES.get(module, module), name)


def load(handle: IO[bytes]) -> Any:
    """``pickle.load`` (which cloudpickle's output needs, nothing more), old module names included."""
    return _Unpickler(handle).load()


def loads(data: bytes) -> Any:
    """``pickle.loads``, old module names included."""
    return load(io.BytesIO(data))
