"""The host of WebAssembly components that export ``wasi:http/incoming-handler@0.2.x``.

wasmtime's C API serves only outgoing HTTP, so the host side of every WASI interface a
component imports is Python here, one module per WIT package (:mod:`.io`, :mod:`.clocks`,
:mod:`.random`, :mod:`.cli`, :mod:`.filesystem`, :mod:`.http`). Each declares its
interfaces as data (:class:`~.linking.Interface`: resource kinds and host functions by
their WIT names); :mod:`.linking` sorts a component's imports into granted, denied and
unknown, and builds its linker; :mod:`.runner` runs one call in a fresh Store with the
platform's limits, its state in a per-call :class:`~.call.Call`.

Ships inside the guest with the rest of :mod:`wasm_runtime`; imports nothing of the host.
"""
