"""Sandboxed models: a WebAssembly module speaking the model ABI
(docs/model-abi.md), stepped from Python with numpy arrays.

A :class:`Model` holds one module and one instance (its own sandbox:
linear memory, fuel, deadline). Calls run with the GIL released. A trap
or an exceeded limit raises :class:`~twin.ModelTrap` or
:class:`~twin.LimitExceeded` and replaces the sandbox, so the next call
starts from a fresh instance; nothing a guest does can crash the
interpreter.

Thread safety: a Model may be shared by threads; its calls are
serialised by a lock (one instance runs one call at a time).
"""

from __future__ import annotations

import ctypes
import os
import threading
import weakref
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from . import _native, _runtime
from .errors import InvalidArgument, LimitExceeded, ModelTrap, raise_err

ArrayLike = Union[np.ndarray, List[float], Tuple[float, ...], float]
Values = Union[ArrayLike, Mapping[str, ArrayLike], None]

_DTYPES = ("f64", "f32", "i64", "i32", "bool")


def _ports(ptr: Any, n: int) -> List[Dict[str, Any]]:
    out = []
    for i in range(n):
        p = ptr[i]
        size = int(p.size)
        d: Dict[str, Any] = {
            "name": _native.text(p.name),
            "unit": _native.text(p.unit),
            "size": size,
            "dtype": _DTYPES[p.dtype] if 0 <= p.dtype < len(_DTYPES) else "?",
        }
        for key, arr in (("default", p.default_), ("min", p.min), ("max", p.max)):
            if arr:
                d[key] = np.ctypeslib.as_array(arr, shape=(size,)).copy()
        out.append(d)
    return out


def pack(ports: List[Dict[str, Any]], width: int, value: Values, what: str,
         base: Optional[np.ndarray] = None) -> np.ndarray:
    """A flat float64 vector of ports (name, size) from a mapping of name to
    value (the others from base, else defaults, else 0) or from a flat
    array of width values."""
    if value is not None and not isinstance(value, Mapping):
        a = np.ascontiguousarray(value, dtype=np.float64)
        if a.ndim != 1 or a.shape[0] != width:
            raise InvalidArgument(
                f"{what}: expected {width} values, got shape {a.shape}", -2, "EINVAL")
        return a
    if base is not None:
        out = base.astype(np.float64, copy=True)
    else:
        out = np.zeros(width)
        off = 0
        for p in ports:
            if "default" in p:
                out[off:off + p["size"]] = p["default"]
            off += p["size"]
    if value:
        offsets = {}
        off = 0
        for p in ports:
            offsets[p["name"]] = (off, p["size"])
            off += p["size"]
        for name, v in value.items():
            if name not in offsets:
                raise InvalidArgument(
                    f"{what}: no port '{name}' (ports: "
                    f"{', '.join(offsets) or 'none'})", -2, "EINVAL")
            o, s = offsets[name]
            a = np.asarray(v, dtype=np.float64).reshape(-1)
            if a.size == 1:
                out[o:o + s] = a[0]
            elif a.size == s:
                out[o:o + s] = a
            else:
                raise InvalidArgument(
                    f"{what}: '{name}' needs 1 or {s} values, got {a.size}",
                    -2, "EINVAL")
    return out


def _free_model(inst: List[Optional[int]], module: int, engine: Any) -> None:
    lib = _native.lib()
    if inst[0]:
        lib.tw_wasm_instance_free(inst[0])
        inst[0] = None
    lib.tw_wasm_module_free(module)
    del engine  # the engine outlives its modules


class Model:
    """A sandboxed model: one module and its instance.

    Make one with :meth:`Model.load`. Vectors are float64 numpy arrays in
    the descriptor's order (``describe()`` lists the ports); ``inputs``
    and ``params`` also take a dict of port name to value, the others
    taking their defaults.
    """

    def __init__(self) -> None:
        raise TypeError("use twin.Model.load(path_or_bytes)")

    @classmethod
    def load(cls, source: Union[str, os.PathLike, bytes, bytearray, memoryview],
             *, fuel: Optional[int] = None, timeout_ms: Optional[int] = None,
             max_memory: Optional[int] = None, allow_wasi: bool = False,
             name: Optional[str] = None) -> "Model":
        """Loads, validates and instantiates a model.

        Args:
            source: a path to a ``.wasm`` file, or the module's bytes.
            fuel: instructions each call (init, step, vjp) may run; None:
                no fuel limit.
            timeout_ms: wall-clock deadline of each call; None: none.
            max_memory: cap of the guest's linear memory in bytes; None:
                64 MiB.
            allow_wasi: link WASI preview 1 (no files, environment or
                arguments).
            name: the model's name in messages (default: the file name,
                else the descriptor's).

        Raises:
            ParseError: the bytes are not WebAssembly.
            ValidationError: the module breaks the model ABI.
            NotFoundError: no such file.
            ModelTrap, LimitExceeded: the module trapped or ran out of a
                limit while describing itself.
        """
        self = cls.__new__(cls)
        lib = _native.lib()
        for what, v in (("fuel", fuel), ("timeout_ms", timeout_ms),
                        ("max_memory", max_memory)):
            if v is not None and (not isinstance(v, (int, np.integer)) or v < 0):
                raise InvalidArgument(f"{what} must be a non-negative integer, "
                                      f"not {v!r}", -2, "EINVAL")
        if timeout_ms is not None and timeout_ms >= 1 << 32:
            raise InvalidArgument("timeout_ms is too large", -2, "EINVAL")
        if max_memory is not None and 0 < max_memory < 65536:
            raise InvalidArgument(
                f"max_memory needs at least 65536 bytes (one WebAssembly page), "
                f"not {max_memory}", -2, "EINVAL")
        engine = _runtime.engine(max_memory)
        err = _native.TwErr()
        mod = ctypes.c_void_p()
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            label = name or "<bytes>"
            mopts = _native.WasmModuleOpts(allow_wasi, name.encode() if name else None)
            rc = lib.tw_wasm_module_load(engine.ptr, data, len(data), ctypes.byref(mopts),
                                         ctypes.byref(mod), ctypes.byref(err))
        else:
            path = os.fspath(source)
            label = name or path
            mopts = _native.WasmModuleOpts(allow_wasi, name.encode() if name else None)
            rc = lib.tw_wasm_module_load_file(engine.ptr, os.fsencode(path),
                                              ctypes.byref(mopts), ctypes.byref(mod),
                                              ctypes.byref(err))
        if rc != 0:
            if err.code != 0 and label.encode() not in err.msg:
                err.msg = f"{label}: {_native.text(err.msg)}".encode()[:1000]
            raise_err(rc, err)
        self._limits = _native.WasmLimits(fuel or 0, timeout_ms or 0, max_memory or 0)
        inst_cell: List[Optional[int]] = [None]
        self._inst_cell = inst_cell
        self._module = mod.value
        self._fin = weakref.finalize(self, _free_model, inst_cell, mod.value, engine)
        self._lock = threading.Lock()
        self._err = _native.TwErr()
        self._errp = ctypes.byref(self._err)
        desc = lib.tw_wasm_module_desc(mod.value).contents
        self._desc = {
            "name": _native.text(desc.name),
            "version": _native.text(desc.version),
            "differentiable": bool(desc.differentiable),
            "digest": _native.text(lib.tw_wasm_module_digest(mod.value)),
            "size": int(lib.tw_wasm_module_size(mod.value)),
            "state": _ports(desc.state, desc.nstate),
            "inputs": _ports(desc.inputs, desc.ninputs),
            "outputs": _ports(desc.outputs, desc.noutputs),
            "params": _ports(desc.params, desc.nparams),
            "descriptor": _native.text(desc.json),
        }
        self.nx, self.nu = int(desc.nx), int(desc.nu)
        self.ny, self.ntheta = int(desc.ny), int(desc.ntheta)
        self._default_u = pack(self._desc["inputs"], self.nu, None, "inputs")
        self._default_theta = pack(self._desc["params"], self.ntheta, None, "params")
        self._new_instance()
        self._buffers()
        self._step = lib.tw_wasm_step
        self._vjp = lib.tw_wasm_step_vjp
        return self

    # --- lifetime ---------------------------------------------------------

    def _new_instance(self) -> None:
        lib = _native.lib()
        inst = ctypes.c_void_p()
        rc = lib.tw_wasm_instance_new(self._module, ctypes.byref(self._limits),
                                      ctypes.byref(inst), self._errp)
        if rc != 0:
            raise_err(rc, self._err)
        self._inst_cell[0] = inst.value
        self._inst = inst.value

    def close(self) -> None:
        """Frees the instance and the module now (also done when the
        object is garbage-collected). Further calls raise ValueError."""
        with self._lock:
            self._inst = None
            self._fin()

    @property
    def closed(self) -> bool:
        return not self._fin.alive

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"nx={self.nx} nu={self.nu} ny={self.ny} ntheta={self.ntheta}"
        return f"<twin.Model {self._desc['name']!r} {state}>"

    def _call_failed(self, rc: int) -> None:
        """Raises the error of a failed call; a trap or limit poisons the
        instance, so it is replaced first."""
        name = _native.text(_native.lib().tw_err_name(rc))
        if name in ("ETRAP", "ELIMIT", "ETIMEDOUT"):
            lib = _native.lib()
            keep = _native.TwErr()
            ctypes.memmove(ctypes.byref(keep), self._errp, ctypes.sizeof(keep))
            if lib.tw_wasm_instance_reset(self._inst, ctypes.byref(_native.TwErr())) != 0:
                lib.tw_wasm_instance_free(self._inst)
                self._inst_cell[0] = self._inst = None
                try:
                    self._new_instance()
                except Exception:
                    pass
            ctypes.memmove(self._errp, ctypes.byref(keep), ctypes.sizeof(keep))
        raise_err(rc, self._err)

    def _live(self) -> int:
        inst = self._inst
        if inst is None:
            raise ValueError("the model is closed")
        return inst

    # --- description ------------------------------------------------------

    @property
    def name(self) -> str:
        return self._desc["name"]

    @property
    def digest(self) -> str:
        """"sha256:<hex>" of the module bytes."""
        return self._desc["digest"]

    @property
    def differentiable(self) -> bool:
        return self._desc["differentiable"]

    def describe(self) -> Dict[str, Any]:
        """The descriptor: name, version, differentiable, digest, size, and
        the port lists state, inputs, outputs, params (each port a dict
        of name, unit, size, dtype and, when declared, default, min,
        max), plus the descriptor JSON as the module returned it."""
        d = dict(self._desc)
        for k in ("state", "inputs", "outputs", "params"):
            d[k] = [dict(p) for p in d[k]]
        return d

    def default_params(self) -> np.ndarray:
        """The parameters' defaults as one vector (ntheta values)."""
        return self._default_theta.copy()

    def params(self, values: Values = None) -> np.ndarray:
        """A parameter vector: the defaults with values (a dict) laid over."""
        return pack(self._desc["params"], self.ntheta, values, "params")

    def inputs(self, values: Values = None) -> np.ndarray:
        """An input vector: the defaults with values (a dict) laid over."""
        return pack(self._desc["inputs"], self.nu, values, "inputs")

    def usage(self) -> Dict[str, Any]:
        """Calls, fuel used, linear memory now and at peak, time in the
        guest, of the current instance."""
        u = _native.WasmUsage()
        with self._lock:
            _native.lib().tw_wasm_instance_usage(self._live(), ctypes.byref(u))
        return {"calls": u.calls, "fuel_used": u.fuel_used,
                "memory_bytes": u.memory_bytes, "peak_memory": u.peak_memory,
                "wall_ms": u.wall_ms}

    # --- the ABI calls ----------------------------------------------------

    def _theta(self, params: Values) -> np.ndarray:
        if params is None:
            return self._default_theta
        return pack(self._desc["params"], self.ntheta, params, "params")

    def _u(self, inputs: Values) -> np.ndarray:
        if inputs is None:
            return self._default_u
        return pack(self._desc["inputs"], self.nu, inputs, "inputs")

    def reset(self) -> None:
        """Replaces the instance with a fresh one (fresh guest memory)."""
        with self._lock:
            inst = self._live()
            rc = _native.lib().tw_wasm_instance_reset(inst, self._errp)
            if rc != 0:
                raise_err(rc, self._err)

    def init(self, params: Values = None) -> np.ndarray:
        """The initial state x[0] for params (default: the defaults)."""
        th = self._theta(params)
        x0 = np.empty(self.nx)
        with self._lock:
            rc = _native.lib().tw_wasm_init(self._live(), th.ctypes.data,
                                            x0.ctypes.data, self._errp)
            if rc != 0:
                self._call_failed(rc)
        return x0

    def _buffers(self) -> None:
        """Persistent argument buffers at fixed addresses: a step copies
        into and out of them instead of asking numpy for the address of
        each array (which costs more than the C call)."""
        def buf(n: int) -> Tuple[np.ndarray, int]:
            raw = (ctypes.c_double * max(1, n))()
            return np.frombuffer(raw, dtype=np.float64)[:n], ctypes.addressof(raw)

        self._xb, self._xa = buf(self.nx)
        self._ub, self._ua = buf(self.nu)
        self._tb, self._ta = buf(self.ntheta)
        self._xnb, self._xna = buf(self.nx)
        self._yb, self._ya = buf(self.ny)
        self._ub[...] = self._default_u
        self._tb[...] = self._default_theta
        self._u_default = True
        self._t_default = True

    def step(self, t: float, dt: float, state: ArrayLike, inputs: Values = None,
             params: Values = None) -> Tuple[np.ndarray, np.ndarray]:
        """One step: ``(x[k+1], y[k]) = f(x[k], u[k], theta, t, dt)``.

        Args:
            t, dt: the time of the step and its length, seconds.
            state: x[k], nx values.
            inputs: u[k] (nu values or a dict; None: the defaults).
            params: theta (ntheta values or a dict; None: the defaults).

        Returns:
            (next state, outputs) as new arrays.
        """
        lk = self._lock
        lk.acquire()
        try:
            inst = self._inst
            if inst is None:
                raise ValueError("the model is closed")
            if type(state) is not np.ndarray:
                state = np.asarray(state, dtype=np.float64)
            if state.shape != self._xb.shape:
                raise InvalidArgument(f"state: expected {self.nx} values, got shape "
                                      f"{state.shape}", -2, "EINVAL")
            self._xb[...] = state
            if inputs is not None:
                self._ub[...] = self._u(inputs)
                self._u_default = False
            elif not self._u_default:
                self._ub[...] = self._default_u
                self._u_default = True
            if params is not None:
                self._tb[...] = self._theta(params)
                self._t_default = False
            elif not self._t_default:
                self._tb[...] = self._default_theta
                self._t_default = True
            rc = self._step(inst, t, dt, self._xa, self._ua, self._ta, self._xna,
                            self._ya, self._errp)
            if rc != 0:
                self._call_failed(rc)
            return self._xnb.copy(), self._yb.copy()
        finally:
            lk.release()

    def vjp(self, t: float, dt: float, state: ArrayLike, inputs: Values = None,
            params: Values = None, g_state: Optional[ArrayLike] = None,
            g_outputs: Optional[ArrayLike] = None
            ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The step's vector-Jacobian product at (state, inputs, params).

        Given the cotangents of the next state (g_state, nx values) and of
        the outputs (g_outputs, ny values; None: zero), returns the
        cotangents of (state, inputs, params). NotSupported if the model
        exports no tw_step_vjp."""
        x = np.ascontiguousarray(state, dtype=np.float64)
        if x.shape != (self.nx,):
            raise InvalidArgument(f"state: expected {self.nx} values, got shape "
                                  f"{x.shape}", -2, "EINVAL")
        u = self._u(inputs)
        th = self._theta(params)
        gxn = None if g_state is None else pack([], self.nx, g_state, "g_state")
        gy = None if g_outputs is None else pack([], self.ny, g_outputs, "g_outputs")
        gx = np.empty(self.nx)
        gu = np.empty(self.nu)
        gth = np.zeros(self.ntheta)  # the C call adds into it
        with self._lock:
            rc = self._vjp(self._live(), t, dt, x.ctypes.data, u.ctypes.data,
                           th.ctypes.data, None if gxn is None else gxn.ctypes.data,
                           None if gy is None else gy.ctypes.data, gx.ctypes.data,
                           gu.ctypes.data, gth.ctypes.data, self._errp)
            if rc != 0:
                self._call_failed(rc)
        return gx, gu, gth

    def rollout(self, steps: int, dt: float, state: Optional[ArrayLike] = None,
                inputs: Values = None, params: Values = None, t0: float = 0.0
                ) -> Tuple[np.ndarray, np.ndarray]:
        """Runs steps steps from state (None: init(params)) with constant
        inputs; returns (states, outputs) of shapes (steps+1, nx) and
        (steps, ny)."""
        th = self._theta(params)
        x = self.init(th) if state is None else np.array(state, dtype=np.float64)
        xs = np.empty((steps + 1, self.nx))
        ys = np.empty((steps, self.ny))
        xs[0] = x
        for k in range(steps):
            xs[k + 1], ys[k] = self.step(t0 + k * dt, dt, xs[k], inputs, th)
        return xs, ys


# Keep a reference so that LimitExceeded/ModelTrap are importable from here.
__all__ = ["Model", "ModelTrap", "LimitExceeded"]
