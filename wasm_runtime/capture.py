"""A call's standard streams: stdin handed to wasmtime from memory, stdout and stderr written
by wasmtime into files of a reusable slot, read back once the run ends, and capped.

Why files, not wasmtime-py's ``stdout_custom`` callbacks: those cost ~0.25 ms per call
(measured with ``unifaas bench runner``: wasmtime feeds them through an async stream and a
worker thread, and frees them with the store), four times the bare call. A slot's files
are plain files wasmtime writes with no Python per write; a slot is reused by one call at a
time, so a call opens two files (wasmtime truncates them) and reads them back with pread.

Caps: the epoch ticker runs :meth:`OutputSlot.check` every tick while a call runs; a stream
past its cap empties the store's fuel, so the run traps (OUT_OF_FUEL) at its next
instruction after the host call, and the overflow flag turns that into OUTPUT_TOO_LARGE. A
runaway writer can pass its cap by what it writes in one tick (10 ms) before it is stopped;
what is returned is cut at the cap.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import threading
from pathlib import Path

import wasmtime
from wasmtime import _ffi as ffi


def set_stdin_bytes(config: wasmtime.WasiConfig, data: bytes) -> None:
    """Give the call ``data`` as stdin from memory (wasmtime's C API has it; wasmtime-py
    does not wrap it). The config copies the bytes and owns the copy."""
    vec = ffi.wasm_byte_vec_t()
    view = ctypes.cast(ctypes.c_char_p(data), ctypes.POINTER(ffi.wasm_byte_t))
    ffi.wasm_byte_vec_new(ctypes.byref(vec), len(data), view)
    ffi.wasi_config_set_stdin_bytes(config.ptr(), ctypes.byref(vec))


class RunStopper:
    """Ends a run from another thread by taking its fuel, remembering what was left.

    It is the only thing the slot holds the Store by, and :meth:`detach` drops that
    reference after the run, so a slot reused later cannot reach an old store.
    """

    def __init__(self, store: wasmtime.Store) -> None:
        self._store: wasmtime.Store | None = store
        self._lock = threading.Lock()
        self.fuel_left: int | None = None

    def stop(self) -> None:
        with self._lock:
            store = self._store
            if store is None:
                return
            try:
                if self.fuel_left is None:
                    self.fuel_left = store.get_fuel()
                store.set_fuel(0)
            except wasmtime.WasmtimeError:
                # Cannot happen with fuel metering on; if it did, the timeout still ends
                # the run and the overflow flag still classifies it.
                pass

    def detach(self) -> None:
        with self._lock:
            self._store = None


class _Stream:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()
        # Our own descriptor on the file wasmtime reopens (and truncates) for each call.
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.cap = 0
        self.overflowed = False

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def read(self) -> bytes:
        size = self.size()
        if size > self.cap:
            self.overflowed = True
        return os.pread(self.fd, min(size, self.cap), 0)

    def close(self) -> None:
        os.close(self.fd)


@dataclasses.dataclass(frozen=True)
class Captured:
    stdout: bytes
    stderr: bytes
    overflowed: str | None  # "stdout" or "stderr" when that stream passed its cap


class OutputSlot:
    """stdout and stderr files for one call at a time."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.stdout = _Stream(directory / "stdout")
        self.stderr = _Stream(directory / "stderr")
        self._stopper: RunStopper | None = None

    def attach(
        self, config: wasmtime.WasiConfig, stopper: RunStopper, stdout_cap: int, stderr_cap: int
    ) -> None:
        """Point a call's WASI streams here (wasmtime opens and truncates both files)."""
        self.stdout.cap, self.stderr.cap = stdout_cap, stderr_cap
        self.stdout.overflowed = self.stderr.overflowed = False
        config.stdout_file = str(self.stdout.path)
        config.stderr_file = str(self.stderr.path)
        self._stopper = stopper

    def check(self) -> None:
        """Stop the run if a stream passed its cap (called by the ticker, every tick)."""
        stopper = self._stopper
        if stopper is None:
            return
        for stream in (self.stdout, self.stderr):
            if stream.size() > stream.cap:
                stream.overflowed = True
                stopper.stop()

    def finish(self) -> Captured:
        """The call's stdout and stderr, each cut at its cap."""
        self._stopper = None
        stdout, stderr = self.stdout.read(), self.stderr.read()
        overflowed = (
            "stdout" if self.stdout.overflowed else "stderr" if self.stderr.overflowed else None
        )
        return Captured(stdout, stderr, overflowed)

    def release(self) -> None:
        """The call is over: the ticker's checks no longer reach its store."""
        self._stopper = None

    def close(self) -> None:
        self.stdout.close()
        self.stderr.close()


class SlotPool:
    """Output slots under ``directory``, one per call in flight, made as calls need them."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._free: list[OutputSlot] = []
        self._made = 0
        self._lock = threading.Lock()

    def take(self) -> OutputSlot:
        with self._lock:
            if self._free:
                return self._free.pop()
            self._made += 1
            n = self._made
        return OutputSlot(self._directory / f"slot-{n}")

    def give_back(self, slot: OutputSlot) -> None:
        with self._lock:
            self._free.append(slot)

    def close(self) -> None:
        with self._lock:
            free, self._free = self._free, []
        for slot in free:
            slot.close()
