"""Defining flows: steps, parameters, the graph and its validation. Pure: no I/O."""
