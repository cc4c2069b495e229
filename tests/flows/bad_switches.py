"""Switches and loops that break a graph rule (tests/test_switch.py, tests/test_loops.py and
the G27x lines of tests/test_error_catalogue.py)."""

from __future__ import annotations

from asyncflow import FlowSpec, catch, step


class BadKey(FlowSpec):
    @step
    def start(self):
        self.next({1: self.end}, condition="x")

    @step
    def end(self):
        pass


class BadTarget(FlowSpec):
    @step
    def start(self):
        self.next({"a": self.end, "b": print}, condition="x")

    @step
    def end(self):
        pass


class NoCondition(FlowSpec):
    @step
    def start(self):
        self.next({"a": self.end})

    @step
    def end(self):
        pass


class DynamicCondition(FlowSpec):
    @step
    def start(self):
        name = "x"
        self.next({"a": self.end}, condition=name)

    @step
    def end(self):
        pass


class ConditionWithoutCases(FlowSpec):
    @step
    def start(self):
        self.next(self.end, condition="x")

    @step
    def end(self):
        pass


class PrivateCondition(FlowSpec):
    @step
    def start(self):
        self.next({"a": self.end}, condition="_x")

    @step
    def end(self):
        pass


class ReservedCondition(FlowSpec):
    @step
    def start(self):
        self.next({"a": self.end}, condition="next")

    @step
    def end(self):
        pass


class UnknownCase(FlowSpec):
    @step
    def start(self):
        self.x = "a"
        self.next({"a": self.end, "b": self.nowhere}, condition="x")

    @step
    def end(self):
        pass


class CatchOnSwitch(FlowSpec):
    @catch(var="err")
    @step
    def start(self):
        self.x = "a"
        self.next({"a": self.end}, condition="x")

    @step
    def end(self):
        pass


class SwitchIntoJoin(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.x = "p"
        self.next({"p": self.a1, "q": self.a2}, condition="x")

    @step
    def a1(self):
        self.next(self.join)

    @step
    def a2(self):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class CycleWithoutSwitch(FlowSpec):
    @step
    def start(self):
        self.next(self.a)

    @step
    def a(self):
        self.next(self.b)

    @step
    def b(self):
        self.next(self.a)

    @step
    def end(self):
        pass


class LoopOutOfForeach(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.again = "no"
        self.next({"yes": self.start, "no": self.join}, condition="again")

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class JoinLoopsToItself(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.again = "no"
        self.next({"yes": self.join, "no": self.end}, condition="again")

    @step
    def end(self):
        pass


class NoWayOut(FlowSpec):
    @step
    def start(self):
        self.go = "a"
        self.next({"a": self.a, "b": self.end}, condition="go")

    @step
    def a(self):
        self.go = "x"
        self.next({"x": self.a, "y": self.a}, condition="go")

    @step
    def end(self):
        pass


class BadLoopFromSplit(FlowSpec):
    @step
    def start(self):
        self.mode = "go"
        self.next(self.check)

    @step
    def check(self):
        self.next({"go": self.fork, "stop": self.end}, condition="mode")

    @step
    def fork(self):
        self.next(self.check, self.other)

    @step
    def other(self):
        self.next(self.end)

    @step
    def end(self):
        pass
