/* A small, safe Markdown subset for card text: headings, paragraphs, emphasis, code (inline
   and fenced), lists, block quotes, rules and links. It yields DOM nodes, never HTML text:
   raw HTML in the Markdown shows as the text it is. Links keep only http(s) and mailto URLs;
   any other link shows as its text. */
(function () {
  var el = AF.el;
  var SAFE_URL = /^(https?:\/\/|mailto:)[^\s\u0000-\u001f]*$/i;
  AF.safeUrl = function (url) {
    return typeof url === "string" && SAFE_URL.test(url);
  };

  // The inline forms, tried at each position; the earliest match wins.
  var INLINE = [
    { re: /\\([\\`*_\[\]()#+\-.!>~])/, make: function (m) { return m[1]; } },
    { re: /(`+)([\s\S]*?[^`])\1(?!`)/, make: function (m) {
      return el("code", null, m[2].trim());
    } },
    { re: /\*\*(?=\S)([\s\S]*?\S)\*\*|__(?=\S)([\s\S]*?\S)__/, make: function (m) {
      return el("strong", null, inline(m[1] !== undefined ? m[1] : m[2]));
    } },
    { re: /\*(?=\S)([\s\S]*?\S)\*|\b_(?=\S)([\s\S]*?\S)_\b/, make: function (m) {
      return el("em", null, inline(m[1] !== undefined ? m[1] : m[2]));
    } },
    { re: /!\[([^\]]*)\]\(\s*((?:[^\s()]|\([^\s()]*\))*)\s*\)/, make: function (m) {
      // An image by URL is never fetched (the page fetches nothing): its text says what it was.
      return el("span", { class: "md-nolink" }, "[image: " + (m[1] || m[2]) + "]");
    } },
    { re: /\[([^\]]*)\]\(\s*((?:[^\s()]|\([^\s()]*\))*)\s*\)/, make: function (m) {
      var label = inline(m[1]);
      if (!AF.safeUrl(m[2])) return el("span", { class: "md-nolink" }, label);
      return el("a", { href: m[2], rel: "noopener noreferrer nofollow", target: "_blank" },
        label.length ? label : m[2]);
    } },
  ];

  var MAX_INLINE = 20000; // a longer paragraph shows as plain text (bounded work)

  /* Scan once from left to right: each form's next match is kept until it is passed, so a
     long text costs a few passes, not one pass per token. */
  function inline(text) {
    if (text.length > MAX_INLINE) return [text];
    var out = [];
    var pos = 0;
    var next = INLINE.map(function () { return undefined; });
    for (;;) {
      var best = -1;
      for (var i = 0; i < INLINE.length; i++) {
        if (next[i] === null) continue;
        if (next[i] === undefined || next[i].index < pos) {
          var re = new RegExp(INLINE[i].re.source, "g");
          re.lastIndex = pos;
          next[i] = re.exec(text);
          if (next[i] === null) continue;
        }
        if (best < 0 || next[i].index < next[best].index) best = i;
      }
      if (best < 0) break;
      var m = next[best];
      if (m.index > pos) out.push(text.slice(pos, m.index));
      out.push(INLINE[best].make(m));
      pos = m.index + m[0].length;
    }
    if (pos < text.length) out.push(text.slice(pos));
    return out;
  }
  AF.inlineMarkdown = inline;

  var FENCE = /^\s{0,3}(```+|~~~+)\s*(\S*)/;
  var HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
  var RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;
  var ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
  var QUOTE = /^\s{0,3}>\s?(.*)$/;

  /* The nodes of Markdown `text` (a string of any length, from a card). */
  AF.markdown = function (text) {
    var lines = AF.str(text).replace(/\r\n?/g, "\n").split("\n");
    return blocks(lines, 0);
  };

  function blocks(lines, depth) {
    var out = [];
    var para = [];
    var i = 0;
    function flush() {
      if (para.length) out.push(el("p", null, inline(para.join(" "))));
      para = [];
    }
    while (i < lines.length) {
      var line = lines[i];
      var m;
      if ((m = FENCE.exec(line))) {
        flush();
        var fence = m[1], code = [];
        i += 1;
        while (i < lines.length && lines[i].trim().indexOf(fence) !== 0) code.push(lines[i++]);
        i += 1;
        out.push(el("pre", { class: "md-code" }, el("code", null, code.join("\n"))));
        continue;
      }
      if (!line.trim()) {
        flush();
        i += 1;
        continue;
      }
      if ((m = HEADING.exec(line))) {
        flush();
        var level = Math.min(6, m[1].length + 2);
        out.push(el("h" + level, { class: "md-h" }, inline(m[2])));
        i += 1;
        continue;
      }
      if (RULE.test(line)) {
        flush();
        out.push(el("hr"));
        i += 1;
        continue;
      }
      if ((m = QUOTE.exec(line)) && depth < 4) {
        flush();
        var quoted = [];
        while (i < lines.length && (m = QUOTE.exec(lines[i]))) {
          quoted.push(m[1]);
          i += 1;
        }
        out.push(el("blockquote", null, blocks(quoted, depth + 1)));
        continue;
      }
      if ((m = ITEM.exec(line))) {
        flush();
        var ordered = /\d/.test(m[2]);
        var list = el(ordered ? "ol" : "ul");
        if (ordered && parseInt(m[2], 10) !== 1) list.setAttribute("start", String(parseInt(m[2], 10)));
        while (i < lines.length && (m = ITEM.exec(lines[i])) && /\d/.test(m[2]) === ordered) {
          var item = [m[3]];
          i += 1;
          while (i < lines.length && lines[i].trim() && /^\s+/.test(lines[i]) && !ITEM.test(lines[i])) {
            item.push(lines[i].trim());
            i += 1;
          }
          list.appendChild(el("li", null, inline(item.join(" "))));
        }
        out.push(list);
        continue;
      }
      para.push(line.trim());
      i += 1;
    }
    flush();
    return out;
  }
})();
