"""The run report: one self-contained HTML page of a run, made from a plain-data model.

Reads runs through ``_client`` only, renders, never writes (the CLI and ``asyncflow.report``
write the file). ``_model.build_model`` reads a run into the model (a JSON-able dict, its
schema in ``_model``'s docstring); ``_page.render_page`` turns a model into the HTML text.
"""
