"""The agent's chores as PID 1 of its guest, with no init system to do them: /dev and /proc,
the host's port, the kernel RNG, powering off, and keeping QEMU's software TLB grown.

Only the agent's ``main`` (in the guest) uses these; the agent itself also runs on the host
(tests, the image's import trace), where none of them is done.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct
import sys
import threading
import time

PORT_PATH = "/dev/vport0p1"
# The port's device node exists before the host side is wired up; open()
# fails with ENXIO until then, so retry for a while.
PORT_OPEN_RETRY_S = 0.01
PORT_OPEN_DEADLINE_S = 10.0
_RB_AUTOBOOT = 0x01234567
_MS_NOSUID = 2
# <linux/random.h>: _IOW('R', 0x03, int[2]) and _IO('R', 0x07).
_RNDADDENTROPY = 0x40085203
_RNDRESEEDCRNG = 0x5207


def libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def mount(lib: ctypes.CDLL, source: str, target: str, fstype: str) -> None:
    os.makedirs(target, exist_ok=True)
    if lib.mount(source.encode(), target.encode(), fstype.encode(), _MS_NOSUID, None) != 0:
        err = ctypes.get_errno()
        if err != errno.EBUSY:
            print(f"agent: mount {fstype} on {target}: {os.strerror(err)}", file=sys.stderr)


def open_port(path: str = PORT_PATH) -> int:
    deadline = time.monotonic() + PORT_OPEN_DEADLINE_S
    while True:
        try:
            return os.open(path, os.O_RDWR)
        except OSError as err:
            if err.errno not in (errno.ENXIO, errno.ENOENT) or time.monotonic() > deadline:
                raise
            time.sleep(PORT_OPEN_RETRY_S)


def power_off(lib: ctypes.CDLL) -> None:
    # The VM runs with -no-reboot, so a reboot request ends QEMU; a halted
    # guest without ACPI would otherwise leave QEMU running.
    os.sync()
    lib.reboot(_RB_AUTOBOOT)
    os._exit(0)


def reseed_kernel_rng(entropy: bytes) -> None:
    """Credit ``entropy`` to the input pool and reseed the CRNG from it now (needs root)."""
    request = struct.pack("ii", len(entropy) * 8, len(entropy)) + entropy
    with open("/dev/urandom", "wb") as f:
        fcntl.ioctl(f, _RNDADDENTROPY, request)
        fcntl.ioctl(f, _RNDRESEEDCRNG)


class TlbWarmer:
    """Makes QEMU grow its software TLB in a guest restored from a snapshot (under TCG).

    QEMU translates guest addresses through a software TLB that starts small in every new
    QEMU process (256 entries per MMU mode) and is resized only when the guest flushes it:
    doubled when the guest was using most of it. A booted guest flushes often while it
    boots, so its TLB is large by the time it serves. A restored one runs one process whose
    threads share one address space: it hardly ever flushes, its TLB stays at 256 entries,
    and a warm call missed ten times as often as in a booted VM (perf of QEMU:
    ``helper_le_ldq_mmu`` 5 % against 0.5 %); a warm echo took 3.4-3.9 ms against 2.5-2.7.

    A switch of address space is a flush. So a helper process, forked at start (before
    any snapshot: every clone has it), is woken after each of the first ``ROUNDS`` calls of
    a resumed guest, while the TLB still holds that call's pages: each wake-up is two
    switches, one of which flushes a TLB full enough to double. Measured: after 2 rounds a
    clone's warm echo took 2.6-2.9 ms, after 8 2.4-2.5 (from 3.4), each round ~0.1 ms.
    """

    ROUNDS = 8

    def __init__(self, wake: int, answer: int, helper_pid: int) -> None:
        self._wake, self._answer, self.helper_pid = wake, answer, helper_pid
        self._lock = threading.Lock()
        self._left = 0
        self.rounds = 0  # done since start

    @classmethod
    def start(cls) -> TlbWarmer:
        """Fork the helper; call before any thread starts (the child runs no Python but
        its loop, and exits when the agent's end of the pipe closes)."""
        to_helper, from_helper = os.pipe(), os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(to_helper[1])
            os.close(from_helper[0])
            _helper(to_helper[0], from_helper[1])
        os.close(to_helper[0])
        os.close(from_helper[1])
        return cls(to_helper[1], from_helper[0], pid)

    def arm(self, rounds: int = ROUNDS) -> None:
        """After a resume: the next ``rounds`` calls each end with a round."""
        with self._lock:
            self._left = rounds

    def after_call(self) -> None:
        with self._lock:
            if self._left <= 0:
                return
            self._left -= 1
            os.write(self._wake, b".")
            os.read(self._answer, 1)
            self.rounds += 1

    def close(self) -> None:
        """End the helper and reap it (the guest's agent never does: it powers off)."""
        with self._lock:
            os.close(self._wake)
            os.close(self._answer)
            os.waitpid(self.helper_pid, 0)


def _helper(wake: int, answer: int) -> None:
    try:
        while True:
            try:
                data = os.read(wake, 1)
            except InterruptedError:
                continue
            if not data:
                break
            os.write(answer, data)
    finally:
        os._exit(0)
