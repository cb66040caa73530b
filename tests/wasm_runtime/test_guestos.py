"""The agent's PID-1 chores that can run on the host: the TLB warmer's helper process."""

from __future__ import annotations

import os

import pytest

from wasm_runtime.guestos import TlbWarmer


def test_the_warmer_wakes_its_helper_once_per_call_only_while_armed() -> None:
    warmer = TlbWarmer.start()
    try:
        assert os.waitpid(warmer.helper_pid, os.WNOHANG) == (0, 0)  # the helper waits
        warmer.after_call()
        assert warmer.rounds == 0  # not armed: no round
        warmer.arm(3)
        for _ in range(5):
            warmer.after_call()
        assert warmer.rounds == 3
        warmer.arm(1)  # a later resume arms it again
        warmer.after_call()
        assert warmer.rounds == 4
    finally:
        warmer.close()
    # The helper ended when its pipe closed, and was reaped: it is no child of ours now.
    with pytest.raises(ChildProcessError):
        os.waitpid(warmer.helper_pid, os.WNOHANG)
