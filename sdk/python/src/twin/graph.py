"""Execution graphs and twins: load, run, differentiate.

:class:`Graph` wraps an execution graph (JSON IR or .twg text; builtin
blocks, wasm models, sub-graphs). :class:`Twin` is a twin-compose file
compiled to one, with its profile, parameter overlays and recorded
sources. Both run for a number of ticks and return their outputs as numpy
arrays, compute gradients of a loss with respect to parameters by the
discrete adjoint, and expose their parameters as numpy arrays.

Runs and gradients release the GIL. A loss given as a Python callable is
called at every tick of the gradient with the GIL taken back; the losses
of :mod:`twin.losses` run in C and never enter Python.

Thread safety: a Graph may be shared by threads; its calls are
serialised by a lock.
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
import weakref
from collections.abc import MutableMapping
from typing import (Any, Callable, Dict, Iterator, List, Mapping, NamedTuple,
                    Optional, Sequence, Tuple, Union)

import numpy as np

from . import _native, _runtime, losses
from .errors import (Diagnostic, InvalidArgument, ValidationError, error_for,
                     parse_diagnostics, raise_err)

PathLike = Union[str, os.PathLike]
Inputs = Union[None, PathLike, np.ndarray, Mapping[str, Any]]

_DTYPES = ("f64", "f32", "i64", "i32", "bool")
_SEGMENT = 4096  # ticks per piece of a traced run
_ECANCELED = -14


class Port(NamedTuple):
    """A graph input or output: name, values per tick, unit, dtype."""

    name: str
    size: int
    unit: str
    dtype: str


def _limits(fuel: Optional[int], timeout_ms: Optional[int]) -> "_native.WasmLimits":
    for what, v in (("fuel", fuel), ("timeout_ms", timeout_ms)):
        if v is not None and (not isinstance(v, (int, np.integer)) or v < 0):
            raise InvalidArgument(f"{what} must be a non-negative integer, not {v!r}",
                                  -2, "EINVAL")
    if timeout_ms is not None and timeout_ms >= 1 << 32:
        raise InvalidArgument("timeout_ms is too large", -2, "EINVAL")
    return _native.WasmLimits(fuel or 0, timeout_ms or 0, 0)


def _check_ticks(ticks: Any) -> int:
    if isinstance(ticks, bool) or not isinstance(ticks, (int, np.integer)) or ticks < 1:
        raise InvalidArgument(f"ticks must be a positive integer, not {ticks!r}",
                              -2, "EINVAL")
    if ticks >= 1 << 40:
        raise InvalidArgument(f"ticks: {ticks} is too many", -2, "EINVAL")
    return int(ticks)


def _free_graph(ptr: int, keep: Any) -> None:
    _native.lib().tw_graph_free(ptr)
    del keep  # the engine and context outlive the graph


def _free_compose(ptr: int, keep: Any) -> None:
    _native.lib().tw_compose_free(ptr)
    del keep


class Parameters(MutableMapping):
    """The parameters of a graph as a mapping of "block.param" to a numpy
    array (a copy); assigning writes through to the graph, whose runs and
    gradients then use the new values. Keys cannot be deleted."""

    def __init__(self, graph: "Graph"):
        self._g = graph

    def __getitem__(self, name: str) -> np.ndarray:
        off, size = self._g._port(name)
        return self._g.parameter_vector[off:off + size].copy()

    def __setitem__(self, name: str, value: Any) -> None:
        self.update({name: value})

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Sets several parameters at once (one write to the graph)."""
        new = dict(*args, **kwargs)
        vec = self._g.parameter_vector
        for name, value in new.items():
            off, size = self._g._port(name)
            a = np.asarray(value, dtype=np.float64).reshape(-1)
            if a.size not in (1, size):
                raise InvalidArgument(
                    f"parameter '{name}' has {size} values, got {a.size}", -2, "EINVAL")
            vec[off:off + size] = a
        self._g.parameter_vector = vec

    def __delitem__(self, name: str) -> None:
        raise TypeError("graph parameters cannot be deleted")

    def __iter__(self) -> Iterator[str]:
        return iter(self._g._params)

    def __len__(self) -> int:
        return len(self._g._params)

    def __repr__(self) -> str:
        vec = self._g.parameter_vector
        items = ", ".join(f"{n!r}: {vec[o:o + s].tolist()}"
                          for n, (o, s) in self._g._params.items())
        return "{" + items + "}"


class Graph:
    """An execution graph. Make one with :meth:`Graph.load` or
    :meth:`Graph.parse`."""

    def __init__(self) -> None:
        raise TypeError("use twin.Graph.load(path)")

    # --- loading ------------------------------------------------------------

    @staticmethod
    def _opts(fuel: Optional[int], timeout_ms: Optional[int], store: Optional[PathLike]
              ) -> Tuple["_native.GraphOpts", Any]:
        engine = _runtime.engine()
        ctx = _runtime.context()
        store_b = os.fsencode(store) if store is not None else None
        o = _native.GraphOpts(ctx.ptr, engine.ptr, _limits(fuel, timeout_ms), store_b)
        return o, (engine, ctx, store_b)

    @classmethod
    def load(cls, path: PathLike, *, fuel: Optional[int] = None,
             timeout_ms: Optional[int] = None, store: Optional[PathLike] = None
             ) -> "Graph":
        """Loads and validates the graph file at path (JSON IR, or .twg).

        Args:
            path: the graph file; wasm models and sub-graphs are found
                relative to its directory.
            fuel, timeout_ms: limits of each call of each wasm block.
            store: the model store of "wasm:sha256:..." blocks.

        Raises:
            ValidationError: with every problem in ``.diagnostics``.
            ParseError: not JSON (with the position).
            NotFoundError: no such file.
        """
        o, keep = cls._opts(fuel, timeout_ms, store)
        lib = _native.lib()
        diags = _native.TwBuf()
        err = _native.TwErr()
        ptr = ctypes.c_void_p()
        rc = lib.tw_graph_load(os.fsencode(path), ctypes.byref(o), ctypes.byref(diags),
                               ctypes.byref(ptr), ctypes.byref(err))
        return cls._finish_load(rc, ptr, diags, err, keep)

    @classmethod
    def parse(cls, text: str, *, source: str = "<string>", base_dir: PathLike = ".",
              fuel: Optional[int] = None, timeout_ms: Optional[int] = None,
              store: Optional[PathLike] = None) -> "Graph":
        """Loads a graph from its JSON text; source names it in
        diagnostics and base_dir resolves relative wasm paths."""
        o, keep = cls._opts(fuel, timeout_ms, store)
        lib = _native.lib()
        data = text.encode()
        diags = _native.TwBuf()
        err = _native.TwErr()
        ptr = ctypes.c_void_p()
        rc = lib.tw_graph_parse(data, len(data), source.encode(), os.fsencode(base_dir),
                                ctypes.byref(o), ctypes.byref(diags), ctypes.byref(ptr),
                                ctypes.byref(err))
        return cls._finish_load(rc, ptr, diags, err, keep)

    @classmethod
    def _finish_load(cls, rc: int, ptr: ctypes.c_void_p, diags: "_native.TwBuf",
                     err: "_native.TwErr", keep: Any) -> "Graph":
        lib = _native.lib()
        text = ctypes.string_at(diags.data, diags.len).decode("utf-8", "replace") \
            if diags.data else ""
        lib.tw_buf_fini(ctypes.byref(diags))
        if rc != 0:
            raise_err(rc, err, parse_diagnostics(text))
        self = cls.__new__(cls)
        self._fin = weakref.finalize(self, _free_graph, ptr.value, keep)
        self._setup(ptr.value)
        return self

    def _setup(self, ptr: int) -> None:
        lib = _native.lib()
        self._ptr: Optional[int] = ptr
        self._lock = threading.RLock()
        self._err = _native.TwErr()
        self._errp = ctypes.byref(self._err)
        size = ctypes.c_size_t()
        off = ctypes.c_size_t()
        self._inputs: Dict[str, Port] = {}
        self._in_offsets: Dict[str, Tuple[int, int]] = {}
        o = 0
        for i in range(lib.tw_graph_ninputs(ptr)):
            name = _native.text(lib.tw_graph_input_name(ptr, i, ctypes.byref(size)))
            dt = lib.tw_graph_input_dtype(ptr, i)
            self._inputs[name] = Port(name, size.value,
                                      _native.text(lib.tw_graph_input_unit(ptr, i)),
                                      _DTYPES[dt] if 0 <= dt < 5 else "?")
            self._in_offsets[name] = (o, size.value)
            o += size.value
        self._outputs: Dict[str, Port] = {}
        self._out_offsets: Dict[str, Tuple[int, int]] = {}
        o = 0
        for i in range(lib.tw_graph_noutputs(ptr)):
            name = _native.text(lib.tw_graph_output_name(ptr, i, ctypes.byref(size)))
            dt = lib.tw_graph_output_dtype(ptr, i)
            self._outputs[name] = Port(name, size.value,
                                       _native.text(lib.tw_graph_output_unit(ptr, i)),
                                       _DTYPES[dt] if 0 <= dt < 5 else "?")
            self._out_offsets[name] = (o, size.value)
            o += size.value
        self._iw = int(lib.tw_graph_input_width(ptr))
        self._ow = int(lib.tw_graph_output_width(ptr))
        self._nparams = int(lib.tw_graph_nparams(ptr))
        self._params: Dict[str, Tuple[int, int]] = {}
        for i in range(lib.tw_graph_nparam_ports(ptr)):
            name = _native.text(lib.tw_graph_param_name(ptr, i, ctypes.byref(size),
                                                        ctypes.byref(off)))
            self._params[name] = (off.value, size.value)
        self._name = _native.text(lib.tw_graph_name(ptr))
        self._dt = float(lib.tw_graph_dt(ptr))
        self._blocks = [_native.text(lib.tw_graph_block_name(ptr, i))
                        for i in range(lib.tw_graph_nblocks(ptr))]

    # --- lifetime -----------------------------------------------------------

    def close(self) -> None:
        """Frees the graph now (also done on garbage collection). Further
        calls raise ValueError."""
        with self._lock:
            self._ptr = None
            self._fin()

    @property
    def closed(self) -> bool:
        return not self._fin.alive

    def __enter__(self) -> "Graph":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = type(self).__name__
        if self.closed:
            return f"<twin.{kind} {self._name!r} closed>"
        return (f"<twin.{kind} {self._name!r} dt={self._dt:g} blocks={len(self._blocks)} "
                f"inputs={list(self._inputs)} outputs={list(self._outputs)}>")

    def _live(self) -> int:
        if self._ptr is None:
            raise ValueError(f"the {type(self).__name__.lower()} is closed")
        return self._ptr

    def _port(self, name: str) -> Tuple[int, int]:
        try:
            return self._params[name]
        except KeyError:
            raise KeyError(f"no parameter '{name}' (give block.param; parameters: "
                           f"{', '.join(self._params) or 'none'})") from None

    # --- description --------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def dt(self) -> float:
        """The base step, seconds."""
        return self._dt

    @property
    def blocks(self) -> List[str]:
        return list(self._blocks)

    @property
    def inputs(self) -> Dict[str, Port]:
        """Graph inputs by name, in order."""
        return dict(self._inputs)

    @property
    def outputs(self) -> Dict[str, Port]:
        """Graph outputs by name, in order."""
        return dict(self._outputs)

    def times(self, ticks: int) -> np.ndarray:
        """The time of each tick, k * dt."""
        return np.arange(ticks) * self._dt

    # --- parameters ---------------------------------------------------------

    @property
    def parameters(self) -> Parameters:
        """The parameters ("block.param" -> array), read and written
        through to the graph: ``g.parameters["plant.k"] = 5.0``."""
        return Parameters(self)

    @parameters.setter
    def parameters(self, values: Mapping[str, Any]) -> None:
        Parameters(self).update(values)

    @property
    def parameter_vector(self) -> np.ndarray:
        """Every parameter value as one flat vector (a copy), in the order
        of ``parameters``."""
        v = np.empty(self._nparams)
        with self._lock:
            _native.lib().tw_graph_get_params(self._live(), v.ctypes.data)
        return v

    @parameter_vector.setter
    def parameter_vector(self, value: Any) -> None:
        v = np.ascontiguousarray(value, dtype=np.float64)
        if v.shape != (self._nparams,):
            raise InvalidArgument(f"parameter_vector: expected {self._nparams} "
                                  f"values, got shape {v.shape}", -2, "EINVAL")
        if not np.all(np.isfinite(v)):
            raise InvalidArgument("parameter_vector: values must be finite", -2, "EINVAL")
        with self._lock:
            _native.lib().tw_graph_set_params(self._live(), v.ctypes.data)

    # --- runs ---------------------------------------------------------------

    def _input_rows(self, inputs: Inputs, ticks: int) -> Optional[np.ndarray]:
        """Rows of inputs (ticks x input width) from a dict or an array;
        None for zeros. Paths are handled by the caller."""
        if inputs is None:
            return None
        if isinstance(inputs, Mapping):
            rows = np.zeros((ticks, self._iw))
            for name, value in inputs.items():
                if name not in self._in_offsets:
                    raise InvalidArgument(
                        f"inputs: the graph has no input '{name}' (inputs: "
                        f"{', '.join(self._in_offsets) or 'none'})", -2, "EINVAL")
                off, size = self._in_offsets[name]
                a = np.asarray(value, dtype=np.float64)
                if a.ndim == 0:
                    rows[:, off:off + size] = float(a)
                    continue
                if a.ndim == 1 and size == 1:
                    a = a.reshape(-1, 1)
                if a.ndim != 2 or a.shape[1] != size or a.shape[0] < ticks:
                    raise InvalidArgument(
                        f"inputs: '{name}' needs shape (ticks, {size})"
                        f"{' or (ticks,)' if size == 1 else ''} with at least {ticks} "
                        f"rows, or a number; got {a.shape}", -2, "EINVAL")
                rows[:, off:off + size] = a[:ticks]
            return rows
        a = np.ascontiguousarray(inputs, dtype=np.float64)
        if self._iw == 1 and a.ndim == 1:
            a = a.reshape(-1, 1)
        if a.ndim != 2 or a.shape[1] != self._iw or a.shape[0] < ticks:
            raise InvalidArgument(
                f"inputs: an array needs shape (ticks, {self._iw}) with at least "
                f"{ticks} rows; got {a.shape}", -2, "EINVAL")
        return np.ascontiguousarray(a[:ticks])

    def _read_inputs(self, path: PathLike, ticks: int,
                     input_map: Optional[Union[Mapping[str, str], Sequence[str]]]
                     ) -> np.ndarray:
        lib = _native.lib()
        if input_map is None:
            entries: List[str] = []
        elif isinstance(input_map, Mapping):
            entries = [f"{k}={v}" for k, v in input_map.items()]
        else:
            entries = list(input_map)
        arr = (ctypes.c_char_p * max(1, len(entries)))(*[e.encode() for e in entries])
        rows = np.zeros((ticks, max(1, self._iw)))
        rc = lib.tw_graph_read_inputs(self._live(), os.fsencode(path),
                                      arr if entries else None, len(entries),
                                      ticks, rows.ctypes.data, self._errp)
        if rc != 0:
            raise_err(rc, self._err)
        return rows

    def _split(self, out: np.ndarray) -> Dict[str, np.ndarray]:
        res = {}
        for name, (off, size) in self._out_offsets.items():
            res[name] = out[:, off] if size == 1 else out[:, off:off + size]
        return res

    def run(self, ticks: int, inputs: Inputs = None, trace: Optional[PathLike] = None,
            *, input_map: Optional[Union[Mapping[str, str], Sequence[str]]] = None,
            trace_format: str = "json") -> Dict[str, np.ndarray]:
        """Runs ticks steps from the initial state with the current
        parameters and returns the outputs.

        Args:
            ticks: steps to run (>= 1).
            inputs: None (every input 0); a dict of input name to a number
                (constant) or an array of shape (ticks,) for size-1 inputs
                or (ticks, size); an array (ticks, input width); or the
                path of an MCAP file whose channels feed the inputs
                ("/inputs/NAME", "/NAME" or "NAME", or as input_map says:
                {input: topic}).
            trace: record the run's inputs and outputs as an MCAP trace at
                this path (it appears only once complete).
            trace_format: "json" or "cdr" samples in the trace.

        Returns:
            {output name: array}, shape (ticks,) for outputs of size 1 and
            (ticks, size) otherwise.

        Raises:
            ModelTrap, LimitExceeded: a wasm block trapped or exceeded a
                limit, or a budget stopped the run.
            TwinError: a non-finite value, an unreadable input file, ...
        """
        ticks = _check_ticks(ticks)
        if trace_format not in ("json", "cdr"):
            raise InvalidArgument(f"trace_format must be json or cdr, not {trace_format!r}",
                                  -2, "EINVAL")
        lib = _native.lib()
        out = np.empty((ticks, max(1, self._ow)))
        with self._lock:
            g = self._live()
            if isinstance(inputs, (str, os.PathLike)):
                rows: Optional[np.ndarray] = self._read_inputs(inputs, ticks, input_map)
            else:
                if input_map is not None:
                    raise InvalidArgument("input_map needs inputs=PATH.mcap", -2, "EINVAL")
                rows = self._input_rows(inputs, ticks)
            in_p = rows.ctypes.data if rows is not None else None
            if trace is None:
                rc = lib.tw_graph_run(g, ticks, in_p, out.ctypes.data, self._errp)
                if rc != 0:
                    raise_err(rc, self._err)
            else:
                self._run_traced(g, ticks, rows, out, trace, trace_format)
        return self._split(out[:, :self._ow])

    def _run_traced(self, g: int, ticks: int, rows: Optional[np.ndarray],
                    out: np.ndarray, path: PathLike, fmt: str) -> None:
        lib = _native.lib()
        opts = _native.GraphTraceOpts()
        lib.tw_graph_trace_opts_init(ctypes.byref(opts))
        opts.encoding = 1 if fmt == "cdr" else 0
        tr = ctypes.c_void_p()
        rc = lib.tw_graph_trace_open(g, os.fsencode(path), ctypes.byref(opts),
                                     ctypes.byref(tr), self._errp)
        if rc == 0:
            rc = lib.tw_graph_reset(g, self._errp)
        iw, ow = max(1, self._iw), max(1, self._ow)
        item = 8
        for k in range(0, ticks, _SEGMENT):
            if rc != 0:
                break
            n = min(_SEGMENT, ticks - k)
            ip = rows.ctypes.data + k * iw * item if rows is not None else None
            op = out.ctypes.data + k * ow * item
            rc = lib.tw_graph_advance(g, n, ip, op, self._errp)
            if rc == 0:
                rc = lib.tw_graph_trace_write(tr, k, n, ip, op, self._errp)
        if rc != 0:
            lib.tw_graph_trace_abort(tr)
            raise_err(rc, self._err)
        rc = lib.tw_graph_trace_close(tr, g, self._errp)
        if rc != 0:
            raise_err(rc, self._err)

    # --- gradients ----------------------------------------------------------

    def grad(self, ticks: int, loss: Any, wrt: Optional[Sequence[str]] = None,
             schedule: Optional[str] = None, inputs: Inputs = None,
             *, input_map: Optional[Union[Mapping[str, str], Sequence[str]]] = None
             ) -> Tuple[float, Dict[str, np.ndarray]]:
        """The loss over ticks steps and its exact gradient with respect to
        parameters, by the discrete adjoint through every block's VJP.

        Args:
            ticks: steps to run.
            loss: a :class:`twin.Loss` (``twin.mse("x", target)`` and
                sums of those; computed in C); a tuple ("mse"|"sse",
                output, target[, weight]) or a list of them; an output
                name (1/2 the sum over ticks of its square, as
                ``twin graph grad --loss``); or a Python callable
                ``f(k, y) -> (value, grads)`` called at every tick with
                y = {output: array of its values at tick k} and returning
                the tick's loss and {output: d value / d output} (missing
                outputs: zero). Callables hold the GIL for each call.
            wrt: the parameters ("block.param") to differentiate with
                respect to; None: all.
            schedule: the checkpoint schedule: "all" (default),
                "periodic:C" or "revolve:K" (memory O(T), O(T/C + C),
                O(K)); the gradient is the same bits under each.
            inputs, input_map: as for :meth:`run`.

        Returns:
            (loss value, {parameter: gradient array}) for the wrt
            parameters (all when wrt is None).

        Raises:
            NotSupported: a block is not differentiable.
            InvalidArgument: an unknown parameter, output or schedule.
        """
        ticks = _check_ticks(ticks)
        lib = _native.lib()
        spec = losses.coerce(loss)
        names = list(self._params) if wrt is None else list(wrt)
        if isinstance(wrt, str):
            raise InvalidArgument("wrt: give a list of parameter names", -2, "EINVAL")
        for n in names:
            if n not in self._params:
                raise InvalidArgument(
                    f"wrt: no parameter '{n}' (give block.param; parameters: "
                    f"{', '.join(self._params) or 'none'})", -2, "EINVAL")
        wrt_arr = (ctypes.c_char_p * max(1, len(names)))(*[n.encode() for n in names])
        c_loss = _native.Loss()
        failure: Dict[str, BaseException] = {}
        if isinstance(spec, losses.Loss):
            sq, keep = spec.bind(self._out_offsets, self._ow, ticks)
            lib.tw_graph_sqerr_loss(ctypes.byref(sq), ctypes.byref(c_loss))
        elif callable(spec):
            cb = self._callback(spec, failure)
            keep = (cb,)
            c_loss.term = ctypes.cast(cb, ctypes.c_void_p)
            c_loss.final_only = False
        else:
            raise InvalidArgument(
                f"loss: expected a twin.Loss, an output name, (\"mse\"|\"sse\", output, "
                f"target) or a callable, not {type(loss).__name__}", -2, "EINVAL")
        gtheta = np.zeros(max(1, self._nparams))
        value = ctypes.c_double()
        with self._lock:
            g = self._live()
            if isinstance(inputs, (str, os.PathLike)):
                rows = self._read_inputs(inputs, ticks, input_map)
            else:
                rows = self._input_rows(inputs, ticks)
            rc = lib.tw_graph_grad(g, ticks, rows.ctypes.data if rows is not None else None,
                                   ctypes.byref(c_loss),
                                   None if wrt is None else wrt_arr,
                                   0 if wrt is None else len(names),
                                   schedule.encode() if schedule else None,
                                   ctypes.byref(value), gtheta.ctypes.data, self._errp)
            del keep
            if "exc" in failure:
                self._err.code = 0
                raise failure["exc"]
            if rc != 0:
                raise_err(rc, self._err)
        grads = {}
        for n in names:
            off, size = self._params[n]
            grads[n] = gtheta[off:off + size].copy()
        return float(value.value), grads

    def _callback(self, fn: Callable[..., Any], failure: Dict[str, BaseException]) -> Any:
        outs = self._out_offsets
        w = self._ow
        lib = _native.lib()

        def term(ud: Any, k: int, steps: int, xn: Any, y: Any, value: Any, gxn: Any,
                 gy: Any, err: Any) -> int:
            try:
                row = np.ctypeslib.as_array(y, shape=(w,))
                ys = {n: row[o:o + s].copy() for n, (o, s) in outs.items()}
                v, g = fn(k, ys)
                v = float(v)
                if not math.isfinite(v):
                    raise ValueError(f"loss: the value at tick {k} is {v}")
                value[0] = v
                if gy and g is not None:
                    grow = np.ctypeslib.as_array(gy, shape=(w,))
                    if isinstance(g, Mapping):
                        for n, gv in g.items():
                            if n not in outs:
                                raise KeyError(f"loss: the gradient names '{n}', which is "
                                               "not an output")
                            o, s = outs[n]
                            grow[o:o + s] = np.asarray(gv, dtype=np.float64).reshape(-1)
                    else:
                        grow[:] = np.asarray(g, dtype=np.float64).reshape(w)
                return 0
            except BaseException as e:  # re-raised by grad once C returns
                failure.setdefault("exc", e)
                lib.tw_err_record(err, _ECANCELED, b"%s",
                                  f"loss callback failed at tick {k}: {e!r}".encode())
                return _ECANCELED

        return _native.LOSS_TERM(term)

    # --- accounting ---------------------------------------------------------

    def stats(self) -> Dict[str, Any]:
        """Accounting of the last run or gradient: ticks, wall_ms, cpu_ms,
        memory_bytes, fuel, checkpoint_bytes, and per block (name, kind,
        steps, vjps, wall_ms, cpu_ms, memory_bytes, wasm_memory, fuel)."""
        lib = _native.lib()
        with self._lock:
            g = self._live()
            n = lib.tw_graph_stats(g, None, 0, None)
            blocks = (_native.GraphBlockStats * max(1, n))()
            run = _native.GraphRunStats()
            lib.tw_graph_stats(g, blocks, n, ctypes.byref(run))
            return {
                "ticks": run.ticks, "wall_ms": run.wall_ms, "cpu_ms": run.cpu_ms,
                "memory_bytes": run.memory_bytes, "fuel": run.fuel,
                "checkpoint_bytes": run.checkpoint_bytes,
                "blocks": [{"name": _native.text(b.name), "kind": _native.text(b.kind),
                            "steps": b.steps, "vjps": b.vjps, "wall_ms": b.wall_ms,
                            "cpu_ms": b.cpu_ms, "memory_bytes": b.memory_bytes,
                            "wasm_memory": b.wasm_memory, "fuel": b.fuel}
                           for b in blocks[:n]],
            }

    def set_budget(self, max_cpu_ms: float = 0.0, max_memory: int = 0,
                   cpu_per_block: bool = False) -> None:
        """Budgets of runs and gradients (0: none): past max_cpu_ms of CPU
        time or max_memory bytes held, a run stops with LimitExceeded.
        cpu_per_block measures each block's thread CPU time in stats()."""
        with self._lock:
            g = self._live()
            _native.lib().tw_graph_set_budget(g, float(max_cpu_ms), int(max_memory))
            _native.lib().tw_graph_set_accounting(g, bool(cpu_per_block))


class Twin(Graph):
    """A twin-compose file compiled to an execution graph, with its
    profile, parameter overlays and sources. Everything a :class:`Graph`
    does, plus runs that read the twin's recorded source by default."""

    @classmethod
    def load(cls, path: PathLike, profile: Optional[str] = None, *,  # type: ignore[override]
             params: Union[None, PathLike, Sequence[PathLike]] = None,
             fuel: Optional[int] = None, timeout_ms: Optional[int] = None,
             store: Optional[PathLike] = None) -> "Twin":
        """Loads, validates and compiles a twin file.

        Args:
            path: the twin-compose YAML file.
            profile: a profile of the file merged over it ("sim", ...).
            params: parameter files ({component: {param: value}}, YAML or
                JSON) laid over the twin's parameters, in order.
            fuel, timeout_ms: limits of each call of each wasm model.
            store: the local model store for models given by digest.

        Raises:
            ValidationError: with every problem (file, line, col,
                severity, code, message) in ``.diagnostics``.
        """
        return cls._compose(path, None, profile, params, fuel, timeout_ms, store)

    @classmethod
    def parse(cls, text: str, profile: Optional[str] = None, *,  # type: ignore[override]
              source: str = "<string>", base_dir: PathLike = ".",
              params: Union[None, PathLike, Sequence[PathLike]] = None,
              fuel: Optional[int] = None, timeout_ms: Optional[int] = None,
              store: Optional[PathLike] = None) -> "Twin":
        """As :meth:`load` from YAML text; source names it in diagnostics,
        base_dir resolves relative paths."""
        return cls._compose(None, (text, source, base_dir), profile, params, fuel,
                            timeout_ms, store)

    @classmethod
    def _compose(cls, path: Optional[PathLike], text: Optional[Tuple[str, str, PathLike]],
                 profile: Optional[str], params: Any, fuel: Optional[int],
                 timeout_ms: Optional[int], store: Optional[PathLike]) -> "Twin":
        lib = _native.lib()
        if params is None:
            files: List[bytes] = []
        elif isinstance(params, (str, os.PathLike)):
            files = [os.fsencode(params)]
        else:
            files = [os.fsencode(p) for p in params]
        farr = (ctypes.c_char_p * max(1, len(files)))(*files)
        engine, ctx = _runtime.engine(), _runtime.context()
        store_b = os.fsencode(store) if store is not None else None
        prof_b = profile.encode() if profile else None
        o = _native.ComposeOpts(ctx.ptr, engine.ptr, _limits(fuel, timeout_ms), store_b,
                                prof_b, farr if files else None, len(files))
        diags = _native.ComposeDiags()
        lib.tw_compose_diags_init(ctypes.byref(diags))
        err = _native.TwErr()
        ptr = ctypes.c_void_p()
        if text is None:
            assert path is not None
            rc = lib.tw_compose_load(os.fsencode(path), ctypes.byref(o), ctypes.byref(diags),
                                     ctypes.byref(ptr), ctypes.byref(err))
        else:
            data = text[0].encode()
            rc = lib.tw_compose_parse(data, len(data), text[1].encode(),
                                      os.fsencode(text[2]), ctypes.byref(o),
                                      ctypes.byref(diags), ctypes.byref(ptr),
                                      ctypes.byref(err))
        found = [Diagnostic(_native.text(d.file), d.line, d.col,
                            "warning" if d.warning else "error", _native.text(d.message),
                            _native.text(d.code))
                 for d in diags.items[:diags.n]] if diags.n else []
        lib.tw_compose_diags_fini(ctypes.byref(diags))
        if rc != 0:
            raise_err(rc, err, found)
        self = cls.__new__(cls)
        self._fin = weakref.finalize(self, _free_compose, ptr.value, (engine, ctx))
        self._compose_ptr = ptr.value
        self._setup(lib.tw_compose_graph(ptr.value))
        self._name = _native.text(lib.tw_compose_name(ptr.value)) or self._name
        self.diagnostics: List[Diagnostic] = found
        self._sources = []
        for i in range(lib.tw_compose_nsources(ptr.value)):
            s = lib.tw_compose_source_at(ptr.value, i).contents
            kinds = ("mcap", "kafka", "mqtt", "rtsp")
            self._sources.append({
                "name": _native.text(s.name),
                "kind": kinds[s.kind] if 0 <= s.kind < 4 else "?",
                "path": _native.text(s.path) or None,
                "map": [_native.text(s.map[j]) for j in range(s.nmap)],
            })
        return self

    @property
    def sources(self) -> List[Dict[str, Any]]:
        """The twin's sources: name, kind ("mcap", ...), path, and the map
        "INPUT=TOPIC" of the graph inputs each feeds."""
        return [dict(s, map=list(s["map"])) for s in self._sources]

    def _recording(self) -> Optional[Dict[str, Any]]:
        rec = None
        for s in self._sources:
            if not s["map"]:
                continue
            if s["kind"] != "mcap":
                raise error_for(-11, f"source '{s['name']}' ({s['kind']}): live sources "
                                "need the ingest connectors; run a profile that reads a "
                                "recording (kind: mcap), or pass inputs=")
            if rec is not None:
                raise error_for(-11, f"sources '{rec['name']}' and '{s['name']}': a run "
                                "reads one recording; record them into one MCAP file or "
                                "pass inputs=")
            rec = s
        return rec

    def recording_ticks(self) -> Optional[int]:
        """Ticks to the end of the twin's recorded source (None without
        one): the last message's time over dt, plus one."""
        rec = self._recording()
        if rec is None:
            return None
        from .trace import Trace

        with Trace.open(rec["path"]) as tr:
            info = tr.info
        if info["message_count"] == 0:
            raise error_for(-2, f"{rec['path']}: the recording has no messages")
        end = info["message_end_time"] / 1e9
        return int(math.floor(end / self._dt + 1e-9)) + 1

    def run(self, ticks: Optional[int] = None, inputs: Inputs = None,  # type: ignore[override]
            trace: Optional[PathLike] = None, *,
            input_map: Optional[Union[Mapping[str, str], Sequence[str]]] = None,
            trace_format: str = "json") -> Dict[str, np.ndarray]:
        """As :meth:`Graph.run`; without inputs, a twin whose profile reads
        a recording (an mcap source) takes its inputs from it, and ticks
        defaults to the recording's length."""
        ticks, inputs, input_map = self._source_defaults(ticks, inputs, input_map)
        return super().run(ticks, inputs, trace, input_map=input_map,
                           trace_format=trace_format)

    def grad(self, ticks: Optional[int], loss: Any,  # type: ignore[override]
             wrt: Optional[Sequence[str]] = None, schedule: Optional[str] = None,
             inputs: Inputs = None, *,
             input_map: Optional[Union[Mapping[str, str], Sequence[str]]] = None
             ) -> Tuple[float, Dict[str, np.ndarray]]:
        """As :meth:`Graph.grad`, with the twin's recording as the default
        inputs (and its length as the default ticks)."""
        ticks, inputs, input_map = self._source_defaults(ticks, inputs, input_map)
        return super().grad(ticks, loss, wrt, schedule, inputs, input_map=input_map)

    def _source_defaults(self, ticks: Optional[int], inputs: Inputs, input_map: Any
                         ) -> Tuple[int, Inputs, Any]:
        if inputs is None:
            rec = self._recording()
            if rec is not None:
                inputs, input_map = rec["path"], rec["map"]
                if ticks is None:
                    ticks = self.recording_ticks()
        if ticks is None:
            raise InvalidArgument("the twin reads no recording: give ticks", -2, "EINVAL")
        return ticks, inputs, input_map
