"""Process-wide C objects the SDK shares: one library context (logging,
metrics, the worker pool that steps a graph's independent blocks in
parallel) and the WebAssembly engines (one per memory cap), created on
first use.

Ownership: every C object the SDK holds is freed by a
``weakref.finalize`` registered when it is made, whose arguments keep
alive what it depends on (a module keeps its engine, an engine its
context). ``close()`` runs the finalizer early; garbage collection or
interpreter exit runs it otherwise, objects made later first.
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from typing import Dict, Optional

from . import _native
from .errors import raise_err


class Context:
    """A tw_ctx: logging (dropped), metrics and the worker pool."""

    def __init__(self, threads: int = 0):
        lib = _native.lib()
        opts = _native.CtxOptions()
        lib.tw_ctx_options_init(ctypes.byref(opts))
        opts.threads = threads
        err = _native.TwErr()
        ptr = ctypes.c_void_p()
        rc = lib.tw_ctx_new(ctypes.byref(opts), ctypes.byref(ptr), ctypes.byref(err))
        if rc != 0:
            raise_err(rc, err)
        self.ptr = ptr.value
        self._fin = weakref.finalize(self, lib.tw_ctx_free, self.ptr)


class Engine:
    """A wasmtime engine (tw_wasm_engine) with a linear-memory cap."""

    def __init__(self, ctx: Context, max_memory: int = 0):
        lib = _native.lib()
        opts = _native.WasmEngineOpts()
        opts.max_memory = max_memory
        err = _native.TwErr()
        ptr = ctypes.c_void_p()
        rc = lib.tw_wasm_engine_new(ctx.ptr, ctypes.byref(opts), ctypes.byref(ptr),
                                    ctypes.byref(err))
        if rc != 0:
            raise_err(rc, err)
        self.ptr = ptr.value
        self.max_memory = max_memory
        self._fin = weakref.finalize(self, _free_engine, self.ptr, ctx)


def _free_engine(ptr: int, ctx: Context) -> None:
    _native.lib().tw_wasm_engine_free(ptr)
    del ctx  # the context outlives the engine


_lock = threading.Lock()
_ctx: Optional[Context] = None
_engines: Dict[int, Engine] = {}

# The engine's default per-instance memory cap (wasm.h).
DEFAULT_MAX_MEMORY = 64 << 20


def context() -> Context:
    """The shared context."""
    global _ctx
    with _lock:
        if _ctx is None:
            _ctx = Context()
        return _ctx


def engine(max_memory: Optional[int] = None) -> Engine:
    """The shared engine whose memory cap is at least max_memory."""
    cap = 0 if max_memory is None or max_memory <= DEFAULT_MAX_MEMORY else int(max_memory)
    ctx = context()
    with _lock:
        e = _engines.get(cap)
        if e is None:
            e = _engines[cap] = Engine(ctx, cap)
        return e
