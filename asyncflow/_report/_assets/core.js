/* asyncflow report: core helpers. Every string drawn comes from a store or an archive and is
   hostile: the page is built with createElement and textContent only, never from HTML text. */
"use strict";
var AF = {};
(function () {
  var app = document.getElementById("app");
  var errors = 0;
  function countError() {
    errors += 1;
    if (app) app.setAttribute("data-errors", String(errors));
  }
  // Count what goes wrong, so a test (or a curious reader) can see it in the DOM.
  window.addEventListener("error", countError);
  window.addEventListener("unhandledrejection", countError);
  document.addEventListener("securitypolicyviolation", function () {
    var n = Number(app.getAttribute("data-csp-violations") || "0") + 1;
    app.setAttribute("data-csp-violations", String(n));
  });
  var consoleError = console.error;
  console.error = function () {
    countError();
    return consoleError.apply(console, arguments);
  };

  var SVG_NS = "http://www.w3.org/2000/svg";

  /* el("div", {class: "x", title: t}, child, "text", [more]) builds an element; strings
     become text nodes, attributes are set with setAttribute (never event handlers). */
  function build(node, attrs, children) {
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === null || value === undefined || value === false) return;
        if (/^on/i.test(key)) throw new Error("no event handler attributes: " + key);
        node.setAttribute(key, String(value));
      });
    }
    append(node, children);
    return node;
  }
  function append(node, children) {
    for (var i = 0; i < children.length; i++) {
      var child = children[i];
      if (child === null || child === undefined || child === false) continue;
      if (Array.isArray(child)) append(node, child);
      else if (typeof child === "object" && child.nodeType) node.appendChild(child);
      else node.appendChild(document.createTextNode(String(child)));
    }
  }
  AF.el = function (tag, attrs) {
    return build(document.createElement(tag), attrs, Array.prototype.slice.call(arguments, 2));
  };
  AF.svg = function (tag, attrs) {
    return build(document.createElementNS(SVG_NS, tag), attrs,
      Array.prototype.slice.call(arguments, 2));
  };
  AF.append = function (node) {
    append(node, Array.prototype.slice.call(arguments, 1));
    return node;
  };
  AF.clear = function (node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  };

  AF.str = function (value) {
    return value === null || value === undefined ? "" : String(value);
  };
  AF.num = function (value) {
    return typeof value === "number" && isFinite(value) ? value : null;
  };
  AF.list = function (value) {
    return Array.isArray(value) ? value : [];
  };
  AF.obj = function (value) {
    return value && typeof value === "object" && !Array.isArray(value) ? value : {};
  };

  var KNOWN_STATUS = ["succeeded", "failed", "running", "pending", "cancelled", "crashed",
    "caught", "skipped", "unknown"];
  AF.statusClass = function (status) {
    var s = AF.str(status).toLowerCase();
    return "status-" + (KNOWN_STATUS.indexOf(s) >= 0 ? s : "other");
  };
  AF.badge = function (status) {
    return AF.el("span", { class: "badge " + AF.statusClass(status) }, AF.str(status) || "?");
  };

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }
  AF.time = function (epoch) {
    var t = AF.num(epoch);
    if (t === null) return "–";
    var d = new Date(t * 1000);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  };
  /* "UTC+01:00": the viewer's offset from UTC at `epoch` (summer time counted), which
     AF.time's local times are in. */
  AF.zone = function (epoch) {
    var t = AF.num(epoch);
    var off = -(t === null ? new Date() : new Date(t * 1000)).getTimezoneOffset(), a = Math.abs(off);
    return "UTC" + (off < 0 ? "-" : "+") + pad(Math.floor(a / 60)) + ":" + pad(a % 60);
  };
  AF.duration = function (seconds) {
    var s = AF.num(seconds);
    if (s === null || s < 0) return "–";
    if (s < 1) return Math.round(s * 1000) + " ms";
    if (s < 60) return (s < 10 ? s.toFixed(2) : s.toFixed(1)) + " s";
    var m = Math.floor(s / 60);
    if (m < 60) return m + " min " + Math.round(s - m * 60) + " s";
    var h = Math.floor(m / 60);
    return h + " h " + (m - h * 60) + " min";
  };
  AF.span = function (start, end) {
    var a = AF.num(start), b = AF.num(end);
    return a === null || b === null ? null : b - a;
  };
  AF.plural = function (n, word) {
    return n + " " + word + (n === 1 ? "" : "s");
  };
  /* Element ids are made of indexes, never of names (names are hostile). */
  AF.stepAnchor = function (index) {
    return "step-" + index;
  };
})();
