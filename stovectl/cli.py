"""The ``stovectl`` command: the daemon (``run``), its client commands, and tools.

Client commands (off, timer, lock, unlock, status, history, schedules) import only the
control client and stdlib, so they answer in well under 100 ms; the daemon,
the settings and the simulated world are imported inside the commands that
need them. Exit codes (DESIGN §4): 0 done and verified, 1 failed or
unverified, 2 usage, 69 daemon not reachable, 78 bad configuration.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click

from stovectl.control.client import ControlClient
from stovectl.control.paths import socket_path
from stovectl.control.render import (
    format_history,
    format_outcome,
    format_schedules,
    format_status,
)
from stovectl.durations import format_duration, parse_duration
from stovectl.errors import ConfigError, ControlError, DaemonUnreachable, PermissionDenied

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 69
EXIT_NO_PERMISSION = 77
EXIT_CONFIG = 78

CONFIG_OPTION = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    envvar="STOVECTL_CONFIG", help="Config file [default: /etc/stovectl/stovectl.toml].",
)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"stovectl: {message}", err=True)
    sys.exit(code)


class _Context:
    def __init__(self, socket: str | None, timeout: float) -> None:
        self.socket = socket
        self.timeout = timeout

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        """Ask the daemon; exit with the right code on any failure to get an answer."""
        path = socket_path(self.socket, for_daemon=False)
        try:
            with ControlClient(path, self.timeout) as client:
                reply = client.call(op, **args)
        except PermissionDenied as error:
            _fail(str(error), EXIT_NO_PERMISSION)
        except DaemonUnreachable as error:
            _fail(str(error), EXIT_UNREACHABLE)
        except ControlError as error:
            _fail(str(error), EXIT_FAILED)
        if not reply.get("ok"):
            refusal = reply.get("error") or {}
            usage = refusal.get("code") in ("unknown_burner", "bad_request", "bad_duration")
            _fail(refusal.get("message", "the daemon refused"),
                  EXIT_USAGE if usage else EXIT_FAILED)
        result: dict[str, Any] = reply["result"]
        return result


def _report(result: dict[str, Any], action: str, as_json: bool) -> None:
    outcomes = result["outcomes"]
    if as_json:
        click.echo(json.dumps(outcomes, indent=2))
    else:
        for outcome in outcomes:
            click.echo(format_outcome(outcome, action), err=outcome["result"] == "failed")
    if not all(o["result"] in ("verified", "done") for o in outcomes):
        sys.exit(EXIT_FAILED)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--socket", envvar="STOVECTL_SOCKET", help="Control socket path.")
@click.option("--timeout", default=120.0, show_default=True,
              help="Seconds to wait for the daemon's answer.")
@click.version_option(package_name="stovectl")
@click.pass_context
def main(ctx: click.Context, socket: str | None, timeout: float) -> None:
    """Timed, remote and failsafe shutoff for a gas hob, through relays in its
    flame-failure loops."""
    ctx.obj = _Context(socket, timeout)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@main.command()
@click.argument("burners", nargs=-1)
@json_option
@click.pass_obj
def off(obj: _Context, burners: tuple[str, ...], as_json: bool) -> None:
    """Shut burners off now (default: all); they re-arm after cut_hold."""
    _report(obj.call("off", burners=list(burners) or ["all"]), "cut", as_json)


@main.command()
@click.argument("burners", nargs=-1)
@click.option("--reason", default="lock", show_default=True, help="Why, e.g. child or away.")
@json_option
@click.pass_obj
def lock(obj: _Context, burners: tuple[str, ...], reason: str, as_json: bool) -> None:
    """Cut burners and keep them cut until unlocked (default: all)."""
    _report(obj.call("lock", burners=list(burners) or ["all"], reason=reason), "locked", as_json)


@main.command()
@click.argument("burners", nargs=-1, required=True)
@json_option
@click.pass_obj
def unlock(obj: _Context, burners: tuple[str, ...], as_json: bool) -> None:
    """Re-arm locked burners (name them, or all)."""
    _report(obj.call("unlock", burners=list(burners)), "unlocked, can be lit", as_json)


@main.command()
@click.argument("burner")
@click.argument("duration", required=False)
@click.option("--extend", is_flag=True, help="Add DURATION to a running countdown.")
@click.option("--cancel", is_flag=True, help="Cancel the countdown.")
@json_option
@click.pass_obj
def timer(
    obj: _Context, burner: str, duration: str | None, extend: bool, cancel: bool, as_json: bool
) -> None:
    """Shut BURNER off after DURATION (like 90s, 15m, 1h30m)."""
    if cancel:
        if duration or extend:
            raise click.UsageError("--cancel takes no DURATION and no --extend")
        _report(obj.call("cancel", burners=[burner]), "countdown cancelled", as_json)
        return
    if duration is None:
        raise click.UsageError("give a DURATION like 90s, 15m or 1h30m, or --cancel")
    try:
        seconds = parse_duration(duration).total_seconds()
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="DURATION") from None
    if seconds <= 0:
        raise click.BadParameter("must be longer than zero", param_hint="DURATION")
    result = obj.call("timer", burners=[burner], seconds=seconds, extend=extend)
    _report(result, f"shuts off in {format_duration(seconds)}", as_json)


@main.command()
@json_option
@click.option("--watch", is_flag=True, help="Keep showing the live state (Ctrl-C ends).")
@click.pass_obj
def status(obj: _Context, as_json: bool, watch: bool) -> None:
    """Show each burner: armed, cut or locked, its relay, device and countdown."""
    if not watch:
        reply = obj.call("status")
        click.echo(json.dumps(reply, indent=2) if as_json else format_status(reply))
        return
    try:
        while True:
            reply = obj.call("status")
            if as_json:
                click.echo(json.dumps(reply))
            else:
                click.clear()
                click.echo(format_status(reply))
                click.echo(f"\n{time.strftime('%H:%M:%S')}  (Ctrl-C to stop)")
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass


@main.command()
@click.option("--since", help="Only events newer than this long ago (e.g. 1h, 2d).")
@click.option("--burner", help="Only this burner's events.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 10000))
@json_option
@click.pass_obj
def history(
    obj: _Context, since: str | None, burner: str | None, limit: int, as_json: bool
) -> None:
    """Show what happened: every cut, re-arm, lock, countdown and alarm."""
    args: dict[str, Any] = {"limit": limit}
    if since:
        try:
            args["since"] = time.time() - parse_duration(since).total_seconds()
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--since") from None
    if burner:
        args["burner"] = burner
    events = obj.call("history", **args)["events"]
    click.echo(json.dumps(events, indent=2) if as_json else format_history(events))


@main.command()
@json_option
@click.pass_obj
def schedules(obj: _Context, as_json: bool) -> None:
    """List the calendar schedules: what each does, when it runs next and when it last ran."""
    rows = obj.call("schedules")["schedules"]
    click.echo(json.dumps(rows, indent=2) if as_json else format_schedules(rows))


@main.command()
@CONFIG_OPTION
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the SQLite state lives [default: see README].")
@click.option("--socket", "run_socket",
              help="Control socket path (the same as `stovectl --socket`, given after `run`).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.pass_obj
def run(
    obj: _Context,
    config_path: Path | None,
    state_dir: Path | None,
    run_socket: str | None,
    verbose: bool,
) -> None:
    """Run the daemon in the foreground (as systemd does)."""
    from stovectl.daemon.main import run_daemon  # noqa: PLC0415  # the client path stays light

    sys.exit(run_daemon(config_path, run_socket or obj.socket, state_dir, verbose))


@main.command("service-failed")
@CONFIG_OPTION
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the SQLite state lives [default: see README].")
def service_failed(config_path: Path | None, state_dir: Path | None) -> None:
    """Say that the service is down for good (systemd's OnFailure= hook runs this)."""
    from stovectl.daemon.failed import report_service_failure  # noqa: PLC0415  # as `run`
    from stovectl.daemon.main import setup_logging  # noqa: PLC0415

    setup_logging("info")
    sys.exit(report_service_failure(config_path, state_dir))


@main.group()
def config() -> None:
    """Check or show the configuration."""


def _load(config_path: Path | None) -> Any:
    from stovectl.settings import load_settings  # noqa: PLC0415  # pydantic is slow to import

    try:
        return load_settings(config_path)
    except ConfigError as error:
        _fail(str(error), EXIT_CONFIG)


@config.command("check")
@CONFIG_OPTION
def config_check(config_path: Path | None) -> None:
    """Validate the config file; exit 78 naming file, field and problem."""
    settings = _load(config_path)
    click.echo(
        f"config OK: stove {settings.stove.id!r}, {len(settings.devices)} device(s), "
        f"{len(settings.burners)} burner(s): {', '.join(b.id for b in settings.burners)}"
    )


@config.command("show")
@CONFIG_OPTION
@json_option
def config_show(config_path: Path | None, as_json: bool) -> None:
    """Print the effective config, defaults filled in and secrets redacted."""
    from stovectl.settings import redacted, to_toml  # noqa: PLC0415  # as above

    data = redacted(_load(config_path))
    click.echo(json.dumps(data, indent=2) if as_json else to_toml(data))


@main.command()
@click.option("--fast", is_flag=True, help="Shorter pauses (for a quick look).")
def demo(fast: bool) -> None:
    """Run a simulated stove and the daemon, and narrate a short scenario."""
    from stovectl.sim.demo import run_demo  # noqa: PLC0415  # the client path stays light

    sys.exit(run_demo(fast=fast))


@main.command()
@CONFIG_OPTION
def simulate(config_path: Path | None) -> None:
    """Simulate the config's miIO and MQTT relays, wired to a simulated stove.

    Each kind = "miio" device must have a 127.x.y.z host; kind = "mqtt" devices join
    the config's [mqtt] broker. Runs until Ctrl-C or SIGTERM.
    """
    from stovectl.sim.runner import run_simulation  # noqa: PLC0415  # the client path stays light

    sys.exit(run_simulation(_load(config_path)))


def _positive_seconds(_ctx: click.Context, _param: click.Parameter, value: str) -> float:
    try:
        seconds = parse_duration(value).total_seconds()
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    if seconds <= 0:
        raise click.BadParameter("must be longer than zero")
    return seconds


def _ipv4_address(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    import ipaddress  # noqa: PLC0415  # only discover needs it

    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an IPv4 address (a broadcast address, or one device's)"
        ) from None
    return value


@main.command()
@click.option("--address", default="255.255.255.255", show_default=True,
              callback=_ipv4_address,
              help="Where hello goes: a broadcast address, or one device's IP address.")
@click.option("--timeout", "timeout_seconds", default="3s", show_default=True,
              callback=_positive_seconds, help="How long to collect answers.")
@json_option
def discover(address: str, timeout_seconds: float, as_json: bool) -> None:
    """Find Mi Home (miIO) devices on the LAN: address, device id, and token if it leaks."""
    from stovectl.tools.discover import run_discover  # noqa: PLC0415  # the client path stays light

    sys.exit(run_discover(address, timeout_seconds, as_json))


@main.command()
@CONFIG_OPTION
@click.option("--wiring-test", "wiring_burner", metavar="BURNER",
              help="Interactive, through the running daemon: cut BURNER while it burns and "
              "confirm that the flame goes out.")
@json_option
@click.pass_obj
def doctor(
    obj: _Context, config_path: Path | None, wiring_burner: str | None, as_json: bool
) -> None:
    """Check each configured device step by step: reachable, token, state, mapping."""
    if wiring_burner is not None:
        if as_json:
            raise click.UsageError("--wiring-test is a conversation; it has no --json")
        from stovectl.tools.wiring import AnswerReader, run_wiring_test  # noqa: PLC0415  # light

        sys.exit(run_wiring_test(wiring_burner, obj.call, AnswerReader.for_stdin(sys.stdin)))
    settings = _load(config_path)
    from stovectl.tools.doctor import run_doctor  # noqa: PLC0415  # imports python-miio

    sys.exit(run_doctor(
        settings, socket_path(obj.socket or settings.daemon.socket, for_daemon=False), as_json
    ))
