"""What a broker connection needs: address, login, TLS, session and last will.

Built from the ``[mqtt]`` section for the daemon (``options_from_settings``),
and with other client ids for the simulated devices and ``stovectl doctor`` on
the same broker.
"""

from __future__ import annotations

from dataclasses import dataclass

from stovectl.settings.mqtt import MqttSettings

ONLINE = "online"
OFFLINE = "offline"


@dataclass(frozen=True)
class ConnectionOptions:
    """What the connection needs; built from ``MqttSettings`` (or by the simulator)."""

    host: str
    port: int
    client_id: str
    protocol: str = "5"
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls: bool = False
    keepalive_seconds: int = 30
    session_expiry_seconds: int = 3600
    clean_start: bool = False
    reconnect_max_seconds: float = 5.0
    will_topic: str | None = None
    """Retained ``offline`` here if the connection dies; ``online`` on each connect."""
    will_payloads: tuple[str, str] = (ONLINE, OFFLINE)


def options_from_settings(
    mqtt_settings: MqttSettings,
    default_client_id: str,
    will_topic: str | None,
    *,
    client_id: str | None = None,
) -> ConnectionOptions:
    """Connection options from an ``[mqtt]`` section: the daemon's, or (with its own
    ``client_id``) a simulated device's on the same broker."""
    tls = mqtt_settings.tls
    password = mqtt_settings.password
    return ConnectionOptions(
        host=mqtt_settings.host,
        port=mqtt_settings.broker_port,
        client_id=client_id or mqtt_settings.client_id or default_client_id,
        protocol=mqtt_settings.protocol,
        username=mqtt_settings.username,
        password=None if password is None else password.get_secret_value(),
        tls=tls is not None,
        ca_file=None if tls is None or tls.ca_file is None else str(tls.ca_file),
        cert_file=None if tls is None or tls.cert_file is None else str(tls.cert_file),
        key_file=None if tls is None or tls.key_file is None else str(tls.key_file),
        keepalive_seconds=max(5, round(mqtt_settings.keepalive.total_seconds())),
        session_expiry_seconds=round(mqtt_settings.session_expiry.total_seconds()),
        reconnect_max_seconds=mqtt_settings.reconnect_max_interval.total_seconds(),
        will_topic=will_topic,
    )
