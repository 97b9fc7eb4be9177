"""Tools for setting up and checking the hardware: ``discover``, ``doctor``, the wiring test.

Each is imported inside its click command only, so the CLI's client path stays light.
"""
