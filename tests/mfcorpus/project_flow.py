"""A @project flow as a Metaflow user writes one: its runs are grouped under the project
"movies", on the branch the command line chooses (--branch, --production)."""

from asyncflow import FlowSpec, current, project, step


@project(name="movies")
class PlayListFlow(FlowSpec):
    """Pick a playlist; record where the run belongs."""

    @step
    def start(self):
        self.genres = ["drama", "comedy"]
        self.seen_project = current.project_name
        self.seen_branch = current.branch_name
        self.seen_flow_name = current.project_flow_name
        self.seen_namespace = current.namespace
        self.seen_user_branch = current.is_user_branch
        self.seen_production = current.is_production
        print(f"project {current.project_name} branch {current.branch_name}")
        self.next(self.pick, foreach="genres")

    @step
    def pick(self):
        # Every task of the run sees the same project and branch.
        self.where = (self.input, current.project_name, current.branch_name)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.wheres = sorted(inp.where for inp in inputs)
        self.next(self.end)

    @step
    def end(self):
        self.playlist = [w[0] for w in self.wheres]


if __name__ == "__main__":
    PlayListFlow()
