"""Persisting runs: the one SQLite file, its schema, blobs, the writer and readers.

All SQL of asyncflow lives in this package.
"""
