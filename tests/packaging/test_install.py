"""`make install` and `make uninstall` with DESTDIR: the files land where the README
says, the venv is ready to be moved to $PREFIX, and a user's config is never lost."""

from __future__ import annotations

import shutil
import stat
import tomllib
from pathlib import Path

from tests.packaging.conftest import (
    CONFIG_EDIT,
    EXAMPLE_CONFIG,
    OPT_PREFIX,
    REPO,
    Install,
    Reinstall,
    run,
)

VERSION = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
    "version"
]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def exec_starts(install: Install) -> list[str]:
    return [
        line.removeprefix("ExecStart=")
        for unit in ("stovectl.service", "stovectl-failed.service")
        for line in (install.unit_dir / unit).read_text(encoding="utf-8").splitlines()
        if line.startswith("ExecStart=")
    ]


def test_install_lays_out_the_documented_files(installed: Install) -> None:
    """Program link, units, sysusers file, example config 0644 and credentials 0700."""
    link = installed.staged("/usr/local/bin/stovectl")
    assert link.is_symlink()
    assert str(link.readlink()) == "/usr/local/lib/stovectl/venv/bin/stovectl"
    assert (installed.venv / "bin" / "stovectl").is_file()
    for unit in ("stovectl.service", "stovectl-failed.service"):
        assert mode(installed.unit_dir / unit) == 0o644, unit
    assert mode(installed.staged("/usr/local/lib/sysusers.d/stovectl.conf")) == 0o644
    assert installed.config.read_bytes() == EXAMPLE_CONFIG.read_bytes()
    assert mode(installed.config) == 0o644
    assert installed.credentials.is_dir() and mode(installed.credentials) == 0o700
    assert "installed the example config" in installed.output


def test_units_name_the_installed_program(installed: Install) -> None:
    """Both units start $PREFIX/bin/stovectl with the config in /etc/stovectl."""
    assert exec_starts(installed) == [
        "/usr/local/bin/stovectl run --config /etc/stovectl/stovectl.toml",
        "/usr/local/bin/stovectl service-failed --config /etc/stovectl/stovectl.toml",
    ]


def test_venv_names_prefix_and_never_the_staging_directory(installed: Install) -> None:
    """No file of the installed tree, scripts and bytecode included, names DESTDIR, and
    the scripts' interpreter is the venv's own under $PREFIX."""
    staging = str(installed.destdir).encode()
    mentioning = [
        path for path in installed.destdir.rglob("*")
        if path.is_file() and not path.is_symlink() and staging in path.read_bytes()
    ]
    assert not mentioning, f"{len(mentioning)} files name {staging!r}, e.g. {mentioning[:5]}"
    first_line = (installed.venv / "bin" / "stovectl").read_text().splitlines()[0]
    assert first_line == "#!/usr/local/lib/stovectl/venv/bin/python"
    activate = (installed.venv / "bin" / "activate").read_text()
    assert 'VIRTUAL_ENV="/usr/local/lib/stovectl/venv"' in activate


def test_installed_stovectl_runs_and_accepts_the_installed_config(installed: Install) -> None:
    """The venv's stovectl reports its version and finds the example config valid."""
    assert installed.stovectl("--version").strip() == f"stovectl, version {VERSION}"
    assert "config OK" in installed.stovectl("config", "check", "--config", str(installed.config))


def test_install_says_what_to_do_next(installed: Install) -> None:
    """The install ends with the steps that make it a running service."""
    for step in ("/etc/stovectl/stovectl.toml", "/etc/stovectl/credentials",
                 "systemctl enable --now stovectl", "usermod -aG stovectl"):
        assert step in installed.output, step


def test_uninstall_removes_the_program_and_keeps_config_and_credentials(
    installed: Install, tmp_path: Path,
) -> None:
    """`make uninstall` takes away the venv, the link, the units and the sysusers file,
    and leaves the config, the credentials and their folder, saying so."""
    copy = Install(tmp_path / "stage", installed.prefix, installed.output)

    def skip_site_packages(directory: str, names: list[str]) -> list[str]:
        # The venv's lib/ is most of its 100 MB; its bin/ and pyvenv.cfg stand for it.
        return ["lib"] if Path(directory) == installed.venv else []

    shutil.copytree(installed.destdir, copy.destdir, symlinks=True, ignore=skip_site_packages)
    assert (copy.venv / "bin" / "stovectl").is_file()
    token = copy.credentials / "relay-token"
    token.write_text("00112233445566778899aabbccddeeff\n", encoding="utf-8")

    output = run(["make", "--no-print-directory", "uninstall", f"DESTDIR={copy.destdir}"])

    left = sorted(str(path.relative_to(copy.destdir)) for path in copy.destdir.rglob("*")
                  if not path.is_dir())
    assert left == ["etc/stovectl/credentials/relay-token", "etc/stovectl/stovectl.toml"]
    assert copy.config.read_bytes() == EXAMPLE_CONFIG.read_bytes()
    assert mode(copy.credentials) == 0o700
    assert "kept" in output and "/etc/stovectl" in output


def test_prefix_puts_everything_under_it(reinstalled: Reinstall) -> None:
    """With PREFIX=/opt/stovectl the program, venv, units and sysusers file go under it,
    the units start it from there, and the config still goes to /etc/stovectl."""
    install = reinstalled.second
    link = install.staged(f"{OPT_PREFIX}/bin/stovectl")
    assert str(link.readlink()) == f"{OPT_PREFIX}/lib/stovectl/venv/bin/stovectl"
    assert install.staged(f"{OPT_PREFIX}/lib/sysusers.d/stovectl.conf").is_file()
    assert exec_starts(install) == [
        f"{OPT_PREFIX}/bin/stovectl run --config /etc/stovectl/stovectl.toml",
        f"{OPT_PREFIX}/bin/stovectl service-failed --config /etc/stovectl/stovectl.toml",
    ]
    first_line = (install.venv / "bin" / "stovectl").read_text().splitlines()[0]
    assert first_line == f"#!{OPT_PREFIX}/lib/stovectl/venv/bin/python"
    assert not install.staged("/usr").exists()
    assert install.config.is_file()


def test_second_install_keeps_an_edited_config(reinstalled: Reinstall) -> None:
    """Installing again leaves a config edited by hand as it was, and says so."""
    config = reinstalled.second.config
    assert config.read_text(encoding="utf-8") == (
        EXAMPLE_CONFIG.read_text(encoding="utf-8") + CONFIG_EDIT
    )
    assert mode(config) == 0o644
    assert "kept your /etc/stovectl/stovectl.toml" in reinstalled.second.output
    assert "kept" not in reinstalled.first.output


def test_second_install_replaces_the_venv_whole(reinstalled: Reinstall) -> None:
    """The new venv takes the old one's place, no half-built or old copy stays beside
    it, and it runs."""
    install = reinstalled.second
    assert sorted(path.name for path in install.venv.parent.iterdir()) == ["venv"]
    assert install.stovectl("--version").strip() == f"stovectl, version {VERSION}"
