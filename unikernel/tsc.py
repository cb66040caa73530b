"""The host's TSC frequency, for TCG guests that cannot measure their own.

Under TCG a guest's TSC is the host's (QEMU reads the host counter), but the
guest kernel fails to calibrate it: its PIT loop runs ~10x slow, and the microvm
machine has no HPET or ACPI PM timer to check against. It then marks the TSC
unstable and keeps time with jiffies, which need the periodic tick: an idle
guest woke ~200 times a second and cost ~2.9% of a core (measured, 6 clones).
The kernel sometimes calibrates anyway, which is why earlier measurements of
idle clones varied between 0.1% and 2.9%. Told the frequency
(``tsc_early_khz``), it uses the TSC and stops the tick when idle.

The frequency is read here with the ``rdtsc`` instruction itself, timed against
the host's monotonic clock; on a host where that cannot run (not x86-64,
executable memory refused) there is no hint and the guest calibrates as before.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import platform
import statistics
import time

# rdtsc; shl rdx, 32; or rax, rdx; ret
_RDTSC = bytes.fromhex("0f3148c1e2204809d0c3")
SAMPLE_S = 0.05
SAMPLES = 3


@functools.cache
def host_tsc_khz() -> int | None:
    """The host's TSC ticks per millisecond, or None when it cannot be read."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        code = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except OSError:
        return None
    code.write(_RDTSC)
    address = ctypes.addressof(ctypes.c_char.from_buffer(code))
    rdtsc = ctypes.CFUNCTYPE(ctypes.c_uint64)(address)
    rates = []
    for _ in range(SAMPLES):
        t0, c0 = time.perf_counter_ns(), rdtsc()
        time.sleep(SAMPLE_S)
        c1, t1 = rdtsc(), time.perf_counter_ns()
        rates.append((c1 - c0) * 1_000_000 / (t1 - t0))
    khz = round(statistics.median(rates))
    return khz if khz > 0 else None


def tcg_kernel_args() -> str:
    """Kernel arguments for a TCG guest: its TSC frequency, so the TSC is its clock."""
    khz = host_tsc_khz()
    return f"tsc_early_khz={khz} tsc=reliable" if khz else ""
