"""What a load needs (its artifact, its files bundle), written to files in the guest a
chunk at a time before the load that names them.

A whole artifact in one frame held three copies in guest RAM at once (the frame, the
bytes, wasmtime's own copy), and a fourth for the memory image of its data: a 100 MiB
module took a 512 MiB guest down. Staged, it is one file, which wasmtime maps instead of
copying (``Module.deserialize_file``) and initialises linear memory from copy-on-write.
The shim sends chunks of at most ``protocol.STAGE_CHUNK_BYTES`` in order; each must
start where the last one ended, so a chunk lost or repeated is an error, not a corrupt
artifact.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from wasm_runtime.errors import ProtocolError

# One staged blob's bound: above the largest artifact or files bundle a deploy accepts,
# and far below what a guest could hold, so a runaway host cannot fill its RAM.
STAGE_MAX_BYTES = 256 * 1024 * 1024
# Blobs staged and not yet taken (a load whose shim died mid-way leaves its own).
STAGES_MAX = 16


class Staging:
    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._dir.mkdir(parents=True, exist_ok=True)
        self._sizes: dict[int, int] = {}
        self._lock = threading.Lock()

    def _path(self, stage: int) -> Path:
        return self._dir / str(stage)

    def write(self, stage: int, offset: int, data: bytes | memoryview) -> int:
        """Append a chunk to blob ``stage`` at ``offset`` (0 starts it); its size now."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ProtocolError(f"stage {stage}: a chunk's data is {type(data).__name__}")
        with self._lock:
            size = self._sizes.get(stage)
            if size is None:
                if offset != 0:
                    raise ProtocolError(f"stage {stage} is unknown (its first chunk is lost)")
                if len(self._sizes) >= STAGES_MAX:
                    raise ProtocolError(f"more than {STAGES_MAX} blobs staged and not loaded")
                size = 0
            elif offset != size:
                raise ProtocolError(f"stage {stage} holds {size} bytes; a chunk at {offset}")
            if size + len(data) > STAGE_MAX_BYTES:
                self._drop(stage)
                raise ProtocolError(f"stage {stage} would exceed {STAGE_MAX_BYTES} bytes")
            flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if offset else os.O_TRUNC)
            fd = os.open(self._path(stage), flags, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            self._sizes[stage] = size + len(data)
            return size + len(data)

    def take(self, blobs: list[tuple[int, int]]) -> list[Path]:
        """The files of complete blobs, given as (stage, size); the caller unlinks them
        (what maps one keeps its pages). All are taken, or none and every one removed."""
        with self._lock:
            held = [(stage, size, self._sizes.pop(stage, None)) for stage, size in blobs]
        paths = [self._path(stage) for stage, _, _ in held]
        for stage, size, got in held:
            if got != size:
                for path in paths:
                    path.unlink(missing_ok=True)
                if got is None:
                    raise ProtocolError(f"stage {stage} was never written")
                raise ProtocolError(f"stage {stage} holds {got} of {size} bytes")
        return paths

    def _drop(self, stage: int) -> None:
        self._sizes.pop(stage, None)
        self._path(stage).unlink(missing_ok=True)

    @property
    def staged(self) -> int:
        with self._lock:
            return len(self._sizes)
