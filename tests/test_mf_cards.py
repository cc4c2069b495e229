"""@card, current.card and asyncflow.cards (issue 11): Metaflow's names work; cards are
collected while a step runs and stored when its task ends (issue 14; the stored form is tested
in tests/test_cards_store.py), with no warning (README, "Coming from Metaflow")."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import pytest

from asyncflow import AsyncflowWarning, Flow, FlowSpec, card, current, step
from asyncflow.cards import Artifact, Image, Markdown, Table
from tests._mfcorpus import run_flow


def test_a_card_flow_runs_as_a_metaflow_user_writes_it(tmp_path: Path) -> None:
    done = run_flow("card_flow.py", "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = Flow("CardFlow", store=str(tmp_path / "asyncflow.db")).latest_run
    assert run["start"].task.data.components == 3
    assert run["report"].task.data.summary == 1
    assert run["report"].task.data.images == 0  # cleared
    warned = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert warned == []  # cards are stored: nothing to warn of
    [start] = run["start"].task.cards
    assert [c.kind for c in start] == ["markdown", "table", "artifact"]
    images, summary = run["report"].task.cards  # index order: the lowest @card first
    assert (summary.id, [c.text for c in summary]) == ("summary", ["done"])
    assert (images.id, len(images)) == ("images", 0)  # cleared
    report = run["report"].task.stderr
    assert "[@card WARNING] current.card.append: the step has several @card decorators" in report
    end = run["end"].task.stderr
    assert "[@card WARNING] current.card.append: step 'end' has no @card" in end


class Cards(FlowSpec):
    @card(id="only")
    @step
    def start(self) -> None:
        current.card.append(Markdown("a"))  # the only card, though it has an id
        current.card["only"].append(Markdown("b"))
        current.card["only"] = [Markdown("c")]
        current.card["nope"].append(Markdown("lost"))  # warns, returns a list of its own
        current.card["nope"].append(Markdown("lost"))  # warns once
        self.only = [c.text for c in current.card["only"]]
        self.nope = len(current.card["nope"])
        self.next(self.plain)

    @step
    def plain(self) -> None:
        current.card.append(Markdown("x"))
        current.card.extend([Markdown("y")])
        current.card.clear()
        current.card.refresh()
        self.cards = len(list(current.card))
        self.next(self.end)

    @card
    @card(id="second")
    @step
    def end(self) -> None:
        current.card.append(Markdown("to the card without an id"))
        self.default = [len(c) for c in current.card]
        self.by_type = len(current.card.get(type="default"))


@pytest.mark.anyio
@pytest.mark.parametrize("executor", ["thread", "process"])
async def test_current_card_follows_metaflows_rules(store: str, executor: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", AsyncflowWarning)
        run = await Cards(store=store, echo=False, executor=executor).run()
    with Flow("Cards", store=store) as flow:
        got = flow[run.id]
        assert got["start"].task.data.only == ["c"]
        assert got["start"].task.data.nope == 0
        assert got["start"].task.stderr.count('current.card["nope"]') == 1
        assert got["plain"].task.data.cards == 0
        assert got["plain"].task.stderr.count("step 'plain' has no @card") == 3  # once a call
        assert got["end"].task.data.default == [0, 1]  # the card without an id got it
        assert got["end"].task.data.by_type == 2
        # Stored as collected, in a worker process too: (index, id, texts) of each card.
        stored = [(c.index, c.id, [x.text for x in c]) for c in got["end"].task.cards]
        assert stored == [(0, "second", []), (1, None, ["to the card without an id"])]
        assert [[x.text for x in c] for c in got["start"].task.cards] == [["c"]]
        assert got["plain"].task.cards == []


class NoCards(FlowSpec):
    @step
    def start(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


@pytest.mark.anyio
async def test_a_flow_without_cards_gives_no_warning(store: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (await NoCards(store=store, echo=False).run()).successful


def test_current_card_outside_a_step_warns_and_does_nothing() -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        current.card.append(Markdown("nowhere"))
        current.card.extend([Markdown("nowhere")])
    assert "code outside a step has no @card" in err.getvalue()
    assert list(current.card) == []


def test_components_are_simple_typed_data() -> None:
    table = Table([(1, 2)], headers=["a", "b"])
    assert table.data == [[1, 2]] and table.headers == ["a", "b"]
    assert Table().data == []
    assert Image(bytearray(b"\x89PNG"), label="plot").src == b"\x89PNG"
    assert Artifact([1], name="x").artifact == [1]
    text = Markdown("# a")
    text.update("# b")
    assert text.text == "# b"


@pytest.mark.anyio
async def test_a_run_of_a_card_flow_gives_no_warning(store: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (await Cards(store=store, echo=False).run()).successful
