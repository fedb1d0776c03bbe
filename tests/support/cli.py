"""The `newsletter` command for tests: in-process through Click's runner, or as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner, Result

from newsletter.cli import main

NEWSLETTER = str(Path(sys.executable).parent / "newsletter")


@dataclass
class Cli:
    """Runs `newsletter …` in-process with the test's environment."""

    env: dict[str, str]

    def __call__(
        self,
        *args: str,
        code: int | None = 0,
        env: Mapping[str, str] | None = None,
        **variables: str,
    ) -> Result:
        """Run it with `env` and then `variables` over the test's environment; check the exit code."""
        runner = CliRunner()
        run_env = {**self.env, **(env or {}), **variables}
        result = runner.invoke(main, list(args), env=run_env, catch_exceptions=False)
        if code is not None:
            assert result.exit_code == code, (
                f"exit {result.exit_code}, expected {code}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result


@contextmanager
def spawned(env: dict[str, str], *args: str) -> Iterator[subprocess.Popen[str]]:
    """`newsletter …` as a process of its own, in its own process group, output piped.

    Afterwards it is killed if still running, reaped, and its pipes are closed, pass or fail.
    """
    process = subprocess.Popen(
        [NEWSLETTER, *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, killed whole like a dying machine
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        process.communicate()  # reaps it and closes the pipes
