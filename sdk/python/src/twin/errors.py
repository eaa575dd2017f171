"""Exceptions: every failure of the C library as a Python exception that
carries its code and message.

Codes map to classes as follows (the rest are :class:`TwinError`)::

    TW_EVALIDATE            ValidationError (with .diagnostics)
    TW_ETRAP                ModelTrap
    TW_ELIMIT, TW_ETIMEDOUT LimitExceeded
    TW_ENOENT               NotFoundError (also a FileNotFoundError)
    TW_EINVAL, TW_ERANGE,
    TW_ETYPE, TW_EUNIT      InvalidArgument (also a ValueError)
    TW_EPARSE               ParseError
    TW_ENOTSUP              NotSupported
"""

from __future__ import annotations

from dataclasses import dataclass
import re
from typing import List, Optional, Sequence

from . import _native


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in a graph or twin file, with its place.

    ``line`` and ``col`` are 0 when the problem has no place (a file
    that cannot be read). ``code`` is the stable code of twin-compose
    diagnostics ("unit", "causality", ...) and "" for graph files."""

    file: str
    line: int
    col: int
    severity: str  # "error" or "warning"
    message: str
    code: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.severity}: {self.message}"


class TwinError(Exception):
    """A failure reported by the Twin library.

    Attributes:
        code: the negative TW_E* code (``-15`` for a trap).
        name: its symbolic name without ``TW_`` (``"ETRAP"``).
        message: the library's message, naming the thing and the place.
    """

    def __init__(self, message: str, code: int = -26, name: str = "EINTERNAL"):
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"


class ValidationError(TwinError):
    """A graph or twin file that does not validate; ``diagnostics`` lists
    every problem (:class:`Diagnostic`), not only the first."""

    def __init__(self, message: str, code: int = -22, name: str = "EVALIDATE",
                 diagnostics: Sequence[Diagnostic] = ()):
        super().__init__(message, code, name)
        self.diagnostics: List[Diagnostic] = list(diagnostics)

    def __str__(self) -> str:
        lines = [super().__str__()]
        lines += [str(d) for d in self.diagnostics]
        return "\n".join(lines)


class ModelTrap(TwinError):
    """A sandboxed model trapped (unreachable, out-of-bounds access, stack
    overflow, ...). The model's sandbox is replaced; the process is fine."""


class LimitExceeded(TwinError):
    """A fuel, time, memory or CPU limit stopped the work."""


class NotFoundError(TwinError, FileNotFoundError):
    """A file, channel or object that does not exist."""


class InvalidArgument(TwinError, ValueError):
    """An argument or value the library refused."""


class ParseError(TwinError):
    """Malformed input: not JSON, not WebAssembly, not MCAP, ..."""


class NotSupported(TwinError):
    """The operation is not supported (e.g. a gradient through a block
    that is not differentiable)."""


_BY_NAME = {
    "EVALIDATE": ValidationError,
    "ETRAP": ModelTrap,
    "ELIMIT": LimitExceeded,
    "ETIMEDOUT": LimitExceeded,
    "ENOENT": NotFoundError,
    "EINVAL": InvalidArgument,
    "ERANGE": InvalidArgument,
    "ETYPE": InvalidArgument,
    "EUNIT": InvalidArgument,
    "EPARSE": ParseError,
    "ENOTSUP": NotSupported,
}


def error_for(code: int, message: str,
              diagnostics: Sequence[Diagnostic] = ()) -> TwinError:
    """The exception for a C error code and message."""
    lib = _native.lib()
    name = _native.text(lib.tw_err_name(code))
    if not message:
        message = _native.text(lib.tw_strerror(code))
    cls = _BY_NAME.get(name, TwinError)
    if cls is ValidationError:
        return ValidationError(message, code, name, diagnostics)
    return cls(message, code, name)


def raise_err(rc: int, err: "_native.TwErr",
              diagnostics: Sequence[Diagnostic] = ()) -> None:
    """Raises the exception for rc and the message in err, then resets err
    so the object can be used again (the first error wins in a tw_err)."""
    msg = _native.text(err.msg) if err.code != 0 else ""
    err.code = 0
    err.msg = b""
    raise error_for(rc, msg, diagnostics)


_DIAG = re.compile(r"^(.*?):(\d+):(\d+): (error|warning): (.*)$")


def parse_diagnostics(text: str) -> List[Diagnostic]:
    """Diagnostics from "FILE:LINE:COL: error: MESSAGE" lines."""
    out: List[Diagnostic] = []
    for line in text.splitlines():
        m = _DIAG.match(line)
        if m:
            out.append(Diagnostic(m.group(1), int(m.group(2)), int(m.group(3)),
                                  m.group(4), m.group(5)))
        elif line.strip():
            out.append(Diagnostic("", 0, 0, "error", line.strip()))
    return out
