"""Precompiling an untrusted module in a child process the host can stop: bounded in wall
time (killed), CPU time and address space (rlimits), and in the artifact it may produce.

Static bounds (``shape.ModuleBounds``) refuse the obvious compile bombs before this runs;
what they cannot foresee (a module within them that costs the compiler minutes or GiBs)
ends here as ``InvalidModule`` instead of holding the node's cores or memory.

The child is ``python -m wasm_runtime.compile_child ARTIFACT_MAX``: the module on stdin,
the artifact on stdout, or an ``InvalidModule`` as JSON on stderr with exit code
``EXIT_INVALID``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import os
import resource
import sys

from wasm_runtime.compile_child import EXIT_INVALID, EXIT_NO_MEMORY
from wasm_runtime.errors import InvalidModule, WasmRuntimeError
from wasm_runtime.types import MIB

_STDERR_TAIL = 2000


@dataclasses.dataclass(frozen=True)
class CompileLimits:
    # Measured here (TCG host, 2 cores): 90,000 tiny functions, near the static bound,
    # compile in 4.4 s to a 30 MiB artifact; ordinary modules in well under a second.
    timeout_s: float = 30.0
    memory_bytes: int = 2048 * MIB  # the child's address space
    # The most a VM loads. The guest keeps an artifact once, as a file it maps
    # (wasm_runtime.staging), so a 100 MiB module (its data compiles to as much) runs in
    # a 512 MiB guest; whole in one frame it once took the guest down while loading.
    artifact_bytes: int = 128 * MIB


# Components are larger: a componentize-py app is an 18 MB component (a CPython) that
# compiled here in 4 s idle and 20 s with both cores busy, to a 40 MB artifact; Spin's
# Python SDK builds 38 MB ones.
COMPONENT_COMPILE_LIMITS = CompileLimits(timeout_s=300.0, memory_bytes=8192 * MIB)


class CompileWorkerError(WasmRuntimeError):
    """The compile worker itself failed (not the module): a bug or a broken install."""


def _limit_child(limits: CompileLimits) -> None:
    # Runs in the child between fork and exec. CPU time counts every compiler thread, so
    # it bounds an orphaned child too (the parent is what enforces the wall time).
    cpu_s = math.ceil(limits.timeout_s * (os.cpu_count() or 1)) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # an abort is an answer, not a dump


async def precompile_isolated(wasm: bytes, limits: CompileLimits | None = None) -> bytes:
    """The artifact of ``wasm`` as ``engine.precompile`` makes it, compiled in a child."""
    limits = limits or CompileLimits()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wasm_runtime.compile_child",
        str(limits.artifact_bytes),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=lambda: _limit_child(limits),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(wasm), limits.timeout_s)
    except TimeoutError:
        raise InvalidModule(
            "compile_timeout",
            f"compiling the module took longer than the limit of {limits.timeout_s:g} s",
        ) from None
    finally:
        if proc.returncode is None:  # timed out or cancelled: never leave it running
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    code = proc.returncode
    if code == 0:
        return out
    if code == EXIT_INVALID:
        refused = json.loads(err)
        raise InvalidModule(refused["reason"], refused["message"])
    if code == EXIT_NO_MEMORY or (code is not None and code < 0):
        # Out of address space (Python's MemoryError, or the compiler aborting on a failed
        # allocation) or past its CPU time: the module costs more than a node gives it.
        raise InvalidModule(
            "compile_resources",
            f"compiling the module needed more than {limits.memory_bytes // MIB} MiB of "
            f"memory or {limits.timeout_s:g} s of the host's cores",
        )
    tail = err.decode(errors="replace")[-_STDERR_TAIL:]
    raise CompileWorkerError(f"the compile worker exited with {code}: {tail}")
