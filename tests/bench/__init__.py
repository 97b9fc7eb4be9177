"""stovectl's benchmarks: figures, not tests (DESIGN §6).

``python -m tests.bench`` (``make bench``) measures what a user feels — the
CLI's start-to-exit time, the controller's shutoff latency, the daemon's idle
memory — and prints each figure beside a floor measured in the same run on the
same interpreter, with their ratio, so a noisy machine still gives a figure
worth comparing. The modules are not named ``test_*`` and the folder is in
pytest's ``norecursedirs``: nothing here is ever collected as a test.
"""
