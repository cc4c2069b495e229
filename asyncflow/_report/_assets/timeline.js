/* The timeline: a Gantt of every task (model.timeline rows [step_index, task_id, start, end,
   status, retries]) on one canvas, one band per step with its tasks packed into lanes, so
   10,000 tasks draw in a few milliseconds. Failed tasks are red; retried ones carry a mark. */
(function () {
  var el = AF.el, str = AF.str, list = AF.list, num = AF.num;
  var LABEL_W = 170, LANE_H = 9, BAR_H = 7, BAND_PAD = 6, AXIS_H = 22, MAX_LANES = 8;
  var COLOURS = { succeeded: "#2e9e6b", failed: "#d64545", running: "#e0a030", caught: "#d9772b" };
  var OTHER = "#8a94a6", RETRY = "#7a3cc2";

  function bands(model) {
    var steps = list(model.steps);
    var byStep = steps.map(function () { return []; });
    var t0 = Infinity, t1 = -Infinity, failed = 0, retried = 0, count = 0;
    var run = AF.obj(model.run);
    var now = num(run.finished_at) || num(model.generated_at);
    list(model.timeline).forEach(function (row) {
      if (!Array.isArray(row)) return;
      var si = row[0], start = num(row[2]);
      if (typeof si !== "number" || !byStep[si] || start === null) return;
      var end = num(row[3]);
      var bar = { step: si, id: str(row[1]), start: start, end: end, status: str(row[4]),
        retries: num(row[5]) || 0 };
      byStep[si].push(bar);
      count += 1;
      if (bar.status === "failed") failed += 1;
      if (bar.retries > 0) retried += 1;
      t0 = Math.min(t0, start);
      t1 = Math.max(t1, end === null ? Math.max(start, now || start) : end);
    });
    var y = AXIS_H;
    var out = byStep.map(function (bars, si) {
      bars.sort(function (a, b) { return a.start - b.start; });
      var lanes = [], ends = [];
      bars.forEach(function (bar) {
        var stop = bar.end === null ? t1 : bar.end;
        var k = -1;
        for (var i = 0; i < ends.length; i++) if (ends[i] <= bar.start) { k = i; break; }
        if (k < 0 && lanes.length < MAX_LANES) { k = lanes.length; lanes.push([]); ends.push(0); }
        if (k < 0) {
          k = 0;
          for (var j = 1; j < ends.length; j++) if (ends[j] < ends[k]) k = j;
        }
        lanes[k].push(bar);
        ends[k] = Math.max(ends[k], stop);
      });
      var band = { step: si, name: str(AF.obj(list(model.steps)[si]).name), lanes: lanes, y: y,
        height: Math.max(1, lanes.length) * LANE_H + 2 * BAND_PAD, count: bars.length };
      y += band.height;
      return band;
    });
    return { bands: out, t0: t0, t1: t1, height: y + 4, count: count, failed: failed, retried: retried };
  }

  function ticks(t0, t1, pixels) {
    var span = Math.max(t1 - t0, 1e-3);
    var steps = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60,
      120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400];
    var want = span / Math.max(2, Math.floor(pixels / 90));
    var step = steps.filter(function (s) { return s >= want; })[0] || 86400 * Math.ceil(want / 86400);
    var out = [];
    for (var t = 0; t <= span + 1e-9; t += step) out.push(t);
    return out;
  }

  function draw(canvas, data, width) {
    var ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(data.height * ratio);
    canvas.style.width = width + "px";
    canvas.style.height = data.height + "px";
    var c = canvas.getContext("2d");
    c.setTransform(ratio, 0, 0, ratio, 0, 0);
    c.clearRect(0, 0, width, data.height);
    var plot = width - LABEL_W - 10;
    var scale = plot / Math.max(data.t1 - data.t0, 1e-3);
    c.font = "11px system-ui, sans-serif";
    c.textBaseline = "middle";
    ticks(data.t0, data.t1, plot).forEach(function (t) {
      var x = LABEL_W + t * scale;
      c.fillStyle = "#e6e9ef";
      c.fillRect(x, AXIS_H - 4, 1, data.height - AXIS_H);
      c.fillStyle = "#5b6475";
      var tick = "+" + AF.duration(t);
      var room = width - x - 3;
      c.fillText(tick, c.measureText(tick).width > room ? x - 3 - c.measureText(tick).width : x + 3, 9);
    });
    data.bands.forEach(function (band, k) {
      if (k % 2) {
        c.fillStyle = "#f6f7fa";
        c.fillRect(0, band.y, width, band.height);
      }
      c.fillStyle = "#1f2633";
      var name = band.name.length > 24 ? band.name.slice(0, 23) + "…" : band.name;
      c.fillText(name, 6, band.y + band.height / 2);
      band.lanes.forEach(function (lane, li) {
        var y = band.y + BAND_PAD + li * LANE_H;
        lane.forEach(function (bar) {
          var x = LABEL_W + (bar.start - data.t0) * scale;
          var stop = bar.end === null ? data.t1 : bar.end;
          var w = Math.max(1.5, (stop - bar.start) * scale);
          c.fillStyle = COLOURS[bar.status] || OTHER;
          c.fillRect(x, y, w, BAR_H);
          if (bar.retries > 0) {
            c.fillStyle = RETRY;
            c.fillRect(x, y - 1, 3, BAR_H + 2);
          }
        });
      });
    });
    return scale;
  }

  function hit(data, scale, x, y) {
    var t = data.t0 + (x - LABEL_W) / scale;
    for (var k = 0; k < data.bands.length; k++) {
      var band = data.bands[k];
      if (y < band.y || y >= band.y + band.height) continue;
      var lane = band.lanes[Math.floor((y - band.y - BAND_PAD) / LANE_H)];
      if (!lane) return null;
      var lo = 0, hi = lane.length - 1, found = -1;
      while (lo <= hi) { // the last bar starting at or before t
        var mid = (lo + hi) >> 1;
        if (lane[mid].start <= t) { found = mid; lo = mid + 1; } else hi = mid - 1;
      }
      var slack = 2 / scale;
      for (var i = found; i >= 0 && i >= found - 50; i--) {
        var end = lane[i].end === null ? data.t1 : lane[i].end;
        if (end + slack >= t) return lane[i];
      }
      if (found + 1 < lane.length && lane[found + 1].start - slack <= t) return lane[found + 1];
      return null;
    }
    return null;
  }

  /* The timeline section's content; onTask(stepIndex, taskId) opens a task. */
  AF.timeline = function (model, onTask) {
    var data = bands(model);
    if (!data.count) return el("p", { class: "muted" }, "no task has started yet");
    var canvas = el("canvas", { class: "gantt", "data-tasks": data.count,
      "data-failed": data.failed, "data-retried": data.retried });
    var tip = el("div", { class: "tip", hidden: "hidden" });
    var wrap = el("div", { class: "gantt-wrap" }, canvas, tip);
    var scale = 1;
    function redraw() {
      scale = draw(canvas, data, Math.max(480, wrap.clientWidth || 900));
    }
    canvas.addEventListener("mousemove", function (ev) {
      var r = canvas.getBoundingClientRect();
      var bar = hit(data, scale, ev.clientX - r.left, ev.clientY - r.top);
      if (!bar) { tip.setAttribute("hidden", "hidden"); canvas.style.cursor = ""; return; }
      var text = data.bands[bar.step].name + "/" + bar.id + " · " + bar.status + " · " +
        AF.duration(AF.span(bar.start, bar.end)) + (bar.end === null ? " so far" : "") +
        (bar.retries ? " · " + bar.retries + (bar.retries === 1 ? " retry" : " retries") : "");
      tip.textContent = text;
      tip.removeAttribute("hidden");
      tip.style.left = Math.min(ev.clientX - r.left + 12, r.width - 260) + "px";
      tip.style.top = (ev.clientY - r.top + 14) + "px";
      canvas.style.cursor = "pointer";
    });
    canvas.addEventListener("mouseleave", function () { tip.setAttribute("hidden", "hidden"); });
    canvas.addEventListener("click", function (ev) {
      var r = canvas.getBoundingClientRect();
      var bar = hit(data, scale, ev.clientX - r.left, ev.clientY - r.top);
      if (bar) onTask(bar.step, bar.id);
    });
    var legend = el("div", { class: "legend" },
      el("span", { class: "summary" }, AF.plural(data.count, "task") + " from " + AF.time(data.t0) +
        " over " + AF.duration(data.t1 - data.t0)),
      el("span", { class: "key ok" }, "succeeded"),
      el("span", { class: "key failed" }, "failed (" + data.failed + ")"),
      el("span", { class: "key running" }, "running"),
      el("span", { class: "key caught" }, "caught"),
      el("span", { class: "key retried" }, "retried (" + data.retried + ")"));
    AF.afterMount(function () {
      redraw();
      window.addEventListener("resize", redraw);
      return function () { window.removeEventListener("resize", redraw); };
    });
    return el("div", null, legend, wrap);
  };
})();
