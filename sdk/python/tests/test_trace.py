"""Traces: what an MCAP file holds, port samples as arrays, raw messages,
and damaged or missing files as exceptions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import twin


@pytest.fixture
def run_mcap(spring: twin.Graph, tmp_path: Path) -> Path:
    spring.run(100, {"F": np.arange(100) * 0.1}, trace=tmp_path / "run.mcap")
    return tmp_path / "run.mcap"


def test_channels_info_metadata(run_mcap: Path) -> None:
    with twin.Trace.open(run_mcap) as tr:
        ch = tr.channels
        assert list(ch) == ["/inputs/F", "/outputs/x", "/outputs/v"]
        assert ch["/outputs/x"]["unit"] == "m" and ch["/outputs/x"]["size"] == 1
        assert ch["/outputs/x"]["message_count"] == 100
        assert ch["/outputs/x"]["encoding"] == "json"
        info = tr.info
        assert info["message_count"] == 300
        assert info["message_end_time"] == round(99 * 0.01 * 1e9)
        assert tr.metadata["twin.graph"]["outputs"] == "x,v"


def test_read_and_messages(run_mcap: Path) -> None:
    with twin.Trace.open(run_mcap) as tr:
        t, f = tr.read("/inputs/F")
        assert np.array_equal(f, np.arange(100) * 0.1)
        assert np.allclose(t, np.arange(100) * 0.01, rtol=0, atol=1e-15)
        msgs = list(tr.messages("/outputs/v"))
        assert len(msgs) == 100 and msgs[0][1] == "/outputs/v"
        assert b'"value"' in msgs[0][2]
        assert [m[0] for m in msgs] == sorted(m[0] for m in msgs)
        assert len(list(tr.messages())) == 300
        with pytest.raises(twin.NotFoundError, match="no channel '/nope'"):
            tr.read("/nope")


def test_damaged_and_missing_files(run_mcap: Path, tmp_path: Path) -> None:
    data = run_mcap.read_bytes()
    (tmp_path / "cut.mcap").write_bytes(data[: len(data) // 2])
    with pytest.raises(twin.ParseError, match="cut.mcap"):
        twin.Trace.open(tmp_path / "cut.mcap")
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF
    (tmp_path / "flip.mcap").write_bytes(bytes(flipped))
    try:
        with twin.Trace.open(tmp_path / "flip.mcap") as tr:
            for topic in tr.channels:
                tr.read(topic)
    except twin.TwinError as e:
        assert e.message
    (tmp_path / "text.mcap").write_text("hello")
    with pytest.raises(twin.ParseError):
        twin.Trace.open(tmp_path / "text.mcap")
    with pytest.raises(twin.NotFoundError):
        twin.Trace.open(tmp_path / "missing.mcap")


def test_closed_trace(run_mcap: Path) -> None:
    tr = twin.Trace.open(run_mcap)
    tr.close()
    with pytest.raises(ValueError, match="closed"):
        tr.channels
