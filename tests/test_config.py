"""Config, ConfigValue and config_expr (issue 13, item 3): where a config's value comes from,
that it is read once per run, stored, visible in every task, read-only, reused by resume, and
usable in decorator arguments without changing the class."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from asyncflow import (
    Config,
    ConfigValue,
    Flow,
    FlowSpec,
    FlowValidationError,
    Parameter,
    ParameterError,
    StepFailed,
    UsageError,
    config_expr,
    retry,
    step,
)
from asyncflow._spec._step import step_info
from tests.flows.config_flows import RetriesFromConfig, SettingsFlow, WritesConfig

ROOT = Path(__file__).resolve().parents[1]


def cli(flow_file: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ASYNCFLOW_PROGRESS": "lines"}
    return subprocess.run(
        [sys.executable, str(flow_file), *args],
        cwd=cwd or flow_file.parent,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


FLOW_FILE = """
from asyncflow import Config, FlowSpec, Parameter, config_expr, current, retry, step

class CfgFlow(FlowSpec):
    cfg = Config("cfg", default="cfg.json", default_value={"who": "default_value"})

    @retry(times=config_expr("cfg.get('retries', 0)"))
    @step
    def start(self):
        print("who", self.cfg.who, "attempt", current.retry_count)
        if self.cfg.get("fail") and current.retry_count < self.cfg.get("retries", 0):
            raise RuntimeError("retry me")
        self.next(self.end)

    @step
    def end(self):
        if self.cfg.get("fail_end"):
            raise RuntimeError("end fails as configured")
        print("end", self.cfg.who)

if __name__ == "__main__":
    CfgFlow()
"""


@pytest.fixture
def flow_file(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    path = folder / "cfg_flow.py"
    path.write_text(FLOW_FILE)
    return path


def stored_cfg(store: Path, run: str = "latest") -> Any:
    with Flow("CfgFlow", store=str(store)) as flow:
        found = flow.latest_run if run == "latest" else flow[run]
        assert found is not None
        return found["end"].task.data.cfg


# --- values and where they come from ----------------------------------------------------------


@pytest.mark.anyio
async def test_a_config_is_an_artifact_of_every_task_and_the_run(tmp_path: Path) -> None:
    run = await SettingsFlow(store=str(tmp_path / "s.db"), echo=False).run()
    assert run["start"].task.data.seen_start == {"source": "file", "items": [1, 2, 3]}
    assert run.data.seen_join == ["file"] * 3 and run.data.seen_end == "file"
    assert run.data.deep == "v"
    assert run.data.cfg == {"source": "file", "items": [1, 2, 3]}  # the client: plain data
    assert [t.data.cfg["source"] for t in run["work"]] == ["file"] * 3
    assert run.data.extra == {"nested": {"deep": [1, {"k": "v"}]}}
    assert run.data.params == ["alpha", "cfg", "extra"]


@pytest.mark.anyio
async def test_a_config_is_read_only_nested_too_and_says_how_to_change_a_copy(
    tmp_path: Path,
) -> None:
    run = await WritesConfig(store=str(tmp_path / "w.db"), echo=False).run()
    errors = run.data.errors
    assert set(errors) == {
        "setattr",
        "setitem",
        "update",
        "nested",
        "list",
        "assign",
        "pop",
        "missing",
    }
    for name in ("setattr", "setitem", "update", "nested", "pop"):
        assert errors[name].startswith("TypeError: a Config is read-only"), errors[name]
        assert ".to_dict()" in errors[name]
    assert errors["list"].startswith("AttributeError: 'tuple' object has no attribute")
    assert errors["assign"].startswith("AttributeError: Config 'cfg' of flow WritesConfig is")
    assert "self.cfg_used = self.cfg.to_dict()" in errors["assign"]
    assert errors["missing"] == (
        "AttributeError: this config has no key 'momentum' (its keys: 'lr', 'layers', 'opt'); "
        "read an optional key with .get('momentum')"
    )
    assert run.data.after == {"lr": 0.1, "layers": [1, 2], "opt": {"name": "sgd"}}
    assert run.data.copy["lr"] == 5


def test_config_value_reads_like_a_dict_and_pickles_as_a_plain_dict() -> None:
    import pickle

    value = ConfigValue({"a": {"b": [1, {"c": 2}]}})
    assert value.a.b[1].c == 2 and value["a"]["b"][0] == 1
    assert json.loads(json.dumps(value)) == {"a": {"b": [1, {"c": 2}]}}
    again = pickle.loads(pickle.dumps(value))
    assert type(again) is dict and again == {"a": {"b": [1, {"c": 2}]}}
    assert repr(value) == "{'a': {'b': [1, {'c': 2}]}}"


def test_a_key_named_like_a_dict_method_is_read_with_brackets_as_in_metaflow() -> None:
    cfg = ConfigValue({"items": [1, 2], "keys": "k", "get": 3, "to_dict": 4, "lr": 0.1})
    # the methods stay methods (a ConfigValue is a dict), as Metaflow's ConfigValue does
    assert next(iter(cfg.items())) == ("items", (1, 2)) and "lr" in set(cfg.keys())
    assert cfg.get("get") == 3 and cfg.to_dict()["items"] == [1, 2]
    # the values: item access, as the README says
    assert (cfg["items"], cfg["keys"], cfg["get"], cfg["to_dict"]) == ((1, 2), "k", 3, 4)
    assert cfg.lr == 0.1  # any other key: attribute access too
    assert config_expr("cfg['items'][1]").evaluate({"cfg": cfg}) == 2


@pytest.mark.anyio
async def test_config_precedence_option_over_default_file_over_default_value(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "cfg.json").write_text('{"who": "default file"}')
    (folder / "other.json").write_text('{"who": "file"}')
    flow_file = folder / "cfg_flow.py"
    flow_file.write_text(FLOW_FILE)
    store = folder / "s.db"
    cases = [
        (["--config-value", "cfg", '{"who": "value"}', "run"], "value"),
        (["--config", "cfg", "other.json", "run"], "file"),  # file over the default file
        (["run"], "default file"),
        (["run", "--config-value", "cfg", '{"who": "after"}'], "after"),  # after the command
        (["run", "--config", "cfg", "other.json"], "file"),
    ]
    for args, who in cases:
        out = cli(flow_file, *args, "--store", str(store), "--quiet")
        assert out.returncode == 0, out.stderr
        assert stored_cfg(store) == {"who": who}, args
    (folder / "cfg.json").unlink()  # no default file: default_value
    out = cli(flow_file, "run", "--store", str(store), "--quiet")
    assert out.returncode == 0, out.stderr
    assert stored_cfg(store) == {"who": "default_value"}


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["--config-value", "cfg", '{"who": "x"}', "run", "--config", "cfg", "other.json"],
            "--config-value cfg (before the command) and --config cfg (after it)",
        ),
        (
            ["--config", "cfg", "other.json", "--config-value", "cfg", "{}", "run"],
            "--config cfg (before the command) and --config-value cfg (before the command)",
        ),
        (
            ["run", "--config-value", "cfg", "{}", "--config-value", "cfg", "{}"],
            "--config-value cfg (after the command) and --config-value cfg (after it)",
        ),
        (
            ["--config", "cfg", "other.json", "--config", "cfg", "other.json", "check"],
            "--config cfg (before the command) and --config cfg (before the command)",
        ),
    ],
    ids=["value-before-file-after", "file-and-value-before", "two-values-after", "check"],
)
def test_a_config_given_twice_on_the_command_line_is_refused(
    flow_file: Path, args: list[str], said: str
) -> None:
    (flow_file.parent / "other.json").write_text('{"who": "file"}')
    store = flow_file.parent / "s.db"
    out = cli(flow_file, *args, *([] if "check" in args else ["--store", str(store)]))
    assert out.returncode == 2, out.stdout
    assert f"error: config 'cfg' is given twice: {said}; give each config once" in out.stderr
    assert "Traceback" not in out.stderr
    assert not store.exists()  # nothing ran


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (["spin", "start", "--run-id", "1"], "spin runs the task again with the configs stored"),
        (["dump", "1/end"], "dump reads a stored run, whose configs are stored with it"),
        (["logs", "1/start"], "logs reads what a stored run printed"),
    ],
    ids=["spin", "dump", "logs"],
)
def test_configs_given_to_a_command_that_reads_a_stored_run_are_refused(
    flow_file: Path, command: list[str], said: str
) -> None:
    store = str(flow_file.parent / "s.db")
    out = cli(flow_file, "run", "--store", store, "--quiet")
    assert out.returncode == 0, out.stderr
    before = (flow_file.parent / "s.db").read_bytes()
    out = cli(flow_file, "--config-value", "cfg", '{"who": "new"}', *command, "--store", store)
    assert out.returncode == 2, out.stdout
    assert said in out.stderr
    assert "so it takes no --config-value cfg; leave it out" in out.stderr
    assert "who" not in out.stdout  # nothing was spun or printed
    assert (flow_file.parent / "s.db").read_bytes() == before


@pytest.mark.anyio
async def test_config_given_to_the_flow_object_in_code(tmp_path: Path) -> None:
    store = str(tmp_path / "o.db")
    run = await SettingsFlow(store=store, echo=False, config={"cfg": {"source": "kwargs"}}).run()
    assert run.data.seen_end == "kwargs" and run.data.seen_join == ["kwargs"] * 2
    text = SettingsFlow(store=store, echo=False, config={"cfg": '{"source": "json text"}'})
    assert (await text.run()).data.seen_end == "json text"
    with pytest.raises(UsageError, match="config must map each Config's name"):
        SettingsFlow(store=store, config=[("cfg", {})])  # type: ignore[arg-type]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("value", "said"),
    [
        ({"source": "x", 1: "one"}, "has the key 1 (int) in cfg;"),
        (
            {"source": {"ids": [{None: 2}]}},
            "has the key None (NoneType) in cfg['source']['ids'][0]",
        ),
        ({"source": "x", True: 1}, "has the key True (bool) in cfg;"),
    ],
    ids=["int", "nested-none", "bool"],
)
async def test_a_config_key_that_is_not_a_string_is_refused(
    tmp_path: Path, value: dict[Any, Any], said: str
) -> None:
    # JSON would store {1: ...} as {"1": ...}: what steps read and what is stored would differ.
    store = tmp_path / "k.db"
    with pytest.raises(ParameterError) as info:
        await SettingsFlow(store=str(store), echo=False, config={"cfg": value}).run()
    assert "Config 'cfg' of flow SettingsFlow: the value given for 'cfg' " + said in str(info.value)
    assert "a config is JSON, whose keys are strings: write the key as" in str(info.value)
    assert info.value.name == "cfg" and not store.exists()


@pytest.mark.anyio
async def test_a_parser_s_non_string_key_is_refused(tmp_path: Path) -> None:
    from tests.flows.config_flows import IntKeyedParser

    with pytest.raises(ParameterError, match=r"has the key 7 \(int\) in cfg\['by_id'\]"):
        await IntKeyedParser(store=str(tmp_path / "k.db"), echo=False).run()


def test_show_and_check_print_a_parser_s_value_json_cannot_hold(tmp_path: Path) -> None:
    # Found by an attacker: a TOML config holding a date ran (stored pickled, see R254), but
    # show/check died with a TypeError traceback. They print the value's repr() there now.
    (tmp_path / "c.toml").write_text('when = 2024-01-02\nname = "x"\n')
    path = tmp_path / "toml_flow.py"
    path.write_text(
        textwrap.dedent(
            """\
            import tomllib
            from asyncflow import Config, FlowSpec, step

            class TomlFlow(FlowSpec):
                cfg = Config("cfg", default="c.toml", parser=tomllib.loads)

                @step
                def start(self):
                    print("when:", self.cfg.when.year)
                    self.next(self.end)

                @step
                def end(self):
                    pass

            if __name__ == "__main__":
                TomlFlow()
            """
        )
    )
    for command in ("show", "check"):
        out = cli(path, command)
        assert out.returncode == 0, (command, out.stderr)
        line = 'config cfg: {"when": "datetime.date(2024, 1, 2)", "name": "x"}'
        assert line in out.stdout.splitlines()
    out = cli(path, "run", "--store", "t.db")
    assert out.returncode == 0 and "when: 2024" in out.stdout, out.stderr


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('{"lr": NaN}', "it holds NaN, which JSON has no number for"),
        ('{"lr": [Infinity]}', "it holds Infinity, which JSON has no number for"),
        ('{"lr": -Infinity}', "it holds -Infinity, which JSON has no number for"),
        ('{"lr": 1, "deep": {"a": 1, "a": 2}}', "it has the key 'a' twice in one object"),
    ],
    ids=["nan", "infinity", "minus-infinity", "duplicate-key"],
)
def test_json_with_nan_infinity_or_a_repeated_key_is_refused(
    flow_file: Path, text: str, said: str
) -> None:
    folder = flow_file.parent
    (folder / "odd.json").write_text(text)
    out = cli(flow_file, "--config", "cfg", "odd.json", "run", "--store", "s.db")
    assert out.returncode == 2, out.stdout
    path = str(folder / "odd.json")
    assert f"Config 'cfg' of flow CfgFlow: the file {path!r} is not valid JSON: {said}" in (
        out.stderr
    )
    out = cli(flow_file, "--config-value", "cfg", text, "run", "--store", "s.db")
    assert out.returncode == 2, out.stdout
    assert f"the value given for 'cfg' is not valid JSON: {said}" in out.stderr
    assert not (folder / "s.db").exists()


def test_a_relative_default_file_is_found_next_to_the_flow_file(
    flow_file: Path, tmp_path: Path
) -> None:
    (flow_file.parent / "cfg.json").write_text('{"who": "beside the flow"}')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "cfg.json").write_text('{"who": "current directory"}')
    store = tmp_path / "r.db"
    out = cli(flow_file, "run", "--store", str(store), "--quiet", cwd=elsewhere)
    assert out.returncode == 0, out.stderr
    assert stored_cfg(store) == {"who": "beside the flow"}


# --- config_expr in decorators ----------------------------------------------------------------


@pytest.mark.anyio
async def test_config_expr_sets_decorator_arguments_per_run_without_changing_the_class(
    tmp_path: Path,
) -> None:
    store = str(tmp_path / "x.db")
    before = step_info(RetriesFromConfig.start)
    run = await RetriesFromConfig(store=store, echo=False).run()
    assert run.data.attempts == 2  # default_value: retries=1
    three = RetriesFromConfig(store=store, echo=False, config={"cfg": {"retries": 3, "seconds": 9}})
    assert (await three.run()).data.attempts == 4
    run = await RetriesFromConfig(store=store, echo=False).run()
    assert run.data.attempts == 2  # the class was not changed by the run before
    assert step_info(RetriesFromConfig.start) == before
    assert before is not None and before.retry is None and before.timeout is None
    assert [p.name for p in before.pending] == ["timeout", "retry"]  # bottom-up
    bad = RetriesFromConfig(store=store, config={"cfg": {"retries": -1, "seconds": 9}})
    with pytest.raises(FlowValidationError) as caught:
        await bad.run()
    assert "@retry(times=config_expr('cfg.retries')) gave @retry(times=-1" in str(caught.value)
    assert "times must be a whole number >= 0" in str(caught.value)
    missing = RetriesFromConfig(store=store, config={"cfg": {"seconds": 9}})
    with pytest.raises(ParameterError, match=r"config_expr\('cfg.retries'\) failed"):
        await missing.run()


@pytest.mark.anyio
async def test_config_expr_sets_kubernetes_and_executor_arguments_per_run(tmp_path: Path) -> None:
    from asyncflow import AsyncflowWarning
    from tests.flows.config_flows import PlacedByConfig

    store = str(tmp_path / "p.db")
    with pytest.warns(AsyncflowWarning, match=r"start \(@kubernetes\)"):
        here = await PlacedByConfig(store=store, echo=False).run()
    assert here["work"].task.data.pid == os.getpid()  # cfg.where: thread
    config = {"cfg": {"where": "process", "cpu": 4}}
    with pytest.warns(AsyncflowWarning):
        there = await PlacedByConfig(store=store, echo=False, config=config).run()
    assert there["work"].task.data.pid != os.getpid()  # a worker process, as configured
    assert step_info(PlacedByConfig.work).executor is None  # the class never changes
    bad = {"cfg": {"where": "thread", "cpu": -1}}
    with pytest.raises(FlowValidationError) as info:
        await PlacedByConfig(store=store, echo=False, config=bad).run()
    assert "@kubernetes(cpu=config_expr('cfg.cpu')) gave @kubernetes(cpu=-1)" in str(info.value)
    bad = {"cfg": {"where": "cloud", "cpu": 1}}
    with pytest.raises(FlowValidationError, match="@executor\\(name=config_expr"):
        await PlacedByConfig(store=store, echo=False, config=bad).run()


def test_a_step_keeps_its_own_config_expr_decorator_over_with(flow_file: Path) -> None:
    out = cli(
        flow_file,
        "--config-value",
        "cfg",
        '{"who": "w", "retries": 2, "fail": true}',
        "run",
        "--with",
        "retry:times=0",
        "--store",
        str(flow_file.parent / "w.db"),
    )
    assert out.returncode == 0, out.stderr
    assert "attempt 2" in out.stdout  # the step's own @retry(times=cfg.retries) applied


def test_config_expr_is_checked_when_the_class_is_defined() -> None:
    with pytest.raises(FlowValidationError, match="is not a Python expression"):
        config_expr("cfg.")
    with pytest.raises(FlowValidationError, match="give the expression as text"):
        config_expr("")
    with pytest.raises(FlowValidationError, match="has @retry twice"):

        class Twice(FlowSpec):
            cfg = Config("cfg", default_value={})

            @retry(times=config_expr("cfg.a"))
            @retry(times=2)
            @step
            def start(self) -> None:
                pass


# --- names ------------------------------------------------------------------------------------


def test_a_config_named_like_a_parameter_or_a_step_is_refused_when_the_class_is_defined() -> None:
    with pytest.raises(FlowValidationError, match=r"Config 'alpha' at P\.cfg has the name"):

        class P(FlowSpec):
            alpha = Parameter("alpha", default=1)
            cfg = Config("alpha", default_value={})

    with pytest.raises(FlowValidationError, match=r"Config 'end' at S\.other has the name 'end'"):

        class S(FlowSpec):
            other = Config("end", default_value={})

            @step
            def start(self) -> None:
                self.next(self.end)

            @step
            def end(self) -> None:
                pass

    with pytest.raises(FlowValidationError, match="is not a Python identifier"):
        Config("my-config")


# --- errors -----------------------------------------------------------------------------------


def test_bad_json_a_missing_file_or_an_unknown_name_is_a_parameter_error_naming_both(
    flow_file: Path,
) -> None:
    folder = flow_file.parent
    store = folder / "e.db"
    (folder / "bad.json").write_text('{"who": ')
    out = cli(flow_file, "--config", "cfg", "bad.json", "run", "--store", str(store))
    assert out.returncode == 2
    assert "Config 'cfg' of flow CfgFlow: the file" in out.stderr
    assert "bad.json' is not valid JSON" in out.stderr and "Traceback" not in out.stderr
    out = cli(flow_file, "--config", "cfg", "gone.json", "run", "--store", str(store))
    assert out.returncode == 2 and "cannot read the file" in out.stderr
    assert "gone.json" in out.stderr and "'cfg'" in out.stderr
    out = cli(flow_file, "--config-value", "cgf", "{}", "run", "--store", str(store))
    assert out.returncode == 2
    assert "flow CfgFlow has no config 'cgf' (its configs: cfg)" in out.stderr
    (folder / "cfg.json").write_text("[1, 2]")  # the default file: not an object
    out = cli(flow_file, "run", "--store", str(store))
    assert out.returncode == 2 and "holds list, not a JSON object" in out.stderr
    assert not store.exists()  # nothing was stored, not even the store file


@pytest.mark.anyio
async def test_a_config_passed_to_run_as_a_parameter_says_where_it_goes(tmp_path: Path) -> None:
    flow = SettingsFlow(store=str(tmp_path / "p.db"))
    with pytest.raises(ParameterError, match=r"'cfg' is a Config, not a parameter"):
        await flow.run(cfg={"source": "x"})


# --- show, check, resume ------------------------------------------------------------------


def test_show_and_check_print_the_configs_as_a_run_would_read_them(flow_file: Path) -> None:
    (flow_file.parent / "cfg.json").write_text('{"who": "shown", "retries": 1}')
    out = cli(flow_file, "show")
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith('config cfg: {"who": "shown", "retries": 1}\n')
    out = cli(flow_file, "--config-value", "cfg", '{"who": "checked"}', "check")
    assert out.returncode == 0, out.stderr
    assert out.stdout == 'CfgFlow is valid: 2 steps.\nconfig cfg: {"who": "checked"}\n'
    out = cli(flow_file, "--config-value", "cfg", '{"retries": -2}', "check")
    assert out.returncode == 2 and "gave @retry(times=-2) with this run" in out.stderr


def test_resume_reuses_the_stored_config_and_never_reads_the_file_again(flow_file: Path) -> None:
    folder = flow_file.parent
    store = folder / "res.db"
    cfg = folder / "cfg.json"
    cfg.write_text('{"who": "first", "fail_end": true}')
    out = cli(flow_file, "run", "--store", str(store), "--quiet")
    assert out.returncode == 1 and "end fails as configured" in out.stderr
    cfg.write_text("this is not JSON any more")  # a resume that read it would fail
    out = cli(flow_file, "resume", "--store", str(store), "--quiet")
    assert out.returncode == 1, out.stderr  # the stored config still says fail_end
    assert "end fails as configured" in out.stderr
    with Flow("CfgFlow", store=str(store)) as flow:
        resumed = flow.latest_run
        assert resumed is not None and resumed.origin_run_id == "1"
        assert resumed["start"].task.data.cfg == {"who": "first", "fail_end": True}
    out = cli(flow_file, "resume", "--config", "cfg", "x.json", "--store", str(store))
    assert out.returncode == 2
    assert "resume reuses the configs of the run it resumes" in out.stderr


@pytest.mark.anyio
async def test_resume_in_code_reuses_the_config_by_hash(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"ok": false, "value": 1}')

    class Resumable(FlowSpec):
        cfg = Config("cfg", default=str(path))

        @retry(times=config_expr("cfg.value - 1"))
        @step
        def start(self) -> None:
            self.first = self.cfg.value
            self.next(self.end)

        @step
        def end(self) -> None:
            if not self.cfg.ok and not path.with_suffix(".allow").exists():
                raise RuntimeError("not ok")
            self.last = self.cfg.value

    flow = Resumable(store=str(tmp_path / "r.db"), echo=False)
    with pytest.raises(StepFailed):
        await flow.run()
    path.write_text('{"ok": true, "value": 2}')
    path.with_suffix(".allow").write_text("")
    run = await flow.resume()
    assert run.data.first == 1 and run.data.last == 1  # the origin's config, not the file's
    again = await flow.run()
    assert again.data.last == 2  # a new run reads the file


def test_a_fifo_or_a_folder_given_as_a_config_file_is_refused_without_waiting(
    flow_file: Path,
) -> None:
    fifo = flow_file.parent / "pipe.json"
    os.mkfifo(fifo)  # no writer: opening it for reading would wait forever
    for path in (fifo, flow_file.parent):
        out = cli(flow_file, "--config", "cfg", str(path), "run", "--store", "f.db")
        assert out.returncode == 2, out.stderr
        assert f"cannot read the file '{path}': it is not a regular file" in out.stderr


def test_a_parameter_named_config_keeps_run_config(tmp_path: Path) -> None:
    path = tmp_path / "param_flow.py"
    path.write_text(
        textwrap.dedent(
            """
            from asyncflow import Config, FlowSpec, JSONType, Parameter, step

            class ParamConfig(FlowSpec):
                config = Parameter("config", type=JSONType, default='{"k": 1}')
                cfg = Config("cfg", default_value={"who": "default"})

                @step(start=True, end=True)
                def only(self):
                    print("param", self.config, "cfg", self.cfg.who)

            if __name__ == "__main__":
                ParamConfig()
            """
        )
    )
    out = cli(path, "--config-value", "cfg", '{"who": "top"}', "run", "--config", '{"k": 2}')
    assert out.returncode == 0, out.stderr
    assert "param {'k': 2} cfg top" in out.stdout


@pytest.mark.anyio
async def test_a_step_in_a_worker_process_reads_the_config(tmp_path: Path) -> None:
    from tests.flows.config_flows import ConfigInAProcess

    flow = ConfigInAProcess(store=str(tmp_path / "p.db"), echo=False, processes=1)
    run = await flow.run()
    assert (run.data.product, run.data.kind, run.data.nested) == (6, "ConfigValue", 2)
