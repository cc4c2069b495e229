"""The flow of the schema-4 fixtures (see README.md)."""

from asyncflow import FlowSpec, step


class OldFlow(FlowSpec):
    @step
    async def start(self):  # type: ignore[no-untyped-def]
        self.items = [1, 2, 3]
        print("hello from an old run")
        self.next(self.body, foreach="items")

    @step
    async def body(self):  # type: ignore[no-untyped-def]
        self.x = self.input * 10
        self.next(self.join)

    @step
    async def join(self, inputs):  # type: ignore[no-untyped-def]
        self.total = sum(i.x for i in inputs)
        self.next(self.end)

    @step
    async def end(self):  # type: ignore[no-untyped-def]
        pass
