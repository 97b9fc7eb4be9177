"""Sensor adapters: what flame probes, presence, gas and smoke detectors say, as readings.

Each adapter listens to one transport (MQTT topics in ``mqtt``, polled MiOT
properties in ``miot``), turns what arrives into yes/no by the rules of
``readings``, and hands it to the core's ``SensorInput`` on the event loop.
The simulated kitchen's sensors live in ``stovectl.sim``.
"""
