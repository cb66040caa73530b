"""The agent's staging of a load's blobs, chunk by chunk (no VM: a directory)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasm_runtime import staging
from wasm_runtime.errors import ProtocolError
from wasm_runtime.staging import Staging


def test_chunks_in_order_make_the_blob(tmp_path: Path) -> None:
    s = Staging(tmp_path / "st")
    assert s.write(1, 0, b"abc") == 3
    assert s.write(1, 3, memoryview(b"defg")) == 7
    assert s.write(2, 0, b"") == 0
    paths = s.take([(1, 7), (2, 0)])
    assert [p.read_bytes() for p in paths] == [b"abcdefg", b""]
    assert s.staged == 0


def test_a_chunk_lost_repeated_or_unstarted_is_refused(tmp_path: Path) -> None:
    s = Staging(tmp_path)
    s.write(1, 0, b"abc")
    with pytest.raises(ProtocolError, match="holds 3 bytes; a chunk at 6"):
        s.write(1, 6, b"x")
    with pytest.raises(ProtocolError, match="holds 3 bytes; a chunk at 0"):
        s.write(1, 0, b"abc")  # restarting a stage in use is a bug of the sender
    with pytest.raises(ProtocolError, match="first chunk is lost"):
        s.write(9, 4, b"x")
    with pytest.raises(ProtocolError, match="data is int"):
        s.write(3, 0, 7)  # type: ignore[arg-type]


def test_take_is_all_or_nothing_and_removes_what_it_refuses(tmp_path: Path) -> None:
    s = Staging(tmp_path)
    s.write(1, 0, b"whole")
    s.write(2, 0, b"par")
    with pytest.raises(ProtocolError, match="stage 2 holds 3 of 10 bytes"):
        s.take([(1, 5), (2, 10)])
    assert list(tmp_path.iterdir()) == [] and s.staged == 0
    with pytest.raises(ProtocolError, match="never written"):
        s.take([(1, 5)])


def test_bounds_on_size_and_on_blobs_left_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(staging, "STAGE_MAX_BYTES", 10)
    s = Staging(tmp_path)
    s.write(1, 0, b"123456")
    with pytest.raises(ProtocolError, match="exceed 10 bytes"):
        s.write(1, 6, b"12345")
    assert not (tmp_path / "1").exists()  # dropped, so the guest does not keep it
    for stage in range(staging.STAGES_MAX):
        s.write(100 + stage, 0, b"x")
    with pytest.raises(ProtocolError, match=f"more than {staging.STAGES_MAX} blobs"):
        s.write(999, 0, b"x")
