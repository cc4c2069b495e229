"""Running flows: the scheduler, tasks, inputs of joins, `current`, output capture."""
