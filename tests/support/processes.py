"""Stopping the subprocesses the tests run (the daemon, brokers): politely, or as a crash."""

from __future__ import annotations

import signal
import subprocess


def terminate(process: subprocess.Popen[bytes], what: str, log: str, timeout: float) -> int:
    """SIGTERM ``process`` and return its exit code; kill it and fail if it ignores that."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"{what} ignored SIGTERM for {timeout}s:\n{log}") from None


def kill9(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGKILL ``process``, as a power cut or the OOM killer would, and reap it."""
    process.kill()
    assert process.wait(timeout=timeout) == -signal.SIGKILL
