"""The ``stovectl`` command: usage, config, reachability and imports without a daemon, and
``stovectl schedules`` and the status line of the next run against a real one."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, hob_config, run_cli, running_daemon


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A private folder with a short path (Unix socket paths are limited)."""
    path = Path(tempfile.mkdtemp(prefix="stv"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def write(workdir: Path, text: str, name: str = "stovectl.toml") -> Path:
    path = workdir / name
    path.write_text(text, encoding="utf-8")
    return path


def test_status_without_daemon_exits_69(workdir: Path) -> None:
    """`stovectl status` with no daemon on the socket exits 69 and says no daemon answers."""
    socket_path = workdir / "s"
    result = run_cli("--socket", str(socket_path), "status")

    assert result.returncode == 69
    assert "no stovectl daemon" in result.stderr
    assert str(socket_path) in result.stderr


def test_off_without_daemon_exits_69(workdir: Path) -> None:
    """`stovectl off` with no daemon exits 69 rather than pretending the burner was cut."""
    result = run_cli("--socket", str(workdir / "s"), "off", "left")

    assert result.returncode == 69
    assert "daemon" in result.stderr
    assert "verified" not in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["timer", "left"], "give a DURATION"),
        (["timer", "left", "2x"], "'2x' is not a duration"),
        (["timer", "left", "0s"], "longer than zero"),
        (["timer", "left", "10s", "--cancel"], "--cancel"),
        (["frobnicate"], "No such command"),
    ],
)
def test_usage_errors_exit_2_before_asking_the_daemon(
    workdir: Path, args: list[str], message: str
) -> None:
    """A malformed command exits 2 with a message, without needing a daemon (not 69)."""
    result = run_cli("--socket", str(workdir / "s"), *args)

    assert result.returncode == 2, result.stderr
    assert message in result.stderr


GOOD = hob_config()
RIGHT_BURNER = '[[burners]]\nid = "right"\ndevice = "sim"'
BAD_CONFIGS = {
    "broken TOML": (GOOD.replace("[safety]", "[safety"), ["not valid TOML", "line"]),
    "wrong type": (
        GOOD.replace("channel = 1", 'channel = "x"'),
        ["burners[0]", "'left'", "channel", "integer"],
    ),
    "unknown key": (
        GOOD.replace('name = "Test hob"', 'name = "Test hob"\nflavour = "gas"'),
        ["stove.flavour", "unknown key"],
    ),
    "unknown nested key": (
        GOOD.replace("channel = 2", 'channel = 2\ncolour = "red"'),
        ["burners[1]", "'right'", "colour", "unknown key"],
    ),
    "missing device": (
        GOOD.replace(RIGHT_BURNER, '[[burners]]\nid = "right"\ndevice = "ghost"'),
        ["burners[1]", "device", "'ghost'", "does not exist"],
    ),
    "negative duration": (
        hob_config(cut_hold="-5m"), ["cut_hold", "-5m", "negative"]
    ),
    "unreadable duration": (
        hob_config(alarm_after="2x"), ["safety.alarm_after", "2x", "not a duration"]
    ),
}


@pytest.mark.parametrize("command", ["run", "config check"])
@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_exits_78_naming_file_field_and_problem(
    workdir: Path, command: str, case: str
) -> None:
    """A bad config makes `run` and `config check` exit 78, naming the file, field and problem."""
    text, fragments = BAD_CONFIGS[case]
    config = write(workdir, text)
    result = run_cli(
        *command.split(), "--config", str(config), "--socket", str(workdir / "s"),
        "--state-dir", str(workdir / "state"),
    ) if command == "run" else run_cli(*command.split(), "--config", str(config))

    assert result.returncode == 78, result.stdout + result.stderr
    assert str(config) in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr
    assert not (workdir / "s").exists()


@pytest.mark.parametrize("command", ["run", "config check"])
def test_missing_config_file_exits_78(workdir: Path, command: str) -> None:
    """A config file that does not exist makes `run` and `config check` exit 78 naming it."""
    config = workdir / "nowhere.toml"
    result = run_cli(*command.split(), "--config", str(config))

    assert result.returncode == 78
    assert str(config) in result.stderr
    assert "not found" in result.stderr


def test_config_check_accepts_the_test_hob(workdir: Path) -> None:
    """`config check` on a good config exits 0 and names its burners."""
    result = run_cli("config", "check", "--config", str(write(workdir, GOOD)))

    assert result.returncode == 0, result.stderr
    assert "left" in result.stdout and "right" in result.stdout


def test_config_check_accepts_the_shipped_example() -> None:
    """The shipped config/stovectl.toml passes `config check`."""
    example = Path(__file__).resolve().parent.parent / "config" / "stovectl.toml"
    result = run_cli("config", "check", "--config", str(example))

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("as_json", [False, True])
def test_config_show_redacts_the_pin(workdir: Path, as_json: bool) -> None:
    """`config show` prints the effective config with the remote PIN replaced by stars."""
    config = write(workdir, hob_config(remote='pin = "1234"'))
    result = run_cli("config", "show", "--config", str(config), *(["--json"] if as_json else []))

    assert result.returncode == 0, result.stderr
    assert "1234" not in result.stdout + result.stderr
    assert "********" in result.stdout
    assert "testhob" in result.stdout


def test_environment_overrides_the_file(workdir: Path) -> None:
    """STOVECTL_STOVE__NAME overrides [stove] name, and the file's other keys still apply."""
    config = write(workdir, hob_config(stove_name="From the file"))
    result = run_cli(
        "config", "show", "--json", "--config", str(config), env={"STOVECTL_STOVE__NAME": "X"}
    )

    assert result.returncode == 0, result.stderr
    stove = json.loads(result.stdout)["stove"]
    assert stove == {"id": "testhob", "name": "X"}


def test_client_path_imports_no_daemon_or_heavy_library() -> None:
    """Importing the CLI loads neither miio, paho, pydantic nor the daemon or core packages."""
    probe = (
        "import sys, stovectl.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'miio', 'paho', 'pydantic', 'pydantic_settings'} "
        "or m.startswith(('stovectl.daemon', 'stovectl.core', 'stovectl.settings'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=30
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# -- stovectl schedules, against a real daemon -------------------------------------------------

SCHEDULES = """
[[schedules]]
id = "night"
cron = "0 23 * * *"
action = "lock"
reason = "night"
time_zone = "Asia/Shanghai"

[[schedules]]
id = "gas"
cron = "0 23 * * *"
action = "off"
burners = ["left"]
time_zone = "Asia/Shanghai"
"""
IN_SHANGHAI = {"TZ": "Asia/Shanghai"}
AT_23 = r"\d{4}-\d\d-\d\d 23:00 \+08:00"


@pytest.fixture(scope="module")
def scheduled() -> Iterator[DaemonProcess]:
    """A daemon on the test hob with two schedules, both at 23:00 in Asia/Shanghai."""
    with running_daemon(hob_config() + SCHEDULES) as daemon:
        yield daemon


def test_schedules_lists_each_schedule_in_a_table(scheduled: DaemonProcess) -> None:
    """`stovectl schedules` exits 0 with a row per schedule: action, burners, cron, zone, next."""
    result = scheduled.cli("schedules", env=IN_SHANGHAI)

    assert result.returncode == 0, result.stderr
    header, night, gas = result.stdout.splitlines()
    assert header.split() == ["ID", "ACTION", "BURNERS", "WHEN", "NEXT", "RUN", "LAST", "RUN"]
    assert re.match(rf"night +lock \(night\) +all +0 23 \* \* \* Asia/Shanghai +{AT_23}  ",
                    night), night
    assert re.match(rf"gas +off +left +0 23 \* \* \* Asia/Shanghai +{AT_23}  ", gas), gas


def test_schedules_json_gives_the_zoned_next_run(scheduled: DaemonProcess) -> None:
    """`stovectl schedules --json` exits 0 with each schedule's next run in its own zone."""
    rows = scheduled.json("schedules")

    assert [row["id"] for row in rows] == ["night", "gas"]
    assert all(row["next_run_text"].endswith("T23:00:00+08:00") for row in rows)
    assert rows[0]["reason"] == "night"
    assert rows[1]["burners"] == ["left"]


def test_status_shows_the_next_schedule_run(scheduled: DaemonProcess) -> None:
    """`stovectl status` ends with the next run: both schedules, due at 23:00 +08:00."""
    result = scheduled.cli("status", env=IN_SHANGHAI)

    assert result.returncode == 0, result.stderr
    last = result.stdout.splitlines()[-1]
    assert re.fullmatch(rf"next: night — lock all; gas — off left at {AT_23}", last), last


def test_schedules_without_any_says_how_to_add_one() -> None:
    """With no schedules configured, `stovectl schedules` exits 0 and says how to add one."""
    with running_daemon() as daemon:
        text = daemon.cli("schedules")
        as_json = daemon.cli("schedules", "--json")

    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("no schedules configured")
    assert "[[schedules]]" in text.stdout
    assert '"Schedules" in the README' in text.stdout
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == []


def test_schedules_without_daemon_exits_69(workdir: Path) -> None:
    """`stovectl schedules` with no daemon on the socket exits 69."""
    result = run_cli("--socket", str(workdir / "s"), "schedules")

    assert result.returncode == 69
    assert "no stovectl daemon" in result.stderr
