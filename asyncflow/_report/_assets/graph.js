/* The flow's graph as an SVG: layers by depth from the start step, loops drawn as back
   edges, switch edges labelled with their case value, each node with its task counts. */
(function () {
  var svg = AF.svg, str = AF.str, list = AF.list, obj = AF.obj;
  var NODE_H = 46, GAP_X = 28, GAP_Y = 40, MARGIN = 16, CHAR_W = 7.2, MAX_CHARS = 30;
  var KINDS = ["linear", "split", "foreach", "switch", "end", "join"];

  function shorten(name) {
    return name.length > MAX_CHARS ? name.slice(0, MAX_CHARS - 1) + "…" : name;
  }

  /* Nodes, forward edges and back edges (an edge to a step on the current path from the
     start: a loop), found by a depth-first walk from the start step. */
  function analyse(graph) {
    var nodes = list(graph.steps).map(function (s, i) {
      var step = obj(s);
      return { i: i, name: str(step.name), step: step, out: [], inn: [], depth: 0, order: 0 };
    });
    var byName = {};
    nodes.forEach(function (n) { if (!(n.name in byName)) byName[n.name] = n; });
    var edges = [];
    nodes.forEach(function (n) {
      var cases = obj(n.step.cases);
      var seen = {};
      list(n.step.out).forEach(function (target) {
        var to = byName[str(target)];
        if (!to || seen[to.name]) return;
        seen[to.name] = true;
        var labels = Object.keys(cases).filter(function (v) { return str(cases[v]) === to.name; });
        var label = labels.length ? labels.join(", ") : null;
        if (label === null && str(n.step.kind) === "foreach" && n.step.foreach_var) {
          label = "for each " + str(n.step.foreach_var);
        }
        var e = { from: n, to: to, label: label, back: false };
        edges.push(e);
        n.out.push(e);
        to.inn.push(e);
      });
    });
    var state = {}, order = 0;
    function walk(root) {
      var stack = [{ node: root, k: 0 }];
      state[root.name] = 1;
      root.order = order++;
      while (stack.length) {
        var top = stack[stack.length - 1];
        if (top.k >= top.node.out.length) {
          state[top.node.name] = 2;
          stack.pop();
          continue;
        }
        var e = top.node.out[top.k++];
        if (state[e.to.name] === 1) e.back = true;
        else if (!state[e.to.name]) {
          state[e.to.name] = 1;
          e.to.order = order++;
          stack.push({ node: e.to, k: 0 });
        }
      }
    }
    var start = byName[str(graph.start)] || nodes[0];
    if (start) walk(start);
    nodes.forEach(function (n) { if (!state[n.name]) walk(n); });
    // Longest path over forward edges (Kahn's order), so a join sits below all its parents.
    var indeg = {};
    nodes.forEach(function (n) { indeg[n.name] = 0; });
    edges.forEach(function (e) { if (!e.back) indeg[e.to.name] += 1; });
    var queue = nodes.filter(function (n) { return indeg[n.name] === 0; });
    while (queue.length) {
      var n = queue.shift();
      n.out.forEach(function (e) {
        if (e.back) return;
        e.to.depth = Math.max(e.to.depth, n.depth + 1);
        if (--indeg[e.to.name] === 0) queue.push(e.to);
      });
    }
    return { nodes: nodes, edges: edges, byName: byName };
  }

  function place(nodes, width) {
    var layers = [];
    nodes.forEach(function (n) { (layers[n.depth] = layers[n.depth] || []).push(n); });
    layers = layers.filter(Boolean);
    layers.forEach(function (layer, d) {
      layer.sort(function (a, b) {
        return bary(a) - bary(b) || a.order - b.order;
      });
      layer.forEach(function (n, k) { n.slot = k - (layer.length - 1) / 2; n.layer = d; });
    });
    function bary(n) {
      var parents = n.inn.filter(function (e) { return !e.back && e.from.slot !== undefined; });
      if (!parents.length) return 0;
      return parents.reduce(function (s, e) { return s + e.from.slot; }, 0) / parents.length;
    }
    var widest = Math.max.apply(null, layers.map(function (l) { return l.length; }));
    var span = widest * (width + GAP_X);
    nodes.forEach(function (n) {
      n.x = MARGIN + span / 2 + n.slot * (width + GAP_X) - width / 2;
      n.y = MARGIN + n.layer * (NODE_H + GAP_Y);
    });
    return { width: span, height: layers.length * (NODE_H + GAP_Y) - GAP_Y };
  }

  function edgePath(e, w, bend, center) {
    var a = e.from, b = e.to;
    if (!e.back) {
      var x1 = a.x + w / 2, y1 = a.y + NODE_H, x2 = b.x + w / 2, y2 = b.y - 3;
      var my = (y1 + y2) / 2;
      return { d: "M" + x1 + "," + y1 + " C" + x1 + "," + my + " " + x2 + "," + my + " " + x2 + "," + y2,
        lx: (x1 + x2) / 2, ly: my };
    }
    // A loop goes round the outside of the graph, on the side its source is on.
    var left = a.x + w / 2 < center;
    var sx = left ? a.x : a.x + w, sy = a.y + NODE_H / 2;
    var tx = left ? b.x - 3 : b.x + w + 3, ty = b.y + NODE_H / 2;
    var out = left ? Math.min(sx, tx) - 36 - bend : Math.max(sx, tx) + 36 + bend;
    var lx = left ? out + 6 : out - 6;
    if (a === b) {
      return { d: "M" + sx + "," + (sy - 8) + " C" + out + "," + (sy - 30) + " " + out + "," +
        (sy + 30) + " " + tx + "," + (sy + 8), lx: lx, ly: sy };
    }
    return { d: "M" + sx + "," + sy + " C" + out + "," + sy + " " + out + "," + ty + " " + tx + "," + ty,
      lx: lx, ly: (sy + ty) / 2 };
  }

  function label(text, x, y, cls) {
    var t = text.length > 24 ? text.slice(0, 23) + "…" : text;
    var w = t.length * 6.4 + 8;
    return svg("g", { class: "edge-label " + cls },
      svg("rect", { x: x - w / 2, y: y - 9, width: w, height: 16, rx: 3 }),
      svg("text", { x: x, y: y + 3, "text-anchor": "middle" }, t),
      text !== t ? svg("title", null, text) : null);
  }

  /* The graph of `model` as an <svg>; onNode(stepIndex) is called when a node is clicked. */
  AF.graph = function (model, onNode) {
    var g = analyse(obj(model.graph));
    if (!g.nodes.length) return AF.el("p", { class: "muted" }, "no graph stored for this run");
    var stepIndex = {};
    list(model.steps).forEach(function (s, i) { stepIndex[str(obj(s).name)] = i; });
    var longest = Math.max.apply(null, g.nodes.map(function (n) { return shorten(n.name).length; }));
    var w = Math.max(120, Math.min(MAX_CHARS * CHAR_W, longest * CHAR_W) + 24);
    var size = place(g.nodes, w);
    var backs = g.edges.filter(function (e) { return e.back; }).length;
    var room = backs ? 50 + 14 * backs : 0; // for loops, on either side
    g.nodes.forEach(function (n) { n.x += room; });
    var width = size.width + 2 * MARGIN + 2 * room;
    var center = width / 2;
    var height = size.height + 2 * MARGIN;
    var root = svg("svg", { class: "graph", width: width, height: height,
      viewBox: "0 0 " + width + " " + height, role: "img", "aria-label": "flow graph" },
      svg("defs", null,
        svg("marker", { id: "af-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
          markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
          svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow" }))));
    var bend = 0;
    g.edges.forEach(function (e) {
      var p = edgePath(e, w, e.back ? (bend += 14) : 0, center);
      var kind = str(e.from.step.kind);
      var cls = "edge" + (e.back ? " back" : "") + (kind === "foreach" ? " foreach" : "") +
        (kind === "switch" ? " switch" : "");
      root.appendChild(svg("path", { class: cls, d: p.d, "marker-end": "url(#af-arrow)" }));
      if (e.label !== null) root.appendChild(label(e.label, p.lx, p.ly, kind === "switch" ? "case" : "note"));
      else if (e.back && e.from === e.to) root.appendChild(label("loop", p.lx, p.ly, "note"));
    });
    g.nodes.forEach(function (n) {
      var kind = str(n.step.kind);
      var isJoin = kind === "join" || n.step.is_join === true || n.inn.filter(function (e) {
        return !e.back;
      }).length > 1;
      var idx = stepIndex[n.name];
      var s = idx === undefined ? {} : obj(model.steps[idx]);
      var total = AF.num(s.n_tasks) || 0, failed = AF.num(s.n_failed) || 0,
        running = AF.num(s.n_running) || 0;
      var state = failed ? "failed" : running ? "running" : total ? "succeeded" : "notrun";
      var counts = total ? AF.plural(total, "task") : "not run";
      if (failed) counts += " · " + failed + " failed";
      else if (running) counts += " · " + running + " running";
      var cls = "node kind-" + (KINDS.indexOf(kind) >= 0 ? kind : "other") +
        (isJoin ? " join" : "") + " state-" + state;
      var shape = kind === "switch"
        ? svg("polygon", { class: "box", points: [n.x + 10, n.y, n.x + w - 10, n.y, n.x + w,
          n.y + NODE_H / 2, n.x + w - 10, n.y + NODE_H, n.x + 10, n.y + NODE_H, n.x, n.y + NODE_H / 2].join(" ") })
        : svg("rect", { class: "box", x: n.x, y: n.y, width: w, height: NODE_H,
          rx: kind === "end" || n.name === str(obj(model.graph).start) ? 22 : 6 });
      var node = svg("g", { class: cls, tabindex: idx === undefined ? null : 0,
        "data-step": idx === undefined ? null : idx },
        svg("title", null, n.name + " (" + (isJoin ? "join, " : "") + (kind || "?") + ")"),
        total > 1 && kind !== "switch" ? svg("rect", { class: "stack", x: n.x + 4, y: n.y + 4,
          width: w, height: NODE_H, rx: 6 }) : null, // many tasks: a stack of cards
        shape,
        svg("text", { class: "name", x: n.x + w / 2, y: n.y + 19, "text-anchor": "middle" },
          shorten(n.name)),
        svg("text", { class: "counts", x: n.x + w / 2, y: n.y + 36, "text-anchor": "middle" },
          counts));
      if (idx !== undefined) {
        node.addEventListener("click", function () { onNode(idx); });
        node.addEventListener("keydown", function (ev) {
          if (ev.key === "Enter" || ev.key === " ") {
            ev.preventDefault();
            onNode(idx);
          }
        });
      }
      root.appendChild(node);
    });
    return AF.el("div", { class: "graph-wrap" }, root);
  };
})();
