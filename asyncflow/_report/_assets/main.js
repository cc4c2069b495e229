/* The page: header, graph, timeline and steps, drawn from the embedded model; re-drawn from
   a fresh model while a live run is running (the serve command), keeping what is open. */
(function () {
  var el = AF.el, str = AF.str, list = AF.list, obj = AF.obj;
  var app = document.getElementById("app");
  var mounted = [], cleanups = [];
  AF.afterMount = function (fn) { mounted.push(fn); };

  function readJson(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  /* Buttons to the failed tasks (from the timeline: every task, detailed or not). */
  function failedTasks(model, openTask) {
    var steps = list(model.steps), failed = [];
    list(model.timeline).forEach(function (row) {
      if (Array.isArray(row) && str(row[4]) === "failed" && steps[row[0]]) failed.push(row);
    });
    if (!failed.length) return null;
    var MOST = 10;
    return el("div", { class: "failed-tasks" }, AF.plural(failed.length, "failed task") + ": ",
      failed.slice(0, MOST).map(function (row) {
        var b = el("button", { type: "button", class: "to-task" },
          str(obj(steps[row[0]]).name) + "/" + str(row[1]));
        b.addEventListener("click", function () { openTask(row[0], str(row[1])); });
        return b;
      }),
      failed.length > MOST ? " and " + (failed.length - MOST) + " more (filter a step by status)" : null);
  }

  function header(model, live, openTask) {
    var run = obj(model.run), source = obj(model.source);
    var params = list(run.parameters);
    var tags = list(run.tags), system = list(run.system_tags);
    var took = AF.span(run.created_at, run.finished_at);
    return el("header", { class: "run" },
      el("div", { class: "title" },
        el("h1", null, el("span", { class: "flow" }, str(run.flow)), el("span", { class: "sep" }, " / "),
          el("span", { class: "run-id" }, str(run.id))),
        AF.badge(run.status),
        live ? el("span", { class: "live", id: "live-state" }, "live") : null),
      run.doc ? el("p", { class: "doc" }, str(run.doc)) : null,
      el("dl", { class: "facts" },
        el("dt", null, "started"), el("dd", null, AF.time(run.created_at)),
        el("dt", null, "finished"), el("dd", null, AF.time(run.finished_at)),
        el("dt", null, "duration"), el("dd", null, took === null ? "–" : AF.duration(took)),
        run.origin_run_id ? [el("dt", null, "resumed from"), el("dd", null, "run " + str(run.origin_run_id))] : null,
        el("dt", null, "source"), el("dd", null, (str(source.kind) === "archive" ? "archive " : "store ") +
          str(source.name)),
        el("dt", null, "made"), el("dd", null, AF.time(model.generated_at) + " by asyncflow " +
          str(model.asyncflow_version)),
        el("dt", null, "times"), el("dd", { class: "zone" }, "your local time, " + AF.zone(run.created_at))),
      tags.length || system.length
        ? el("div", { class: "tags" }, tags.map(function (t) { return el("span", { class: "tag" }, str(t)); }),
          system.map(function (t) { return el("span", { class: "tag system" }, str(t)); }))
        : null,
      run.error !== null && run.error !== undefined
        ? el("div", { class: "run-error" }, el("strong", null, "error "), el("pre", null, str(run.error)))
        : null,
      failedTasks(model, openTask),
      params.length
        ? el("section", { class: "params" }, el("h2", null, "Parameters"),
          el("table", { class: "artifact-table" }, el("tbody", null, params.map(function (p) {
            var q = obj(p);
            return el("tr", null, el("th", { class: "name" }, el("div", null, str(q.name))),
              el("td", null, AF.preview(q.preview)));
          }))))
        : null);
  }

  function render(model, state, live) {
    cleanups.forEach(function (fn) { if (typeof fn === "function") fn(); });
    cleanups = [];
    mounted = [];
    var y = window.scrollY;
    function gotoStep(i) {
      var node = document.getElementById(AF.stepAnchor(i));
      if (node) {
        node.classList.add("flash");
        node.scrollIntoView({ block: "start" });
        setTimeout(function () { node.classList.remove("flash"); }, 1200);
      }
    }
    function openTask(si, id) { AF.openTask(model, state, si, id); }
    var steps = list(model.steps);
    var page = el("main", null,
      header(model, live, openTask),
      el("div", { class: "overview" },
        el("section", { class: "panel graph-panel" }, el("h2", null, "Graph"), AF.graph(model, gotoStep)),
        el("section", { class: "panel timeline-panel" }, el("h2", null, "Timeline"),
          AF.timeline(model, openTask))),
      el("section", { class: "panel steps" }, el("h2", null, "Steps"),
        steps.map(function (s, i) { return AF.stepSection(model, state, i); })));
    AF.clear(app).appendChild(page);
    mounted.forEach(function (fn) { cleanups.push(fn()); });
    window.scrollTo(0, y);
    app.setAttribute("data-ready", String(Number(app.getAttribute("data-ready") || "0") + 1));
  }

  function interval(live) {
    return Math.max(100, Number(live.interval_ms) || 1000);
  }
  function poll(state, live) {
    var marker = document.getElementById("live-state");
    fetch(live.url, { cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (fresh) {
        if (obj(fresh).format !== "asyncflow-report") throw new Error("not a report model");
        // Drawn outside the promise: a drawing error is the page's own, counted and shown
        // on the console, not taken for a lost connection.
        setTimeout(function () {
          state.model = fresh;
          render(fresh, state, live);
          schedule(state, live);
        }, 0);
      }, function (err) {
        throw new Error("cannot reach the server (" + str(err && err.message) + ")");
      })
      .catch(function (err) {
        if (marker) marker.textContent = "live: " + str(err && err.message) + ", retrying";
        setTimeout(function () { poll(state, live); }, 3 * interval(live));
      });
  }
  function schedule(state, live) {
    if (str(obj(state.model.run).status) === "running") {
      setTimeout(function () { poll(state, live); }, interval(live));
    } else {
      var marker = document.getElementById("live-state");
      if (marker) marker.textContent = "final";
    }
  }

  var model = obj(readJson("model"));
  var live = readJson("live");
  var state = { model: model, steps: {}, open: {} };
  if (model.format !== "asyncflow-report") {
    AF.clear(app).appendChild(el("p", { class: "run-error" }, "This page holds no asyncflow report."));
    return;
  }
  render(model, state, live);
  // "#task=STEP/ID" in the address opens that task (a link to it can be shared).
  function fromHash() {
    var m = /^#task=(.*)\/([^\/]*)$/.exec(location.hash);
    if (!m) return;
    var name, id;
    try {
      name = decodeURIComponent(m[1]);
      id = decodeURIComponent(m[2]);
    } catch (e) {
      return; // a link cut short or mistyped: nothing to open
    }
    list(state.model.steps).forEach(function (s, i) {
      if (str(obj(s).name) === name) AF.openTask(state.model, state, i, id);
    });
  }
  fromHash();
  window.addEventListener("hashchange", fromHash);
  if (live && typeof live.url === "string") schedule(state, live);
})();
