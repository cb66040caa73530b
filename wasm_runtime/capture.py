"""Capped stdout/stderr capture that ends a run the moment a cap is exceeded."""

from __future__ import annotations

import wasmtime


class OutputSink:
    """A WASI stdout/stderr callback that keeps at most ``cap`` bytes.

    wasmtime calls it from one of its own worker threads while the wasm thread
    waits inside fd_write. When the cap is exceeded it empties the store's fuel:
    compiled code reloads fuel from the store after every host call, so the run
    traps (OUT_OF_FUEL) before its next instruction; the ``overflowed`` flag then
    turns that into OUTPUT_TOO_LARGE. (Setting an epoch deadline of 0 here does
    not work: compiled code caches the deadline until the epoch changes.)
    """

    def __init__(self, cap: int, stop: RunStopper) -> None:
        self._cap = cap
        self._stop = stop
        self._chunks: list[bytes] = []
        self._size = 0
        self.overflowed = False

    def __call__(self, data: bytes) -> int:
        # Must never raise: wasmtime-py would print the exception and report EIO.
        room = self._cap - self._size
        if len(data) > room:
            if room > 0:
                self._chunks.append(data[:room])
                self._size += room
            self.overflowed = True
            self._stop.stop()  # never raises
        else:
            self._chunks.append(data)
            self._size += len(data)
        return len(data)  # claim it was written: the run is ending anyway

    def getvalue(self) -> bytes:
        return b"".join(self._chunks)


class RunStopper:
    """Ends a run from an output callback by taking its fuel, remembering what was left.

    It is the only thing the callbacks hold the Store by, and :meth:`detach` drops
    that reference after the run: wasmtime-py keeps the callbacks alive until the
    Store is freed, so a callback that owned the Store would leak both.
    """

    def __init__(self, store: wasmtime.Store) -> None:
        self._store: wasmtime.Store | None = store
        self.fuel_left: int | None = None

    def stop(self) -> None:
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
        self._store = None
