"""Losses over a graph's outputs that are computed in C.

A gradient calls its loss at every tick, forward and in reverse. A loss
written in Python would take the GIL back at each of those calls; the
losses here are squared errors against target arrays that the C library
evaluates itself (``tw_graph_sqerr``), so a gradient runs from start to
end without entering Python.

Build them with :func:`mse` and :func:`sse`, add them with ``+`` and
scale them with ``*``::

    loss = twin.mse("x", x_measured) + 0.1 * twin.mse("v", v_measured)
    value, grads = graph.grad(ticks, loss, wrt=["plant.k", "plant.c"])

A NaN in a target is a missing sample: it adds nothing to the loss or the
gradient (and is not counted by :func:`mse`'s mean).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple, Union

import numpy as np

from . import _native
from .errors import InvalidArgument

Target = Union[float, np.ndarray, Sequence[float], Sequence[Sequence[float]]]


@dataclass(frozen=True)
class _Term:
    output: str
    target: Any
    weight: float
    mean: bool


class Loss:
    """A weighted sum of squared errors of graph outputs against targets:
    ``sum over terms of weight * sum_or_mean over ticks and components of
    (y - target)^2``."""

    def __init__(self, terms: Sequence[_Term]):
        self.terms: List[_Term] = list(terms)

    def __add__(self, other: "Loss") -> "Loss":
        if not isinstance(other, Loss):
            return NotImplemented
        return Loss(self.terms + other.terms)

    def __mul__(self, scale: float) -> "Loss":
        s = float(scale)
        return Loss([_Term(t.output, t.target, t.weight * s, t.mean) for t in self.terms])

    __rmul__ = __mul__

    def __repr__(self) -> str:
        parts = [f"{t.weight:g}*{'mse' if t.mean else 'sse'}({t.output!r})"
                 for t in self.terms]
        return f"<twin.Loss {' + '.join(parts)}>"

    def bind(self, outputs: Dict[str, Tuple[int, int]], width: int, ticks: int
             ) -> Tuple["_native.GraphSqerr", Tuple[np.ndarray, np.ndarray]]:
        """The C description of this loss for a graph whose output rows
        have width values ((offset, size) of each output by name) over
        ticks ticks, with the arrays it borrows (keep them alive)."""
        target = np.zeros((ticks, width))
        weight = np.zeros(width)
        seen = set()
        for t in self.terms:
            if t.output not in outputs:
                raise InvalidArgument(
                    f"loss: the graph has no output '{t.output}' (outputs: "
                    f"{', '.join(outputs) or 'none'})", -2, "EINVAL")
            if t.output in seen:
                raise InvalidArgument(
                    f"loss: output '{t.output}' appears in two terms; combine "
                    "them into one target", -2, "EINVAL")
            seen.add(t.output)
            off, size = outputs[t.output]
            rows = _rows(t.target, size, ticks, t.output)
            target[:, off:off + size] = rows
            w = t.weight
            if t.mean:
                n = int(np.count_nonzero(~np.isnan(rows)))
                w = w / n if n else 0.0
            weight[off:off + size] = w
        s = _native.GraphSqerr(width, ticks, target.ctypes.data, weight.ctypes.data)
        return s, (target, weight)


def _rows(value: Target, size: int, ticks: int, name: str) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.ndim == 0:
        return np.full((ticks, size), float(a))
    if a.ndim == 1 and size == 1:
        a = a.reshape(-1, 1)
    if a.ndim != 2 or a.shape[1] != size:
        raise InvalidArgument(
            f"loss: the target of '{name}' needs shape (ticks, {size})"
            f"{' or (ticks,)' if size == 1 else ''} or a number, got {a.shape}",
            -2, "EINVAL")
    if a.shape[0] < ticks:
        raise InvalidArgument(
            f"loss: the target of '{name}' has {a.shape[0]} rows, the gradient "
            f"runs {ticks} ticks", -2, "EINVAL")
    return a[:ticks]


def mse(output: str, target: Target = 0.0, weight: float = 1.0) -> Loss:
    """weight times the mean over ticks and components of
    (output - target)^2; target of shape (ticks,) for an output of size 1,
    (ticks, size), or a number (constant); it may hold more rows than the
    gradient's ticks (the first ones are used)."""
    return Loss([_Term(output, target, float(weight), True)])


def sse(output: str, target: Target = 0.0, weight: float = 1.0) -> Loss:
    """weight times the sum over ticks and components of
    (output - target)^2 (target as for :func:`mse`)."""
    return Loss([_Term(output, target, float(weight), False)])


def energy(output: str) -> Loss:
    """1/2 the sum over ticks of |output|^2: the loss of ``twin graph grad
    --loss OUTPUT``."""
    return sse(output, 0.0, 0.5)


def coerce(spec: Any) -> Any:
    """A Loss from the shorthand forms Graph.grad accepts: a Loss; an output
    name (:func:`energy`); a tuple ("mse"|"sse", output, target[, weight]);
    a list of those (summed). Anything else is returned unchanged (a
    Python callable)."""
    if isinstance(spec, Loss):
        return spec
    if isinstance(spec, str):
        return energy(spec)
    if isinstance(spec, tuple) and spec and isinstance(spec[0], str) \
            and spec[0] in ("mse", "sse"):
        if len(spec) not in (2, 3, 4):
            raise InvalidArgument(
                "loss: a tuple is (\"mse\"|\"sse\", output, target[, weight])",
                -2, "EINVAL")
        fn = mse if spec[0] == "mse" else sse
        return fn(*spec[1:])
    if isinstance(spec, list) and spec:
        total = coerce(spec[0])
        for s in spec[1:]:
            total = total + coerce(s)
        return total
    return spec
