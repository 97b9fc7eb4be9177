"""stovectl: timed, remote and failsafe shutoff for an ordinary gas hob.

Nothing is imported here on purpose: the CLI client must start fast, so each
entry point imports only the modules it uses.
"""

__version__ = "0.1.0"
