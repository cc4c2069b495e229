/* Previews of values (artifacts, parameters) and card components. */
(function () {
  var el = AF.el, str = AF.str, list = AF.list, obj = AF.obj;
  var MAX_ROWS = 200; // table rows drawn; the rest are counted
  var IMAGE_MIMES = ["image/png", "image/jpeg", "image/gif", "image/svg+xml"];
  var BASE64 = /^[A-Za-z0-9+\/]*={0,2}$/;

  function table(headers, rows, total) {
    var shown = list(rows).slice(0, MAX_ROWS);
    var head = list(headers);
    var t = el("table", { class: "data" });
    if (head.length) {
      t.appendChild(el("thead", null, el("tr", null, head.map(function (h) {
        return el("th", null, str(h));
      }))));
    }
    t.appendChild(el("tbody", null, shown.map(function (row) {
      return el("tr", null, list(row).map(function (cell) { return el("td", null, str(cell)); }));
    })));
    var count = AF.num(total);
    if (count === null) count = list(rows).length;
    var note = count > shown.length
      ? el("div", { class: "note" }, "showing " + shown.length + " of " + AF.plural(count, "row"))
      : null;
    return el("div", { class: "table-wrap" }, t, note);
  }
  AF.table = table;

  /* One PREVIEW: {kind: text|array|table|unavailable, ...}; a plain string shows as text. */
  AF.preview = function (preview) {
    if (typeof preview === "string") return el("pre", { class: "preview text" }, preview);
    var p = obj(preview);
    var kind = str(p.kind);
    if (kind === "text") return el("pre", { class: "preview text" }, str(p.text));
    if (kind === "array") {
      var dims = list(p.shape).map(str);
      var shape = dims.join(", ") + (dims.length === 1 ? "," : ""); // as numpy writes it
      return el("div", { class: "preview array" },
        el("div", { class: "array-meta" },
          el("span", { class: "k" }, "shape "), el("span", { class: "v shape" }, "(" + shape + ")"),
          el("span", { class: "k" }, "dtype "), el("span", { class: "v dtype" }, str(p.dtype)),
          el("span", { class: "k" }, "min "), el("span", { class: "v min" }, str(p.min)),
          el("span", { class: "k" }, "max "), el("span", { class: "v max" }, str(p.max))),
        p.slice !== undefined && p.slice !== null
          ? el("pre", { class: "slice" }, str(p.slice)) : null);
    }
    if (kind === "table") {
      return el("div", { class: "preview table" }, table(p.headers, p.rows, p.total_rows));
    }
    if (kind === "unavailable") {
      return el("div", { class: "preview unavailable" }, str(p.text) || "not available");
    }
    return el("pre", { class: "preview text" }, JSON.stringify(preview));
  };

  function image(c) {
    var mime = str(c.mime).toLowerCase();
    var data = str(c.data);
    var label = str(c.label);
    if (IMAGE_MIMES.indexOf(mime) < 0 || !BASE64.test(data)) {
      return el("div", { class: "card-error" }, "image not shown: its type " +
        JSON.stringify(mime) + " is not PNG, JPEG, GIF or SVG, or its data is not base64");
    }
    return el("figure", { class: "card-image" },
      el("img", { src: "data:" + mime + ";base64," + data, alt: label || "card image" }),
      label ? el("figcaption", null, label) : null);
  }

  /* One stored card component: markdown, table, image, artifact or error. */
  AF.component = function (component) {
    var c = obj(component);
    var kind = str(c.kind);
    if (kind === "markdown") return el("div", { class: "md" }, AF.markdown(c.text));
    if (kind === "table") return table(c.headers, c.rows, c.total_rows);
    if (kind === "image") return image(c);
    if (kind === "artifact") {
      return el("div", { class: "card-artifact" },
        c.name !== null && c.name !== undefined ? el("div", { class: "name" }, str(c.name)) : null,
        AF.preview(c.preview));
    }
    if (kind === "error") {
      return el("div", { class: "card-error" }, el("strong", null, "card error: "), str(c.message));
    }
    return el("div", { class: "card-error" }, "unknown card component " + JSON.stringify(kind));
  };

  AF.card = function (card) {
    var c = obj(card);
    var title = c.id !== null && c.id !== undefined ? str(c.id) : str(c.type) || "card";
    return el("section", { class: "card" },
      el("div", { class: "card-title" }, "card ", el("span", { class: "name" }, title),
        c.id !== null && c.id !== undefined && c.type ? el("span", { class: "muted" }, " · " + str(c.type)) : null),
      el("div", { class: "card-body" }, list(c.components).map(AF.component)));
  };
})();
