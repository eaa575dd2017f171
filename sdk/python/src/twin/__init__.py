"""Twin: differentiable digital twins from Python.

Load sandboxed models (:class:`Model`), execution graphs (:class:`Graph`)
and twin-compose files (:class:`Twin`), run them and differentiate them
with numpy arrays in and out, and read MCAP traces (:class:`Trace`).
Errors of the C library arrive as :class:`TwinError` and its subclasses.

The C library ``libtwin.so`` is loaded through ctypes on first use; see
:func:`library_path` and the README for where it is looked for.
"""

from __future__ import annotations

from . import losses
from ._native import find_library as _find_library
from .errors import (
    Diagnostic,
    InvalidArgument,
    LimitExceeded,
    ModelTrap,
    NotFoundError,
    NotSupported,
    ParseError,
    TwinError,
    ValidationError,
)
from .graph import Graph, Twin
from .losses import Loss, mse, sse
from .model import Model
from .trace import Trace

__version__ = "0.1.0"

__all__ = [
    "Model", "Graph", "Twin", "Trace", "Loss", "mse", "sse", "losses",
    "TwinError", "ValidationError", "ModelTrap", "LimitExceeded",
    "NotFoundError", "InvalidArgument", "ParseError", "NotSupported",
    "Diagnostic", "library_path", "alloc_live",
]


def library_path() -> str:
    """The path of the loaded libtwin.so (loading it if needed)."""
    from . import _native

    return _native.lib_path()


def alloc_live() -> int:
    """Allocations the C library holds now (tw_alloc_live): for leak checks."""
    from . import _native

    return int(_native.lib().tw_alloc_live())
