/* One section per step: its tasks a page at a time (with a status filter), each task's
   artifacts, logs, error and cards. */
(function () {
  var el = AF.el, str = AF.str, list = AF.list, obj = AF.obj, num = AF.num;
  var PAGE = 50;

  function stepState(state, i) {
    return state.steps[i] || (state.steps[i] = { page: 0, filter: "all", note: null });
  }
  function taskKey(stepIndex, task) {
    return stepIndex + "/" + str(obj(task).id);
  }
  function visible(step, filter) {
    var tasks = list(step.tasks);
    return filter === "all" ? tasks : tasks.filter(function (t) { return str(obj(t).status) === filter; });
  }

  function kv(label, value) {
    return [el("dt", null, label), el("dd", null, value)];
  }

  function logBlock(name, text) {
    if (!str(text)) return null;
    return el("div", { class: "log" }, el("h5", null, name), el("pre", { class: "log-" + name }, str(text)));
  }

  function detail(t) {
    var attempts = list(t.attempts).map(function (a) {
      var at = obj(a);
      return el("li", { class: at.ok === true ? "ok" : "bad" }, "attempt " + str(at.n) + ": " +
        (at.ok === true ? "ok" : "failed") + " after " + AF.duration(AF.span(at.started_at, at.finished_at)));
    });
    var artifacts = list(t.artifacts);
    return el("div", { class: "task-body" },
      el("dl", { class: "meta" },
        kv("pathspec", el("code", null, str(t.pathspec))),
        kv("started", AF.time(t.started_at)),
        kv("finished", AF.time(t.finished_at)),
        kv("duration", AF.duration(AF.span(t.started_at, t.finished_at)))),
      attempts.length > 1 ? el("ul", { class: "attempts" }, attempts) : null,
      t.exception !== null && t.exception !== undefined
        ? el("div", { class: "exception" }, el("h5", null, "error"),
          el("pre", { class: "exception-text" }, str(t.exception)),
          t.traceback ? el("details", { class: "traceback" }, el("summary", null, "traceback"),
            el("pre", null, str(t.traceback))) : null)
        : null,
      artifacts.length
        ? el("div", { class: "artifacts" }, el("h5", null, AF.plural(artifacts.length, "artifact") +
          (num(t.artifacts_omitted) ? " (and " + t.artifacts_omitted + " more not shown)" : "")),
          el("table", { class: "artifact-table" }, el("tbody", null, artifacts.map(function (a) {
            var art = obj(a);
            return el("tr", null, el("th", { class: "name" }, el("div", null, str(art.name))),
              el("td", { class: "type" }, str(art.type)), el("td", null, AF.preview(art.preview)));
          }))))
        : el("p", { class: "muted" }, "no artifacts"),
      logBlock("stdout", t.stdout),
      logBlock("stderr", t.stderr),
      list(t.cards).length ? el("div", { class: "cards" }, list(t.cards).map(AF.card)) : null);
  }

  function taskRow(state, stepIndex, step, task) {
    var t = obj(task);
    var key = taskKey(stepIndex, t);
    var status = str(t.status);
    var open = key in state.open ? state.open[key]
      : status === "failed" || status === "caught" || list(step.tasks).length === 1;
    var attempts = list(t.attempts).length;
    var summary = el("summary", null,
      AF.badge(status),
      el("span", { class: "tid" }, "task " + str(t.id)),
      num(t.index) !== null ? el("span", { class: "chip" }, "index " + t.index) : null,
      num(t.pass) !== null ? el("span", { class: "chip" }, "pass " + t.pass) : null,
      attempts > 1 ? el("span", { class: "chip retried" }, AF.plural(attempts, "attempt")) : null,
      list(t.cards).length ? el("span", { class: "chip" }, AF.plural(list(t.cards).length, "card")) : null,
      el("span", { class: "when" }, AF.duration(AF.span(t.started_at, t.finished_at))));
    var node = el("details", { class: "task " + AF.statusClass(status), "data-task": key,
      open: open ? "open" : null }, summary, detail(t));
    node.addEventListener("toggle", function () { state.open[key] = node.open; });
    return node;
  }

  function pager(st, pages, redraw) {
    if (pages <= 1) return null;
    function go(p) {
      return function () { st.page = Math.max(0, Math.min(pages - 1, p)); redraw(); };
    }
    var prev = el("button", { type: "button", disabled: st.page === 0 ? "disabled" : null }, "‹ previous");
    var next = el("button", { type: "button", disabled: st.page >= pages - 1 ? "disabled" : null }, "next ›");
    prev.addEventListener("click", go(st.page - 1));
    next.addEventListener("click", go(st.page + 1));
    return el("div", { class: "pager" }, prev, el("span", null, "page " + (st.page + 1) + " of " + pages), next);
  }

  function filterBox(st, step, redraw) {
    var counts = {};
    list(step.tasks).forEach(function (t) {
      var s = str(obj(t).status);
      counts[s] = (counts[s] || 0) + 1;
    });
    var select = el("select", { "aria-label": "show tasks with status" },
      el("option", { value: "all" }, "all statuses"),
      Object.keys(counts).sort().map(function (s) {
        return el("option", { value: s }, s + " (" + counts[s] + ")");
      }));
    select.value = st.filter in counts ? st.filter : "all";
    select.addEventListener("change", function () { st.filter = select.value; st.page = 0; redraw(); });
    return el("label", { class: "filter" }, "show ", select);
  }

  function stepDoc(model, step) {
    var name = str(step.name), found = null;
    list(obj(model.graph).steps).forEach(function (g) {
      if (found === null && str(obj(g).name) === name && obj(g).doc) found = str(obj(g).doc);
    });
    return found;
  }

  function section(model, state, i) {
    var step = obj(list(model.steps)[i]);
    var st = stepState(state, i);
    var node = el("section", { class: "step", id: AF.stepAnchor(i), "data-step": i });
    function redraw() {
      var fresh = section(model, state, i);
      node.parentNode.replaceChild(fresh, node);
    }
    var tasks = visible(step, st.filter);
    var pages = Math.max(1, Math.ceil(tasks.length / PAGE));
    if (st.page >= pages) st.page = pages - 1;
    var total = num(step.n_tasks) || 0, failed = num(step.n_failed) || 0, running = num(step.n_running) || 0;
    var omitted = num(step.omitted) || 0;
    var run = obj(model.run);
    AF.append(node,
      el("header", null,
        el("h3", null, el("span", { class: "step-name" }, str(step.name))),
        el("span", { class: "counts" }, AF.plural(total, "task"),
          failed ? el("span", { class: "bad" }, " · " + failed + " failed") : null,
          running ? el("span", { class: "warn" }, " · " + running + " running") : null,
          " · " + AF.duration(AF.span(step.started_at, step.finished_at))),
        list(step.tasks).length > 1 ? filterBox(st, step, redraw) : null),
      stepDoc(model, step) ? el("p", { class: "doc" }, stepDoc(model, step)) : null,
      st.note ? el("p", { class: "note" }, st.note) : null,
      el("div", { class: "tasks" }, tasks.slice(st.page * PAGE, (st.page + 1) * PAGE).map(function (t) {
        return taskRow(state, i, step, t);
      })),
      pager(st, pages, redraw),
      omitted > 0
        ? el("p", { class: "omitted" }, AF.plural(omitted, "more task") + " of this step " +
          (omitted === 1 ? "is" : "are") + " counted and drawn in the timeline but not detailed " +
          "here. See one with ", el("code", null, "asyncflow show " + str(run.flow) + "/" +
          str(run.id) + "/" + str(step.name) + "/TASK_ID"), ".")
        : null);
    return node;
  }
  AF.stepSection = section;

  /* Show task `taskId` of step `stepIndex`: its page, open, scrolled to. */
  AF.openTask = function (model, state, stepIndex, taskId) {
    var step = obj(list(model.steps)[stepIndex]);
    var st = stepState(state, stepIndex);
    var all = list(step.tasks);
    var at = -1;
    for (var k = 0; k < all.length; k++) if (str(obj(all[k]).id) === taskId) { at = k; break; }
    st.note = null;
    if (at < 0) {
      st.note = "task " + taskId + " is not detailed in this report: see it with asyncflow show " +
        str(obj(model.run).flow) + "/" + str(obj(model.run).id) + "/" + str(step.name) + "/" + taskId;
    } else {
      if (visible(step, st.filter).indexOf(all[at]) < 0) st.filter = "all";
      st.page = Math.floor(visible(step, st.filter).indexOf(all[at]) / PAGE);
      state.open[taskKey(stepIndex, all[at])] = true;
    }
    var old = document.getElementById(AF.stepAnchor(stepIndex));
    if (!old) return;
    var fresh = section(model, state, stepIndex);
    old.parentNode.replaceChild(fresh, old);
    var target = fresh;
    var rows = fresh.querySelectorAll("details.task");
    for (var r = 0; r < rows.length; r++) {
      if (at >= 0 && rows[r].getAttribute("data-task") === taskKey(stepIndex, all[at])) target = rows[r];
    }
    target.scrollIntoView({ block: "start" });
  };
})();
