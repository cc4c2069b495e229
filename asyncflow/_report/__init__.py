"""Run reports: the model of a run, its one-file HTML page, and ``asyncflow serve``.

Reads through ``asyncflow._client`` only and never writes a store.
"""
