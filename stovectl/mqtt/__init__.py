"""MQTT: the broker connection, remote commands, state, events and Home Assistant discovery."""
