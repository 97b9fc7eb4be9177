"""The slow part of the packaging tests, done once per session and side by side.

Each ``make install`` builds a venv and installs every dependency (from pip's cache
after the first run), and the wheel check builds a fresh venv too. The three jobs start
together on a thread pool the first time a test needs one of them, so on two cores the
set takes little more than its longest chain (install, edit the config, install again).
The installed trees are never changed by a test; a test that must change one works
on a copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO / "config" / "stovectl.toml"
OPT_PREFIX = "/opt/stovectl"
CONFIG_EDIT = "\n# edited by hand after the first install\n"
SUBPROCESS_TIMEOUT_SECONDS = 300

# Variables an outer `make` or the caller's shell could pass down to the inner one.
_INHERITED_MAKE = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "DESTDIR", "PREFIX", "SYSCONFDIR",
                   "SYSTEMDUNITDIR", "SYSUSERSDIR")
# What a copy of the source tree leaves out: the repository, caches and build output.
SOURCE_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", ".run", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
    ".hypothesis",
)


def clean_environment() -> dict[str, str]:
    """The environment for a make, pip or stovectl child: no host stovectl settings,
    no systemd credentials, no outer make's variables."""
    return {
        name: value for name, value in os.environ.items()
        if not name.upper().startswith("STOVECTL_")
        and name not in ("CREDENTIALS_DIRECTORY", *_INHERITED_MAKE)
    }


def run(command: list[str | Path], cwd: Path = REPO) -> str:
    """Run a command to completion and return its output; fail with the output if it fails."""
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=clean_environment(),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=SUBPROCESS_TIMEOUT_SECONDS, check=False,
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, command))} exited {result.returncode}:\n{result.stdout}"
    )
    return result.stdout


@dataclass(frozen=True)
class Install:
    """A finished `make install DESTDIR=... PREFIX=...` and what it printed."""

    destdir: Path
    prefix: str
    output: str

    def staged(self, path: str) -> Path:
        """Where ``path`` (as the installed system would see it) is in the staging tree."""
        return self.destdir / path.lstrip("/")

    @property
    def venv(self) -> Path:
        return self.staged(f"{self.prefix}/lib/stovectl/venv")

    @property
    def unit_dir(self) -> Path:
        return self.staged(f"{self.prefix}/lib/systemd/system")

    @property
    def config(self) -> Path:
        return self.staged("/etc/stovectl/stovectl.toml")

    @property
    def credentials(self) -> Path:
        return self.staged("/etc/stovectl/credentials")

    def stovectl(self, *args: str) -> str:
        """Run the staged venv's ``stovectl`` script with the staged venv's interpreter.

        The script's own first line names the final place ($PREFIX), which is not there
        on this machine; the interpreter in the staging tree runs the same script."""
        return run([self.venv / "bin" / "python", self.venv / "bin" / "stovectl", *args])


def make_install(destdir: Path, prefix: str | None = None) -> Install:
    """`make install` into ``destdir``, with the Makefile's default PREFIX unless given."""
    variables = [f"DESTDIR={destdir}"] + ([f"PREFIX={prefix}"] if prefix else [])
    output = run(["make", "--no-print-directory", "install", *variables])
    return Install(destdir, prefix or "/usr/local", output)


@dataclass(frozen=True)
class Reinstall:
    """An install whose config was edited by hand, then installed over again."""

    first: Install
    second: Install


def install_edit_reinstall(destdir: Path) -> Reinstall:
    first = make_install(destdir, OPT_PREFIX)
    with first.config.open("a", encoding="utf-8") as config:
        config.write(CONFIG_EDIT)
    return Reinstall(first, make_install(destdir, OPT_PREFIX))


@dataclass(frozen=True)
class WheelCheck:
    """A wheel built from a copy of the source tree and installed into a fresh venv."""

    wheel: Path
    venv: Path
    version_output: str


def build_and_install_wheel(workdir: Path) -> WheelCheck:
    source = workdir / "src"
    shutil.copytree(REPO, source, ignore=SOURCE_IGNORE, symlinks=True)
    venv = workdir / "venv"
    run([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    dist = workdir / "dist"
    run([python, "-m", "pip", "wheel", "--no-deps", "-w", dist, "."], cwd=source)
    wheels = sorted(dist.glob("*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {dist}, found {wheels}"
    run([python, "-m", "pip", "install", "--no-compile", wheels[0]])
    return WheelCheck(wheels[0], venv, run([venv / "bin" / "stovectl", "--version"]))


@dataclass(frozen=True)
class Jobs:
    opt_prefix: Future[Reinstall]
    default: Future[Install]
    wheel: Future[WheelCheck]


@pytest.fixture(scope="session")
def packaging_jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jobs]:
    """Start the three slow jobs together; each test waits only for the one it needs."""
    opt, default, wheel = (tmp_path_factory.mktemp(name)
                           for name in ("stage-opt", "stage-default", "wheel"))
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="packaging") as pool:
        yield Jobs(
            opt_prefix=pool.submit(install_edit_reinstall, opt),
            default=pool.submit(make_install, default),
            wheel=pool.submit(build_and_install_wheel, wheel),
        )
    # Each holds a venv of about 100 MB, and pytest keeps the last runs' folders.
    for directory in (opt, default, wheel):
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def installed(packaging_jobs: Jobs) -> Install:
    """`make install DESTDIR=<tmp>` with the default PREFIX (/usr/local)."""
    return packaging_jobs.default.result()


@pytest.fixture(scope="session")
def reinstalled(packaging_jobs: Jobs) -> Reinstall:
    """`make install DESTDIR=<tmp> PREFIX=/opt/stovectl`, the config edited, then again."""
    return packaging_jobs.opt_prefix.result()


@pytest.fixture(scope="session")
def wheel_check(packaging_jobs: Jobs) -> WheelCheck:
    """A wheel of this tree, installed into a fresh venv."""
    return packaging_jobs.wheel.result()
