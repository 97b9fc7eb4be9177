"""The systemd units and the sysusers file, as installed: systemd accepts them, they are
hardened, and they keep the promises the daemon relies on."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.packaging.conftest import REPO, Install, clean_environment

UNITS = ("stovectl.service", "stovectl-failed.service")
MAX_EXPOSURE = 1.5
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")


def unit_settings(path: Path) -> dict[str, dict[str, list[str]]]:
    """Every ``Key=value`` of a unit file by section, each key's values in order."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            current.setdefault(key, []).append(value)
    return sections


def systemd_analyze(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = clean_environment()
    # Log to the terminal even when stderr happens to be a journal stream.
    env["SYSTEMD_LOG_TARGET"] = "console"
    return subprocess.run(
        ["systemd-analyze", *map(str, args)], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60, check=False,
    )


def verify_complaints(unit_dir: Path) -> tuple[int, list[str], str]:
    """Run ``systemd-analyze verify`` on both units in ``unit_dir``; its exit code, the
    lines it printed about our units, and everything it printed."""
    result = systemd_analyze("verify", *(unit_dir / unit for unit in UNITS), cwd=unit_dir)
    output = result.stdout + result.stderr
    ours = [line for line in output.splitlines() if "stovectl" in line]
    return result.returncode, ours, output


@pytest.fixture(scope="module")
def verifiable_units(installed: Install, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The installed units, side by side, with ExecStart= naming the staged venv's stovectl.

    verify checks that the program exists; the installed units name $PREFIX/bin/stovectl,
    which is not on this machine, so they are pointed at the same program in the staging
    tree (a real file, made by the install). Nothing else changes."""
    directory = tmp_path_factory.mktemp("units")
    program = installed.venv / "bin" / "stovectl"
    for unit in UNITS:
        text = (installed.unit_dir / unit).read_text(encoding="utf-8")
        assert "ExecStart=/usr/local/bin/stovectl " in text
        (directory / unit).write_text(
            text.replace("ExecStart=/usr/local/bin/stovectl ", f"ExecStart={program} "),
            encoding="utf-8",
        )
    return directory


def test_verify_accepts_both_units_without_a_warning(verifiable_units: Path) -> None:
    """systemd-analyze verify passes both units and prints nothing about them."""
    code, ours, output = verify_complaints(verifiable_units)
    assert code == 0 and not ours, f"systemd-analyze verify (exit {code}):\n{output}"


def test_verify_check_catches_a_misspelt_key(verifiable_units: Path, tmp_path: Path) -> None:
    """The verify check above sees a warning even where verify itself exits 0."""
    for unit in UNITS:
        shutil.copy(verifiable_units / unit, tmp_path / unit)
    broken = tmp_path / "stovectl.service"
    broken.write_text(
        broken.read_text(encoding="utf-8").replace("WatchdogSec=", "WatchDogSec="),
        encoding="utf-8",
    )
    _, ours, output = verify_complaints(tmp_path)
    assert any("WatchDogSec" in line for line in ours), output


def test_on_failure_unit_is_installed_beside_the_service(installed: Install) -> None:
    """OnFailure= names a unit installed in the same directory (verify does not check)."""
    settings = unit_settings(installed.unit_dir / "stovectl.service")
    assert settings["Unit"]["OnFailure"] == ["stovectl-failed.service"]
    assert (installed.unit_dir / "stovectl-failed.service").is_file()


@pytest.mark.parametrize("unit", UNITS)
def test_exposure_is_at_most_one_and_a_half(installed: Install, unit: str) -> None:
    """systemd-analyze security --offline scores the unit at 1.5 or lower."""
    result = systemd_analyze(
        "security", "--offline=true", "--threshold=15", installed.unit_dir / unit,
        cwd=installed.unit_dir,
    )
    output = result.stdout + result.stderr
    found = re.search(rf"Overall exposure level for {re.escape(unit)}: (\d+\.\d+)", output)
    assert found, f"no exposure level in:\n{output}"
    exposure = float(found.group(1))
    assert result.returncode == 0, f"exposure {exposure}, exit {result.returncode}:\n{output}"
    assert exposure <= MAX_EXPOSURE, f"{unit}: exposure {exposure} > {MAX_EXPOSURE}"


def test_service_keeps_the_daemons_contract(installed: Install) -> None:
    """The main unit: readiness and watchdog, restarts except on exit 78, a static user
    whose group may use the socket, its directories, credentials and the LAN allow-list."""
    settings = unit_settings(installed.unit_dir / "stovectl.service")
    unit, service = settings["Unit"], settings["Service"]
    assert int(unit["StartLimitBurst"][0]) > 1 and unit["StartLimitIntervalSec"]
    expected = {
        "Type": ["notify"], "NotifyAccess": ["main"], "WatchdogSec": ["30s"],
        "Restart": ["on-failure"], "RestartPreventExitStatus": ["78"],
        "User": ["stovectl"], "Group": ["stovectl"],
        "StateDirectory": ["stovectl"], "StateDirectoryMode": ["0700"],
        "RuntimeDirectory": ["stovectl"], "RuntimeDirectoryMode": ["0750"],
        "LoadCredential": ["stovectl:/etc/stovectl/credentials"],
        "SyslogIdentifier": ["stovectl"], "IPAddressDeny": ["any"],
        "ExecStart": ["/usr/local/bin/stovectl run --config /etc/stovectl/stovectl.toml"],
    }
    assert {key: service.get(key) for key in expected} == expected
    assert "DynamicUser" not in service and "PrivateUsers" not in service
    allowed = " ".join(service["IPAddressAllow"]).split()
    assert {"localhost", "link-local", "multicast", *PRIVATE_RANGES} <= set(allowed)


def test_failure_hook_runs_as_the_daemon_and_leaves_its_runtime_directory(
    installed: Install,
) -> None:
    """The OnFailure hook is a oneshot with the daemon's user, credentials and network,
    and declares no RuntimeDirectory= (stopping it would remove /run/stovectl)."""
    hook = unit_settings(installed.unit_dir / "stovectl-failed.service")["Service"]
    main = unit_settings(installed.unit_dir / "stovectl.service")["Service"]
    assert hook["Type"] == ["oneshot"]
    assert hook["ExecStart"] == [
        "/usr/local/bin/stovectl service-failed --config /etc/stovectl/stovectl.toml"
    ]
    for key in ("User", "Group", "LoadCredential", "IPAddressDeny", "IPAddressAllow",
                "RestrictAddressFamilies"):
        assert hook[key] == main[key], key
    assert "RuntimeDirectory" not in hook


def test_sysusers_creates_the_user_and_its_group(installed: Install, tmp_path: Path) -> None:
    """systemd-sysusers makes a system user stovectl, home /var/lib/stovectl, no login
    shell, whose primary group is a group stovectl."""
    sysusers = installed.staged(f"{installed.prefix}/lib/sysusers.d/stovectl.conf")
    assert sysusers.read_bytes() == (REPO / "systemd" / "stovectl.sysusers").read_bytes()
    (tmp_path / "etc").mkdir()
    result = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(sysusers)],
        env=clean_environment(), capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    users = [line.split(":") for line in (tmp_path / "etc/passwd").read_text().splitlines()]
    groups = [line.split(":") for line in (tmp_path / "etc/group").read_text().splitlines()]
    [user] = [entry for entry in users if entry[0] == "stovectl"]
    [group] = [entry for entry in groups if entry[0] == "stovectl"]
    assert user[3] == group[2], "the user's primary group is not the group stovectl"
    assert int(user[2]) < 1000, "not a system user"
    assert user[5] == "/var/lib/stovectl"
    assert os.path.basename(user[6]) == "nologin"
