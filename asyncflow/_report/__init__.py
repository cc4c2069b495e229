"""The run report: one self-contained HTML page of a run, made from a plain-data model.

Reads runs through ``_client`` only, renders, never writes. ``_page.render_page`` turns a
report model (a JSON-able dict, schema in ``_page``'s docstring) into the HTML text.
"""
