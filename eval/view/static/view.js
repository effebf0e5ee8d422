// The run browser's page logic: routes on the URL's hash, loads each run's data files on demand
// (a <script> tag per file, as file:// allows) and builds every view with DOM calls. Text from
// runs is only ever set as text (textContent), never parsed as HTML.
(function () {
  "use strict";

  const INDEX = JSON.parse(document.getElementById("moa-index").textContent);
  const RUNS = new Map(INDEX.runs.map((r) => [r.key, r]));
  const app = document.getElementById("app");
  const indexView = document.getElementById("index");
  const crumbs = document.getElementById("crumbs");
  const store = new Map();
  const waiting = new Map();
  window.MOA_TIMES = [];

  // Data files call MOA.put(path, data) when they load.
  window.MOA = {
    put(path, data) {
      store.set(path, data);
      const w = waiting.get(path);
      if (w) {
        waiting.delete(path);
        w.resolve(data);
      }
    },
  };

  function load(path) {
    if (store.has(path)) return Promise.resolve(store.get(path));
    if (waiting.has(path)) return waiting.get(path).promise;
    let resolve;
    let reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    waiting.set(path, { promise, resolve });
    const script = document.createElement("script");
    script.src = "data/" + path + ".js";
    script.onerror = () => {
      waiting.delete(path);
      reject(new Error("cannot load data/" + path + ".js: rebuild the site (moa-bench task=view)"));
    };
    document.head.appendChild(script);
    return promise;
  }

  // h("div", {class: "x", onclick: f}, "text", child): an element; strings become text nodes.
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  const rows = (run) => load(run.folder + "/rows");
  const searchText = (run) => load(run.folder + "/search");

  function link(...parts) {
    return "#" + parts.map((p) => encodeURIComponent(p)).join("/");
  }

  function num(x, digits) {
    return x === null || x === undefined ? "–" : Number(x).toFixed(digits === undefined ? 2 : digits);
  }

  function usd(x) {
    if (x === null || x === undefined || Number.isNaN(x)) return "unpriced";
    return "$" + (x < 0.01 && x > 0 ? Number(x).toPrecision(2) : Number(x || 0).toFixed(2));
  }

  function chip(text, kind) {
    return h("span", { class: "tag" + (kind ? " " + kind : "") }, text);
  }

  function outcomeClass(outcome) {
    if (outcome === "win") return "good";
    if (outcome === "loss") return "bad";
    return "";
  }

  // A run from the link's parts: the run directory's name, or a variant with one run.
  function findRun(benchmark, name) {
    const exact = RUNS.get(benchmark + "/" + name);
    if (exact) return exact;
    const byVariant = INDEX.runs.filter((r) => r.benchmark === benchmark && r.variant === name);
    return byVariant.length ? byVariant[0] : null;
  }

  function setCrumbs(items) {
    crumbs.replaceChildren(
      ...items.flatMap((item, i) => [i ? " › " : "", item.href ? h("a", { href: item.href }, item.text) : item.text])
    );
  }

  // --- list filtering, shared by a run's list and the side-by-side list ----------------------

  function controls(state, tags, rerender, extra) {
    const search = h("input", {
      type: "search",
      placeholder: "search instructions, answers, judge text",
      value: state.query,
      "aria-label": "search",
      class: "search",
    });
    let timer = null;
    search.addEventListener("input", () => {
      document.body.dataset.ready = "0";
      clearTimeout(timer);
      timer = setTimeout(() => {
        state.query = search.value;
        rerender();
      }, 120);
    });
    const tag = h(
      "select",
      { "aria-label": "category or skill", class: "tagfilter" },
      h("option", { value: "" }, "every category / skill"),
      tags.map((t) => h("option", { value: t, selected: state.tag === t }, t))
    );
    tag.addEventListener("change", () => {
      state.tag = tag.value;
      rerender();
    });
    return h("div", { class: "controls" }, search, tags.length ? tag : null, extra);
  }

  function allTags(...lists) {
    const tags = new Set();
    for (const list of lists) for (const row of list) for (const t of row.tags) tags.add(t);
    return [...tags].sort();
  }

  // The positions of rows matching the query and tag; the search text loads on first use.
  // `lists` are the runs' rows, `state.pos[j](i)` the row of run j at the list's position i.
  async function matching(state, n, lists, runs) {
    const query = state.query.trim().toLowerCase();
    const texts = query ? await Promise.all(runs.map(searchText)) : null;
    const keep = [];
    for (let i = 0; i < n; i++) {
      if (state.tag && !lists.some((l, j) => l[state.pos[j](i)].tags.includes(state.tag))) continue;
      if (query && !texts.some((t, j) => t[state.pos[j](i)].includes(query))) continue;
      keep.push(i);
    }
    return keep;
  }

  // --- the index -------------------------------------------------------------------------------

  function showIndex() {
    app.hidden = true;
    indexView.hidden = false;
    setCrumbs([]);
    return "index";
  }

  for (const form of document.querySelectorAll("form.compare")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      location.hash = link("compare", form.dataset.benchmark, form.elements.a.value, form.elements.b.value);
    });
  }

  // --- one run's instances ---------------------------------------------------------------------

  const runState = new Map();

  async function showRun(run) {
    const list = await rows(run);
    const state = runState.get(run.key) || { query: "", tag: "", sort: "id", pos: [(i) => i] };
    runState.set(run.key, state);
    const body = h("tbody");
    const count = h("span", { class: "dim" });
    const sort = h(
      "select",
      { "aria-label": "sort" },
      [["id", "in benchmark order"], ["score-", "lowest score first"], ["score+", "highest score first"]].map(
        ([v, t]) => h("option", { value: v, selected: state.sort === v }, t)
      )
    );
    sort.addEventListener("change", () => {
      state.sort = sort.value;
      render();
    });
    async function render() {
      const keep = await matching(state, list.length, [list], [run]);
      const score = (i) => (list[i].score === null ? NaN : list[i].score);
      if (state.sort !== "id") {
        const sign = state.sort === "score+" ? -1 : 1;
        keep.sort((a, b) => (isNaN(score(a)) - isNaN(score(b))) || sign * (score(a) - score(b)));
      }
      count.textContent = keep.length + " of " + list.length + " instances";
      body.replaceChildren(
        ...keep.map((i) => {
          const r = list[i];
          return h(
            "tr",
            { "data-id": r.id },
            h("td", null, h("a", { href: link(run.benchmark, run.run, r.id) }, r.id)),
            h("td", { class: "title" }, r.title),
            h("td", null, r.tags.map((t) => chip(t))),
            h("td", null, r.outcome === null ? chip("not judged") : chip(r.outcome, outcomeClass(r.outcome))),
            h("td", { class: "num" }, num(r.score)),
            h("td", null, r.error ? chip("failed", "bad") : null, r.degraded ? chip("degraded", "warn") : null)
          );
        })
      );
      document.body.dataset.ready = "1";
    }
    setCrumbs([{ text: run.benchmark }, { text: run.run }]);
    app.replaceChildren(
      h("h1", null, run.run, " ", h("span", { class: "dim" }, run.benchmark)),
      runSummary(run),
      controls(state, allTags(list), () => {
        document.body.dataset.ready = "0";
        render();
      }, [sort, count]),
      h(
        "table",
        { class: "list" },
        h("thead", null, h("tr", null, ["id", "instruction", "category / skill", "verdict", "score", ""].map((t) => h("th", null, t)))),
        body
      )
    );
    await render();
    return "run";
  }

  function runSummary(run) {
    return h(
      "p",
      { class: "summary" },
      run.variant + ": " + run.layers + " layers, " + run.proposers.length + " proposers → " + run.aggregator,
      " · " + run.instances + " instances, " + run.calls + " calls, " + usd(run.cost_usd),
      run.judge ? " · judged by " + run.judge : " · not judged",
      run.judge_bias ? h("span", { class: "bias" }, " · judge's biases: " + run.judge_bias) : null
    );
  }

  // --- one instance ----------------------------------------------------------------------------

  async function record(run, id) {
    const list = await rows(run);
    const at = list.findIndex((r) => r.id === id);
    if (at < 0) return { list, at, item: null };
    const chunk = await load(run.folder + "/c" + list[at].chunk);
    return { list, at, item: chunk.find((x) => x.id === id) };
  }

  // Fields every call has, shown in the card's head; any other field shows as "name: value".
  const SHOWN = new Set([
    "model", "sample", "text", "error", "input_tokens", "output_tokens", "latency_s", "cached",
    "attempts", "finish_reason", "truncated", "empty", "tokens_estimated", "cost_usd", "billed",
    "label", "unsent", "notes", "references",
  ]);

  function callCard(call, role) {
    const facts = [
      chip(call.input_tokens + " → " + call.output_tokens + " tok" + (call.tokens_estimated ? " (est.)" : "")),
      chip(num(call.latency_s) + " s"),
      chip(usd(call.cost_usd) + (call.billed ? " billed" : "")),
      call.cached ? chip("cache hit", "good") : null,
      call.attempts > 1 ? chip(call.attempts + " attempts", "warn") : null,
      call.finish_reason && call.finish_reason !== "stop" ? chip("finish: " + call.finish_reason) : null,
      call.truncated ? chip("truncated", "warn") : null,
      call.empty ? chip("empty", "warn") : null,
      call.unsent ? chip("not sent", "bad") : null,
      Object.entries(call)
        .filter(([k, v]) => !SHOWN.has(k) && v !== null && v !== false && v !== "" && typeof v !== "object")
        .map(([k, v]) => chip(k + ": " + v)),
    ];
    return h(
      "div",
      { class: "call " + role + (call.error ? " failed" : ""), "data-model": call.model },
      h("div", { class: "callhead" }, h("b", null, call.model), h("span", { class: "dim" }, " #" + call.sample), " ", facts),
      call.notes.map((n) => h("div", { class: "policy" }, n)),
      (call.references || []).map((n) => h("div", { class: "policy" }, n)),
      call.text !== null
        ? h("pre", { class: "text" }, call.text)
        : h("pre", { class: "text error" }, "error: " + (call.error || "no answer"))
    );
  }

  function turnView(run, item, t, compact) {
    const turn = item.trace[t];
    const depth = turn.layers.length + 1;
    // A layer past the run's own (a final strategy's earlier calls) is the final agent's.
    const kind = (d) => (d < (run.kinds || []).length ? run.kinds[d] : run.mode);
    const layers = turn.layers.map((layer, d) =>
      h(
        "section",
        { class: "layer" },
        h("h4", null, "Layer " + (d + 1) + (kind(d) ? " (" + kind(d) + ")" : "") + " ", h("span", { class: "dim" }, layer.length + " calls")),
        h("div", { class: "calls" }, layer.map((c) => callCard(c, "proposal")))
      )
    );
    const final = turn.final
      ? h("section", { class: "layer" }, h("h4", null, "Layer " + depth + ": final"), callCard(turn.final, "final"))
      : null;
    const picked = turn.output !== null && turn.final && turn.final.text !== null && turn.output !== turn.final.text.trim();
    const body = [
      compact
        ? h("details", { class: "layers" }, h("summary", null, "proposals: " + (depth - 1) + (depth === 2 ? " layer" : " layers") + ", then the final call"), layers, final)
        : [layers, final],
      h(
        "section",
        { class: "answer" },
        h("h4", null, picked ? "Answer (the proposal picked)" : "Final answer"),
        turn.output !== null ? h("pre", { class: "text output" }, turn.output) : h("pre", { class: "text error" }, "no answer: " + (turn.error || ""))
      ),
      turn.events.length ? h("ul", { class: "events" }, turn.events.map((e) => h("li", null, e))) : null,
    ];
    return h(
      "section",
      { class: "turn" },
      h("h3", null, "Turn " + (t + 1)),
      h("div", { class: "user" }, h("div", { class: "who" }, "user"), h("pre", { class: "text instruction" }, item.turns[t] || "")),
      body
    );
  }

  function verdictView(verdict) {
    if (!verdict) return h("section", { class: "verdict" }, h("h3", null, "Judge"), h("p", { class: "dim" }, "not judged"));
    return h(
      "section",
      { class: "verdict" },
      h("h3", null, "Judge: ", chip(verdict.outcome, outcomeClass(verdict.outcome)), " ", h("span", { class: "dim" }, "score " + num(verdict.score))),
      verdict.readings.map((r) =>
        h(
          "div",
          { class: "reading" },
          h("h4", null, r.title),
          h("dl", null, Object.entries(r.facts).map(([k, v]) => [h("dt", null, k), h("dd", null, v)])),
          r.text !== null ? h("pre", { class: "text judgment" }, r.text) : null,
          r.prompt ? h("details", null, h("summary", null, "the judge's prompt"), h("pre", { class: "text" }, r.prompt)) : null
        )
      )
    );
  }

  function instanceView(run, item, compact) {
    const references = (item.references || []).map((text, i) =>
      h("section", { class: "reference" }, h("h3", null, "Reference answer" + (item.references.length > 1 ? " " + (i + 1) : "")), h("pre", { class: "text" }, text))
    );
    const compared = item.verdict && item.verdict.reference
      ? h("details", { class: "reference" }, h("summary", null, "The output it was judged against: " + item.verdict.reference[0]), h("pre", { class: "text" }, item.verdict.reference[1]))
      : null;
    return h(
      "article",
      { class: "instance", "data-run": run.key, "data-id": item.id },
      h(
        "p",
        { class: "summary" },
        item.calls + " calls, " + item.input_tokens.toLocaleString() + " / " + item.output_tokens.toLocaleString() + " tokens, ",
        num(item.seconds, 1) + " s, " + usd(item.cost_usd),
        item.error ? h("span", { class: "tag bad" }, "failed: " + item.error) : null,
        item.verdict ? item.verdict.tags.map((t) => chip(t)) : null
      ),
      compact ? verdictView(item.verdict) : null,
      item.trace.length ? item.trace.map((_, t) => turnView(run, item, t, compact)) : item.turns.map((text) => h("pre", { class: "text instruction" }, text)),
      references,
      compared,
      compact ? null : verdictView(item.verdict)
    );
  }

  async function showInstance(run, id) {
    const { list, at, item } = await record(run, id);
    setCrumbs([{ text: run.benchmark }, { text: run.run, href: link(run.benchmark, run.run) }, { text: id }]);
    if (!item) {
      app.replaceChildren(h("p", { class: "error" }, "No instance " + id + " in " + run.key + "."));
      return "missing";
    }
    const step = (d) => (list[at + d] ? h("a", { href: link(run.benchmark, run.run, list[at + d].id) }, d < 0 ? "‹ previous" : "next ›") : null);
    const others = INDEX.runs.filter((r) => r.benchmark === run.benchmark && r.key !== run.key);
    const compare = others.length
      ? h(
          "select",
          { "aria-label": "compare with", onchange: (e) => (location.hash = link("compare", run.benchmark, run.run, e.target.value, id)) },
          h("option", { value: "" }, "side by side with…"),
          others.map((r) => h("option", { value: r.run }, r.run))
        )
      : null;
    app.replaceChildren(
      h("h1", null, "Instance " + id + " ", h("span", { class: "dim" }, run.run)),
      h("nav", { class: "steps" }, step(-1), " ", step(1), " ", compare),
      instanceView(run, item, false)
    );
    return "instance";
  }

  // --- two runs side by side -------------------------------------------------------------------

  const pairState = new Map();

  async function pairs(a, b) {
    const [la, lb] = await Promise.all([rows(a), rows(b)]);
    const inB = new Map(lb.map((r, i) => [r.id, i]));
    const joined = [];
    la.forEach((r, i) => {
      if (inB.has(r.id)) joined.push([i, inB.get(r.id)]);
    });
    return { la, lb, joined };
  }

  async function showCompare(a, b) {
    const { la, lb, joined } = await pairs(a, b);
    const key = a.key + "|" + b.key;
    const state = pairState.get(key) || { query: "", tag: "", sort: "id", disagree: false };
    state.pos = [(i) => joined[i][0], (i) => joined[i][1]];
    pairState.set(key, state);
    const body = h("tbody");
    const count = h("span", { class: "dim" });
    const disagree = h("input", { type: "checkbox", checked: state.disagree, class: "disagree" });
    disagree.addEventListener("change", () => {
      state.disagree = disagree.checked;
      rerender();
    });
    const sort = h(
      "select",
      { "aria-label": "sort", class: "sort" },
      [["id", "in benchmark order"], ["diff-abs", "largest score difference first"], ["diff+", "second run best first"], ["diff-", "first run best first"]].map(
        ([v, t]) => h("option", { value: v, selected: state.sort === v }, t)
      )
    );
    sort.addEventListener("change", () => {
      state.sort = sort.value;
      rerender();
    });
    const diff = (i) => {
      const [x, y] = [la[joined[i][0]].score, lb[joined[i][1]].score];
      return x === null || y === null ? NaN : y - x;
    };
    async function render() {
      let keep = await matching(state, joined.length, [la, lb], [a, b]);
      if (state.disagree) keep = keep.filter((i) => la[joined[i][0]].outcome !== lb[joined[i][1]].outcome);
      const by = { "diff-abs": (i) => -Math.abs(diff(i)), "diff+": (i) => -diff(i), "diff-": (i) => diff(i) }[state.sort];
      if (by) keep.sort((x, y) => (isNaN(by(x)) - isNaN(by(y))) || by(x) - by(y));
      count.textContent = keep.length + " shown, of the " + joined.length + " instances both ran (difference: the second run's score minus the first's)";
      body.replaceChildren(
        ...keep.map((i) => {
          const [ra, rb] = [la[joined[i][0]], lb[joined[i][1]]];
          return h(
            "tr",
            { "data-id": ra.id },
            h("td", null, h("a", { href: link("compare", a.benchmark, a.run, b.run, ra.id) }, ra.id)),
            h("td", { class: "title" }, ra.title),
            h("td", null, ra.tags.map((t) => chip(t))),
            h("td", { class: "outcome-a" }, chip(ra.outcome === null ? "not judged" : ra.outcome, outcomeClass(ra.outcome))),
            h("td", { class: "outcome-b" }, chip(rb.outcome === null ? "not judged" : rb.outcome, outcomeClass(rb.outcome))),
            h("td", { class: "num" }, num(diff(i)))
          );
        })
      );
      document.body.dataset.ready = "1";
    }
    function rerender() {
      document.body.dataset.ready = "0";
      render();
    }
    setCrumbs([{ text: a.benchmark }, { text: a.run + " vs " + b.run }]);
    app.replaceChildren(
      h("h1", null, a.run, h("span", { class: "dim" }, " vs "), b.run),
      h("div", { class: "two" }, runSummary(a), runSummary(b)),
      controls(state, allTags(la, lb), rerender, [
        h("label", null, disagree, " only where their verdicts differ"),
        sort,
        count,
      ]),
      h(
        "table",
        { class: "list pairs" },
        h("thead", null, h("tr", null, ["id", "instruction", "category / skill", a.run, b.run, "difference"].map((t) => h("th", null, t)))),
        body
      )
    );
    await render();
    return "compare";
  }

  async function showPair(a, b, id) {
    const [ra, rb] = await Promise.all([record(a, id), record(b, id)]);
    setCrumbs([{ text: a.benchmark }, { text: a.run + " vs " + b.run, href: link("compare", a.benchmark, a.run, b.run) }, { text: id }]);
    const side = (run, r) =>
      h("div", { class: "side" }, h("h2", null, h("a", { href: link(run.benchmark, run.run, id) }, run.run)), r.item ? instanceView(run, r.item, true) : h("p", { class: "error" }, "not in this run"));
    const { joined, la } = await pairs(a, b);
    const at = joined.findIndex(([i]) => la[i].id === id);
    const step = (d) => (joined[at + d] ? h("a", { href: link("compare", a.benchmark, a.run, b.run, la[joined[at + d][0]].id) }, d < 0 ? "‹ previous" : "next ›") : null);
    app.replaceChildren(
      h("h1", null, "Instance " + id + " ", h("span", { class: "dim" }, a.run + " vs " + b.run)),
      h("nav", { class: "steps" }, step(-1), " ", step(1)),
      h("div", { class: "two" }, side(a, ra), side(b, rb))
    );
    return "pair";
  }

  // --- routing ---------------------------------------------------------------------------------

  async function route() {
    const started = performance.now();
    document.body.dataset.ready = "0";
    const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
    let view;
    try {
      if (!parts.length) {
        view = showIndex();
      } else {
        indexView.hidden = true;
        app.hidden = false;
        if (parts[0] === "compare" && parts.length >= 4) {
          const [a, b] = [findRun(parts[1], parts[2]), findRun(parts[1], parts[3])];
          if (!a || !b) throw new Error("no such runs: " + parts.slice(1, 4).join(", "));
          view = parts[4] ? await showPair(a, b, parts[4]) : await showCompare(a, b);
        } else {
          const run = findRun(parts[0], parts[1] || "");
          if (!run) throw new Error("no run " + parts.slice(0, 2).join("/") + " in this site");
          view = parts[2] ? await showInstance(run, parts[2]) : await showRun(run);
        }
      }
    } catch (err) {
      app.replaceChildren(h("p", { class: "error" }, String(err.message || err)));
      view = "error";
    }
    window.scrollTo(0, 0);
    document.body.dataset.view = view;
    document.body.dataset.ready = "1";
    // How long this view took from its route, and when it was done since the page opened.
    window.MOA_TIMES.push({ view, hash: location.hash, ms: performance.now() - started, at: performance.now() });
  }

  window.addEventListener("hashchange", route);
  route();
})();
