"""A flow without @project, as Metaflow users write most of theirs: it has a namespace
(current.namespace) but no project or branch."""

from asyncflow import FlowSpec, current, step


class PlainFlow(FlowSpec):
    """Record what current says outside a project."""

    @step
    def start(self):
        self.seen = {
            "namespace": current.namespace,
            "username": current.username,
            "project_name": current.project_name,
            "branch_name": current.branch_name,
            "project_flow_name": current.project_flow_name,
        }
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    PlainFlow()
