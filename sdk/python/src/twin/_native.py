"""The C library, found and bound through ctypes.

This module finds ``libtwin.so``, declares the C structures the SDK
passes across the boundary, and gives every function it calls its
argument and result types. Nothing here is public API; the classes in
:mod:`twin` wrap it.

Where the library is looked for, in this order (the first that exists
is loaded; a library named explicitly that fails to load is an error,
not a reason to try the next):

1. ``$TWIN_LIB``: a path to ``libtwin.so`` or to the directory holding it.
2. Next to the package: ``twin/libtwin.so`` (a wheel that bundles it).
3. The build directories of the source tree the package was installed
   from (``build/default`` first, then the others, newest first),
   skipping sanitizer and fuzzing builds, which cannot be loaded into a
   Python that was not started with their runtime.
4. The system's library path (``ctypes.util.find_library("twin")``).

Foreign calls made through a ``ctypes.CDLL`` release the GIL for their
whole duration, so runs and gradients leave other Python threads free;
callbacks from C into Python (a loss written in Python) take it back for
the time of the callback.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char,
    c_char_p,
    c_double,
    c_int,
    c_int64,
    c_size_t,
    c_uint,
    c_uint16,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path
from typing import List, Optional

_LIB_NAMES = ("libtwin.so", "libtwin.so.0")


def _source_roots() -> List[Path]:
    """Source trees the package may come from: the one recorded at
    install time, and any checkout that contains the package's files."""
    roots: List[Path] = []
    try:
        from . import _build_info  # written by setup.py at install time

        roots.append(Path(_build_info.SOURCE_ROOT))
    except ImportError:
        pass
    here = Path(__file__).resolve().parent
    for parent in here.parents:
        if (parent / "include" / "twin" / "twin.h").is_file():
            roots.append(parent)
            break
    return roots


def _is_instrumented(build_dir: Path) -> bool:
    """True for a sanitizer or fuzzing build (from its CMakeCache.txt)."""
    try:
        text = (build_dir / "CMakeCache.txt").read_text(errors="replace")
    except OSError:
        return False
    return "TW_SANITIZE:BOOL=ON" in text or "TW_FUZZ:BOOL=ON" in text


def candidates() -> List[Path]:
    """Every place looked at, in order (for messages and tests)."""
    out: List[Path] = []
    pkg = Path(__file__).resolve().parent
    out += [pkg / n for n in _LIB_NAMES]
    for root in _source_roots():
        build = root / "build"
        if not build.is_dir():
            continue
        dirs = [d for d in build.iterdir() if (d / "libtwin.so").exists()]
        dirs = [d for d in dirs if not _is_instrumented(d)]
        dirs.sort(key=lambda d: (d.name != "default",
                                 -(d / "libtwin.so").stat().st_mtime))
        out += [d / "libtwin.so" for d in dirs]
    return out


def find_library() -> str:
    """The path of the library to load (see the module docstring)."""
    env = os.environ.get("TWIN_LIB")
    if env:
        p = Path(env)
        if p.is_dir():
            p = p / "libtwin.so"
        if not p.exists():
            raise OSError(f"TWIN_LIB={env}: no such library")
        return str(p)
    for p in candidates():
        if p.exists():
            return str(p)
    sys_lib = ctypes.util.find_library("twin")
    if sys_lib:
        return sys_lib
    raise OSError(
        "libtwin.so not found: set TWIN_LIB to its path, or build the "
        "library (cmake --preset default && cmake --build --preset default); "
        "looked in: " + ", ".join(str(p) for p in candidates()) or "(nothing)")


# --- Structures -------------------------------------------------------------


class TwErr(Structure):
    _fields_ = [("code", c_int), ("msg", c_char * 1024)]


class TwBuf(Structure):
    _fields_ = [("data", c_void_p), ("len", c_size_t), ("cap", c_size_t)]


class WasmEngineOpts(Structure):
    _fields_ = [("meters", c_uint), ("max_memory", c_size_t),
                ("max_stack", c_size_t), ("max_module_size", c_size_t),
                ("max_function_size", c_size_t), ("max_functions", c_size_t),
                ("pool_size", c_uint32), ("epoch_tick_us", c_uint32)]


class WasmModuleOpts(Structure):
    _fields_ = [("allow_wasi", c_bool), ("name", c_char_p)]


class WasmPort(Structure):
    _fields_ = [("name", c_char_p), ("unit", c_char_p), ("size", c_size_t),
                ("dtype", c_int), ("default_", POINTER(c_double)),
                ("min", POINTER(c_double)), ("max", POINTER(c_double)),
                ("feedthrough_all", c_bool),
                ("feedthrough", POINTER(c_size_t)),
                ("nfeedthrough", c_size_t)]


class WasmDesc(Structure):
    _fields_ = [("name", c_char_p), ("version", c_char_p),
                ("state", POINTER(WasmPort)), ("inputs", POINTER(WasmPort)),
                ("outputs", POINTER(WasmPort)), ("params", POINTER(WasmPort)),
                ("nstate", c_size_t), ("ninputs", c_size_t),
                ("noutputs", c_size_t), ("nparams", c_size_t),
                ("nx", c_size_t), ("nu", c_size_t), ("ny", c_size_t),
                ("ntheta", c_size_t), ("differentiable", c_bool),
                ("json", c_char_p)]


class WasmLimits(Structure):
    _fields_ = [("fuel", c_uint64), ("timeout_ms", c_uint32),
                ("max_memory", c_size_t)]


class WasmUsage(Structure):
    _fields_ = [("calls", c_uint64), ("fuel_used", c_uint64),
                ("memory_bytes", c_size_t), ("peak_memory", c_size_t),
                ("wall_ms", c_double)]


class GraphOpts(Structure):
    _fields_ = [("ctx", c_void_p), ("engine", c_void_p),
                ("limits", WasmLimits), ("store", c_char_p)]


LOSS_TERM = CFUNCTYPE(c_int, c_void_p, c_int64, c_int64, POINTER(c_double),
                      POINTER(c_double), POINTER(c_double), POINTER(c_double),
                      POINTER(c_double), c_void_p)


class Loss(Structure):
    _fields_ = [("term", c_void_p), ("final_only", c_bool), ("ud", c_void_p)]


class GraphSqerr(Structure):
    _fields_ = [("ny", c_size_t), ("ticks", c_int64), ("target", c_void_p),
                ("weight", c_void_p)]


class GraphBlockStats(Structure):
    _fields_ = [("name", c_char_p), ("kind", c_char_p), ("steps", c_uint64),
                ("vjps", c_uint64), ("wall_ms", c_double), ("cpu_ms", c_double),
                ("memory_bytes", c_size_t), ("wasm_memory", c_size_t),
                ("fuel", c_uint64)]


class GraphRunStats(Structure):
    _fields_ = [("ticks", c_int64), ("wall_ms", c_double), ("cpu_ms", c_double),
                ("memory_bytes", c_size_t), ("fuel", c_uint64),
                ("checkpoint_bytes", c_size_t)]


class GraphTraceOpts(Structure):
    _fields_ = [("encoding", c_int), ("compression", c_int),
                ("no_sync", c_bool)]


class ComposeDiag(Structure):
    _fields_ = [("file", c_char_p), ("line", c_uint), ("col", c_uint),
                ("warning", c_bool), ("code", c_char_p), ("message", c_char_p)]


class ComposeDiags(Structure):
    _fields_ = [("items", POINTER(ComposeDiag)), ("n", c_size_t),
                ("cap", c_size_t), ("errors", c_size_t),
                ("warnings", c_size_t)]


class ComposeOpts(Structure):
    _fields_ = [("ctx", c_void_p), ("engine", c_void_p),
                ("limits", WasmLimits), ("store", c_char_p),
                ("profile", c_char_p), ("param_files", POINTER(c_char_p)),
                ("nparam_files", c_size_t)]


class ComposeSource(Structure):
    _fields_ = [("name", c_char_p), ("kind", c_int), ("path", c_char_p),
                ("map", POINTER(c_char_p)), ("nmap", c_size_t)]


class TraceKv(Structure):
    _fields_ = [("key", c_char_p), ("value", c_char_p)]


class TraceChannel(Structure):
    _fields_ = [("id", c_uint16), ("schema_id", c_uint16), ("topic", c_char_p),
                ("message_encoding", c_char_p),
                ("metadata", POINTER(TraceKv)), ("n_metadata", c_size_t),
                ("message_count", c_uint64), ("has_count", c_bool)]


class TraceSchema(Structure):
    _fields_ = [("id", c_uint16), ("name", c_char_p), ("encoding", c_char_p),
                ("data", c_void_p), ("len", c_size_t)]


class TraceStats(Structure):
    _fields_ = [("message_count", c_uint64), ("schema_count", c_uint16),
                ("channel_count", c_uint32), ("attachment_count", c_uint32),
                ("metadata_count", c_uint32), ("chunk_count", c_uint32),
                ("message_start_time", c_uint64),
                ("message_end_time", c_uint64)]


class TraceInfo(Structure):
    _fields_ = [("profile", c_char_p), ("library", c_char_p),
                ("file_size", c_uint64), ("has_summary", c_bool),
                ("has_statistics", c_bool), ("scanned", c_bool),
                ("indexed", c_bool), ("stats", TraceStats)]


class TraceMetadata(Structure):
    _fields_ = [("name", c_char_p), ("kv", POINTER(TraceKv)), ("n", c_size_t)]


class TraceQuery(Structure):
    _fields_ = [("channels", POINTER(c_uint16)), ("n_channels", c_size_t),
                ("start_time", c_uint64), ("end_time", c_uint64)]


class TraceMessage(Structure):
    _fields_ = [("channel_id", c_uint16), ("sequence", c_uint32),
                ("log_time", c_uint64), ("publish_time", c_uint64),
                ("data", c_void_p), ("len", c_size_t)]


class CtxOptions(Structure):
    _fields_ = [("threads", c_uint), ("log_level", c_int),
                ("log_format", c_int), ("log_sink", c_void_p),
                ("log_ud", c_void_p)]


# --- Functions --------------------------------------------------------------

P = c_void_p
D = POINTER(c_double)
E = POINTER(TwErr)

# name: (restype, argtypes)
_PROTOS = {
    "tw_strerror": (c_char_p, [c_int]),
    "tw_err_name": (c_char_p, [c_int]),
    "tw_alloc_live": (ctypes.c_long, []),
    "tw_version_string": (c_char_p, []),
    "tw_ctx_options_init": (None, [POINTER(CtxOptions)]),
    "tw_ctx_new": (c_int, [POINTER(CtxOptions), POINTER(P), E]),
    "tw_ctx_free": (None, [P]),
    "tw_buf_fini": (None, [POINTER(TwBuf)]),
    # wasm
    "tw_wasm_engine_new": (c_int, [P, POINTER(WasmEngineOpts), POINTER(P), E]),
    "tw_wasm_engine_free": (None, [P]),
    "tw_wasm_module_load": (c_int, [P, c_char_p, c_size_t,
                                    POINTER(WasmModuleOpts), POINTER(P), E]),
    "tw_wasm_module_load_file": (c_int, [P, c_char_p, POINTER(WasmModuleOpts),
                                         POINTER(P), E]),
    "tw_wasm_module_free": (None, [P]),
    "tw_wasm_module_desc": (POINTER(WasmDesc), [P]),
    "tw_wasm_module_digest": (c_char_p, [P]),
    "tw_wasm_module_size": (c_size_t, [P]),
    "tw_wasm_instance_new": (c_int, [P, POINTER(WasmLimits), POINTER(P), E]),
    "tw_wasm_instance_free": (None, [P]),
    "tw_wasm_instance_reset": (c_int, [P, E]),
    "tw_wasm_instance_usage": (None, [P, POINTER(WasmUsage)]),
    "tw_wasm_init": (c_int, [P, P, P, E]),
    "tw_wasm_step": (c_int, [P, c_double, c_double, P, P, P, P, P, E]),
    "tw_wasm_step_vjp": (c_int, [P, c_double, c_double, P, P, P, P, P, P, P,
                                 P, E]),
    # graph
    "tw_graph_load": (c_int, [c_char_p, POINTER(GraphOpts), POINTER(TwBuf),
                              POINTER(P), E]),
    "tw_graph_parse": (c_int, [c_char_p, c_size_t, c_char_p, c_char_p,
                               POINTER(GraphOpts), POINTER(TwBuf), POINTER(P),
                               E]),
    "tw_graph_free": (None, [P]),
    "tw_graph_name": (c_char_p, [P]),
    "tw_graph_dt": (c_double, [P]),
    "tw_graph_nblocks": (c_size_t, [P]),
    "tw_graph_block_name": (c_char_p, [P, c_size_t]),
    "tw_graph_ninputs": (c_size_t, [P]),
    "tw_graph_noutputs": (c_size_t, [P]),
    "tw_graph_input_name": (c_char_p, [P, c_size_t, POINTER(c_size_t)]),
    "tw_graph_output_name": (c_char_p, [P, c_size_t, POINTER(c_size_t)]),
    "tw_graph_input_unit": (c_char_p, [P, c_size_t]),
    "tw_graph_output_unit": (c_char_p, [P, c_size_t]),
    "tw_graph_input_dtype": (c_int, [P, c_size_t]),
    "tw_graph_output_dtype": (c_int, [P, c_size_t]),
    "tw_graph_input_width": (c_size_t, [P]),
    "tw_graph_output_width": (c_size_t, [P]),
    "tw_graph_run": (c_int, [P, c_int64, P, P, E]),
    "tw_graph_reset": (c_int, [P, E]),
    "tw_graph_advance": (c_int, [P, c_int64, P, P, E]),
    "tw_graph_nparams": (c_size_t, [P]),
    "tw_graph_nparam_ports": (c_size_t, [P]),
    "tw_graph_param_name": (c_char_p, [P, c_size_t, POINTER(c_size_t),
                                       POINTER(c_size_t)]),
    "tw_graph_get_params": (None, [P, P]),
    "tw_graph_set_params": (None, [P, P]),
    "tw_graph_stats": (c_size_t, [P, POINTER(GraphBlockStats), c_size_t,
                                  POINTER(GraphRunStats)]),
    "tw_graph_set_accounting": (None, [P, c_bool]),
    "tw_graph_set_budget": (None, [P, c_double, c_size_t]),
    "tw_graph_grad": (c_int, [P, c_int64, P, POINTER(Loss), POINTER(c_char_p),
                              c_size_t, c_char_p, D, P, E]),
    "tw_graph_sqerr_loss": (None, [POINTER(GraphSqerr), POINTER(Loss)]),
    "tw_graph_trace_opts_init": (None, [POINTER(GraphTraceOpts)]),
    "tw_graph_trace_open": (c_int, [P, c_char_p, POINTER(GraphTraceOpts),
                                    POINTER(P), E]),
    "tw_graph_trace_write": (c_int, [P, c_int64, c_int64, P, P, E]),
    "tw_graph_trace_close": (c_int, [P, P, E]),
    "tw_graph_trace_abort": (None, [P]),
    "tw_graph_read_inputs": (c_int, [P, c_char_p, POINTER(c_char_p), c_size_t,
                                     c_int64, P, E]),
    # compose
    "tw_compose_diags_init": (None, [POINTER(ComposeDiags)]),
    "tw_compose_diags_fini": (None, [POINTER(ComposeDiags)]),
    "tw_compose_load": (c_int, [c_char_p, POINTER(ComposeOpts),
                                POINTER(ComposeDiags), POINTER(P), E]),
    "tw_compose_parse": (c_int, [c_char_p, c_size_t, c_char_p, c_char_p,
                                 POINTER(ComposeOpts), POINTER(ComposeDiags),
                                 POINTER(P), E]),
    "tw_compose_free": (None, [P]),
    "tw_compose_name": (c_char_p, [P]),
    "tw_compose_graph": (P, [P]),
    "tw_compose_nsources": (c_size_t, [P]),
    "tw_compose_source_at": (POINTER(ComposeSource), [P, c_size_t]),
    # trace
    "tw_trace_reader_open": (c_int, [c_char_p, P, POINTER(P), E]),
    "tw_trace_reader_close": (None, [P]),
    "tw_trace_reader_info": (POINTER(TraceInfo), [P]),
    "tw_trace_reader_channel_count": (c_size_t, [P]),
    "tw_trace_reader_channel_at": (POINTER(TraceChannel), [P, c_size_t]),
    "tw_trace_reader_channel_find": (POINTER(TraceChannel), [P, c_char_p]),
    "tw_trace_reader_schema_get": (POINTER(TraceSchema), [P, c_uint16]),
    "tw_trace_reader_metadata_count": (c_size_t, [P]),
    "tw_trace_reader_metadata_at": (POINTER(TraceMetadata), [P, c_size_t]),
    "tw_trace_iter_new": (c_int, [P, POINTER(TraceQuery), POINTER(P), E]),
    "tw_trace_iter_next": (c_int, [P, POINTER(TraceMessage), E]),
    "tw_trace_iter_free": (None, [P]),
    "tw_trace_port_decode": (c_int, [POINTER(TraceChannel), c_void_p, c_size_t,
                                     D, P, c_size_t, POINTER(c_size_t), E]),
    "tw_err_record": (c_int, [P, c_int, c_char_p, c_char_p]),
}

_lib: Optional[ctypes.CDLL] = None
_lib_path: Optional[str] = None


def lib() -> ctypes.CDLL:
    """The loaded library, loaded and bound on first use."""
    global _lib, _lib_path
    if _lib is not None:
        return _lib
    path = find_library()
    try:
        handle = ctypes.CDLL(path)
    except OSError as e:
        raise OSError(f"cannot load the Twin library {path}: {e}") from e
    missing = []
    for name, (res, args) in _PROTOS.items():
        try:
            fn = getattr(handle, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.restype = res
        fn.argtypes = args
    # tw_version_string is optional (older libraries).
    missing = [m for m in missing if m != "tw_version_string"]
    if missing:
        raise OSError(f"{path} is not a Twin library this SDK can use: "
                      f"missing {', '.join(missing)}")
    _lib, _lib_path = handle, path
    return handle


def lib_path() -> str:
    """The path of the loaded library."""
    lib()
    assert _lib_path is not None
    return _lib_path


def text(b: Optional[bytes]) -> str:
    """A C string as str ('' for NULL), invalid UTF-8 replaced."""
    return b.decode("utf-8", "replace") if b else ""
