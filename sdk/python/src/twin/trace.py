"""MCAP traces: runs recorded by :meth:`Graph.run` (``trace=``) or
``twin graph run --trace``, recorded telemetry, any MCAP file.

A :class:`Trace` opens a file with the C reader, which treats files as
hostile input (every length bounded, every CRC checked): a corrupt file
raises :class:`~twin.ParseError` naming the byte offset. Port channels
(one per graph input and output, samples {"t", "value"} in JSON or ROS 2
CDR) read back as numpy arrays with :meth:`Trace.read`; other channels
give their raw messages with :meth:`Trace.messages`.

Thread safety: a Trace may be shared by threads; its calls are
serialised by a lock.
"""

from __future__ import annotations

import ctypes
import os
import threading
import weakref
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from . import _native
from .errors import InvalidArgument, NotFoundError, raise_err

PathLike = Union[str, os.PathLike]


def _free_reader(ptr: int) -> None:
    _native.lib().tw_trace_reader_close(ptr)


class Trace:
    """An open MCAP file. Make one with :meth:`Trace.open`."""

    def __init__(self) -> None:
        raise TypeError("use twin.Trace.open(path)")

    @classmethod
    def open(cls, path: PathLike) -> "Trace":
        """Opens the MCAP file at path (checking its magic, footer and
        summary). Raises NotFoundError, ParseError (corrupt, with the byte
        offset), LimitExceeded, NotSupported (a compression Twin does not
        read)."""
        lib = _native.lib()
        err = _native.TwErr()
        ptr = ctypes.c_void_p()
        rc = lib.tw_trace_reader_open(os.fsencode(path), None, ctypes.byref(ptr),
                                      ctypes.byref(err))
        if rc != 0:
            raise_err(rc, err)
        self = cls.__new__(cls)
        self._ptr: Optional[int] = ptr.value
        self._fin = weakref.finalize(self, _free_reader, ptr.value)
        self._lock = threading.Lock()
        self._err = _native.TwErr()
        self.path = os.fspath(path)
        return self

    def close(self) -> None:
        """Closes the file now (also done on garbage collection)."""
        with self._lock:
            self._ptr = None
            self._fin()

    @property
    def closed(self) -> bool:
        return not self._fin.alive

    def __enter__(self) -> "Trace":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<twin.Trace {self.path!r}{' closed' if self.closed else ''}>"

    def _live(self) -> int:
        if self._ptr is None:
            raise ValueError("the trace is closed")
        return self._ptr

    # --- what is in it ------------------------------------------------------

    @property
    def info(self) -> Dict[str, Any]:
        """Profile, library, file size, and the statistics: message_count,
        channel_count, chunk_count, message_start_time and
        message_end_time (ns)."""
        with self._lock:
            i = _native.lib().tw_trace_reader_info(self._live()).contents
            s = i.stats
            return {"profile": _native.text(i.profile), "library": _native.text(i.library),
                    "file_size": i.file_size, "has_summary": i.has_summary,
                    "message_count": s.message_count, "channel_count": s.channel_count,
                    "schema_count": s.schema_count, "chunk_count": s.chunk_count,
                    "metadata_count": s.metadata_count,
                    "attachment_count": s.attachment_count,
                    "message_start_time": s.message_start_time,
                    "message_end_time": s.message_end_time}

    @staticmethod
    def _channel_dict(c: "_native.TraceChannel") -> Dict[str, Any]:
        md = {_native.text(c.metadata[j].key): _native.text(c.metadata[j].value)
              for j in range(c.n_metadata)}
        d: Dict[str, Any] = {"id": c.id, "topic": _native.text(c.topic),
                             "encoding": _native.text(c.message_encoding),
                             "metadata": md,
                             "message_count": c.message_count if c.has_count else None}
        if "twin.unit" in md:
            d["unit"] = md["twin.unit"]
        if "twin.size" in md:
            try:
                d["size"] = int(md["twin.size"])
            except ValueError:
                pass
        return d

    @property
    def channels(self) -> Dict[str, Dict[str, Any]]:
        """Channels by topic: id, encoding, metadata, message_count, and
        for port channels unit and size."""
        lib = _native.lib()
        out: Dict[str, Dict[str, Any]] = {}
        with self._lock:
            r = self._live()
            for i in range(lib.tw_trace_reader_channel_count(r)):
                d = self._channel_dict(lib.tw_trace_reader_channel_at(r, i).contents)
                out.setdefault(d["topic"], d)
        return out

    @property
    def metadata(self) -> Dict[str, Dict[str, str]]:
        """Metadata records by name ("twin.graph", "twin.stats", ...)."""
        lib = _native.lib()
        out: Dict[str, Dict[str, str]] = {}
        with self._lock:
            r = self._live()
            for i in range(lib.tw_trace_reader_metadata_count(r)):
                m = lib.tw_trace_reader_metadata_at(r, i).contents
                out[_native.text(m.name)] = {
                    _native.text(m.kv[j].key): _native.text(m.kv[j].value)
                    for j in range(m.n)}
        return out

    def _find(self, channel: str) -> "_native.TraceChannel":
        lib = _native.lib()
        p = lib.tw_trace_reader_channel_find(self._live(), channel.encode())
        if not p:
            raise NotFoundError(f"{self.path}: no channel '{channel}'", -3, "ENOENT")
        return p.contents

    # --- reading ------------------------------------------------------------

    def messages(self, channel: Optional[str] = None
                 ) -> Iterator[Tuple[int, str, bytes]]:
        """(log_time ns, topic, body bytes) of every message in log-time
        order, of one channel's topic or of all."""
        lib = _native.lib()
        with self._lock:
            r = self._live()
            q = None
            if channel is not None:
                ch = self._find(channel)
                ids = (ctypes.c_uint16 * 1)(ch.id)
                q = _native.TraceQuery(ids, 1, 0, 2**64 - 1)
            it = ctypes.c_void_p()
            err = _native.TwErr()
            rc = lib.tw_trace_iter_new(r, ctypes.byref(q) if q is not None else None,
                                       ctypes.byref(it), ctypes.byref(err))
            if rc != 0:
                raise_err(rc, err)
            topics: Dict[int, str] = {}
            out: List[Tuple[int, str, bytes]] = []
            try:
                msg = _native.TraceMessage()
                while True:
                    rc = lib.tw_trace_iter_next(it, ctypes.byref(msg), ctypes.byref(err))
                    if rc == 0:
                        break
                    if rc < 0:
                        raise_err(rc, err)
                    cid = msg.channel_id
                    if cid not in topics:
                        topics[cid] = self._topic_of(cid)
                    out.append((msg.log_time, topics[cid],
                                ctypes.string_at(msg.data, msg.len) if msg.len else b""))
            finally:
                lib.tw_trace_iter_free(it)
        return iter(out)

    def _topic_of(self, cid: int) -> str:
        lib = _native.lib()
        r = self._live()
        for i in range(lib.tw_trace_reader_channel_count(r)):
            c = lib.tw_trace_reader_channel_at(r, i).contents
            if c.id == cid:
                return _native.text(c.topic)
        return ""

    def read(self, channel: str) -> Tuple[np.ndarray, np.ndarray]:
        """The samples of a port channel ("/outputs/x", ...): (t, values)
        with t the sample times in seconds (shape (n,)) and values of
        shape (n,) for ports of size 1, else (n, size). Raises
        NotFoundError for a channel the file does not have,
        NotSupported for a channel that is not a port's."""
        lib = _native.lib()
        with self._lock:
            r = self._live()
            ch = self._find(channel)
            count = int(ch.message_count) if ch.has_count else 0
            size = None
            md = {_native.text(ch.metadata[j].key): _native.text(ch.metadata[j].value)
                  for j in range(ch.n_metadata)}
            try:
                size = int(md.get("twin.size", ""))
            except ValueError:
                size = None
            cap = size if size and size > 0 else 64
            ids = (ctypes.c_uint16 * 1)(ch.id)
            q = _native.TraceQuery(ids, 1, 0, 2**64 - 1)
            it = ctypes.c_void_p()
            err = _native.TwErr()
            rc = lib.tw_trace_iter_new(r, ctypes.byref(q), ctypes.byref(it),
                                       ctypes.byref(err))
            if rc != 0:
                raise_err(rc, err)
            ts = np.empty(max(count, 16))
            vals = np.empty((max(count, 16), cap))
            n = 0
            width = size
            try:
                msg = _native.TraceMessage()
                t = ctypes.c_double()
                got = ctypes.c_size_t()
                chp = ctypes.byref(ch)
                while True:
                    rc = lib.tw_trace_iter_next(it, ctypes.byref(msg), ctypes.byref(err))
                    if rc == 0:
                        break
                    if rc < 0:
                        raise_err(rc, err)
                    if n == ts.shape[0]:
                        ts = np.resize(ts, 2 * n)
                        vals = np.concatenate([vals, np.empty_like(vals)])
                    row = vals[n]
                    rc = lib.tw_trace_port_decode(chp, msg.data, msg.len, ctypes.byref(t),
                                                  row.ctypes.data, cap, ctypes.byref(got),
                                                  ctypes.byref(err))
                    if rc == -8 and got.value > cap:  # TW_ERANGE: a wider sample
                        err.code = 0
                        cap = int(got.value)
                        wider = np.full((vals.shape[0], cap), np.nan)
                        wider[:, :vals.shape[1]] = vals
                        vals = wider
                        row = vals[n]
                        rc = lib.tw_trace_port_decode(chp, msg.data, msg.len,
                                                      ctypes.byref(t), row.ctypes.data, cap,
                                                      ctypes.byref(got), ctypes.byref(err))
                    if rc != 0:
                        raise_err(rc, err)
                    if width is None:
                        width = int(got.value)
                    elif got.value != width:
                        raise InvalidArgument(
                            f"{self.path}: channel '{channel}': sample {n} has "
                            f"{got.value} values, the channel {width}", -2, "EINVAL")
                    ts[n] = t.value
                    n += 1
            finally:
                lib.tw_trace_iter_free(it)
        width = width or 0
        values = vals[:n, :width]
        return ts[:n].copy(), (values[:, 0].copy() if width == 1 else values.copy())
