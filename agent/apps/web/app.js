/* sqlagent web app: the ask page (streamed node timeline, result, chart, Explain, feedback) and the review
   queue. Plain JS, no build step, no network but this server. */
"use strict";

const SqlAgent = (() => {
  // --- small helpers --------------------------------------------------------------------------
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // --- the server: a bearer token from localStorage on every request ---------------------------
  const TOKEN_KEY = "sqlagent.token";
  const token = () => localStorage.getItem(TOKEN_KEY) || "";

  function headers(extra = {}) {
    const out = { ...extra };
    if (token()) out.Authorization = `Bearer ${token()}`;
    return out;
  }

  // The server's `detail` is one readable line; an older list form is joined into one.
  async function failure(response) {
    let data = null;
    try { data = await response.json(); } catch (_) { /* not JSON */ }
    let detail = data && data.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
    if (response.status === 401) detail = `${detail || "Authentication required."} Paste your token in the field at the top.`;
    const error = new Error(detail || `${response.status} ${response.statusText}`);
    error.status = response.status;
    return error;
  }

  async function api(method, url, body) {
    const response = await fetch(url, {
      method,
      headers: headers(body ? { "Content-Type": "application/json" } : {}),
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!response.ok) throw await failure(response);
    return response.json();
  }

  // Server-sent events over fetch (EventSource cannot send an Authorization header): calls
  // onEvent(name, data) per `text/event-stream` block until the server closes the stream.
  async function stream(url, onEvent, signal) {
    const response = await fetch(url, { headers: headers({ Accept: "text/event-stream" }), signal });
    if (!response.ok) throw await failure(response);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let name = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) name = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        if (data) onEvent(name, JSON.parse(data));
      }
    }
  }

  // The token field: shown when the server has auth on; says whose token it is.
  async function initAuth() {
    const form = document.getElementById("token-form");
    const input = document.getElementById("token");
    const who = document.getElementById("whoami");
    let health = null;
    try { health = await api("GET", "/api/health"); } catch (_) { return; }
    if (!health.auth) return;
    form.hidden = false;
    input.value = token();
    const show = async () => {
      if (!token()) { who.textContent = "No token: paste one."; return; }
      try {
        const me = await api("GET", "/api/me");
        who.textContent = `${me.name} · role ${me.role} · ${me.permissions.join(", ")}`;
      } catch (error) { who.textContent = error.message; }
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (input.value.trim()) localStorage.setItem(TOKEN_KEY, input.value.trim());
      else localStorage.removeItem(TOKEN_KEY);
      show();
      document.dispatchEvent(new Event("sqlagent:token")); // the pages reload what the token may see
    });
    await show();
  }

  const fmtMs = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);
  const short = (text, n = 140) => (text && text.length > n ? text.slice(0, n - 1) + "…" : text || "");
  const isNum = (v) => typeof v === "number" && Number.isFinite(v);
  const norm = (sql) => (sql || "").replace(/\s+/g, " ").replace(/;\s*$/, "").trim();

  // --- result rendering -------------------------------------------------------------------------
  function table(columns, rows, limit = 200) {
    if (!columns || !columns.length) return el("p", { class: "muted" }, "No rows.");
    const body = rows.slice(0, limit).map((row) =>
      el("tr", {}, row.map((v) => el("td", { class: isNum(v) ? "num" : "" }, v === null ? "NULL" : String(v)))));
    const wrap = el("div", { class: "table-wrap" },
      el("table", { class: "rows" }, el("thead", {}, el("tr", {}, columns.map((c) => el("th", {}, c)))), el("tbody", {}, body)));
    if (rows.length > limit) wrap.append(el("p", { class: "muted" }, `${rows.length - limit} more rows not shown.`));
    return wrap;
  }

  // The chart the server chose from the result's shape (agent/charts.py: a time series as a
  // line, categories as bars, two measures as a scatter), a Vega-Lite spec drawn by the vendored
  // vega-embed (/static/vendor): no network, no menu.
  function chart(spec) {
    if (!spec || typeof vegaEmbed !== "function") return null;
    const box = el("div", { class: "chart", role: "img", "aria-label": spec.description || "chart" });
    vegaEmbed(box, spec, { actions: false, renderer: "svg" }).catch((error) => {
      box.replaceWith(el("p", { class: "muted" }, `The chart could not be drawn: ${error.message}`));
    });
    return el("figure", { class: "chart-wrap" }, box, el("figcaption", {}, spec.description || ""));
  }

  // The answer's rows as a file (GET /api/traces/{id}/rows.csv|parquet). Fetched, not linked: a
  // link cannot send the bearer token.
  async function download(url, filename) {
    const response = await fetch(url, { headers: headers() });
    if (!response.ok) throw await failure(response);
    const link = el("a", { href: URL.createObjectURL(await response.blob()), download: filename });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  }

  function downloads(traceId) {
    const message = el("span", { class: "message", role: "status" });
    const button = (format, label) => el("button", {
      type: "button", class: "secondary download", "data-format": format,
      onclick: async () => {
        message.textContent = "";
        try { await download(`/api/traces/${encodeURIComponent(traceId)}/rows.${format}`, `sqlagent-${traceId}.${format}`); }
        catch (error) { message.className = "message error"; message.textContent = error.message; }
      },
    }, label);
    return el("div", { class: "row downloads" }, el("span", { class: "muted" }, "Download the rows:"),
      button("csv", "CSV"), button("parquet", "Parquet"), message);
  }

  function mappings(list) {
    if (!list || !list.length) return null;
    return el("ul", { class: "mappings" }, list.map((m) => el("li", {},
      el("span", { class: "mention" }, m.mention), " → ",
      el("code", {}, `${m.table}.${m.column} = ${m.value}`),
      el("span", { class: "muted" }, ` ${m.matched ? `"${m.matched}", ` : ""}score ${Number(m.score).toFixed(2)}, ${m.method}`))));
  }

  // The turn's SQL in plain words, on request (POST /api/explain, under the caller's role): one LM
  // call, so only when asked. SQL the role may not run is refused, and the page says why.
  function explainBox(r) {
    const out = el("p", { class: "explanation", role: "status" });
    const button = el("button", { type: "button", class: "secondary explain" }, "Explain");
    button.addEventListener("click", async () => {
      button.disabled = true;
      out.className = "explanation muted";
      out.textContent = "Explaining the query…";
      try {
        const data = await api("POST", "/api/explain",
          { sql: r.sql, question: r.rewritten_question || r.question || null, trace_id: r.trace_id || null });
        const ok = data.status === "ok";
        out.className = ok ? "explanation" : "explanation error";
        out.textContent = ok ? data.explanation : `Not explained (${data.status}): ${data.error}`;
        if (ok) button.remove();
      } catch (error) {
        out.className = "explanation error";
        out.textContent = error.message;
      } finally { button.disabled = false; }
    });
    return el("div", { class: "explain-box" }, button, out);
  }

  function renderResult(container, r, { explain = false } = {}) {
    container.replaceChildren();
    const status = el("span", { class: `badge ${r.status}` }, r.status);
    container.append(el("div", { class: "result-head" }, el("h2", {}, "Answer"), status));
    container.append(el("p", { class: "answer" }, r.answer || r.error || ""));
    if (r.rewritten_question && r.rewritten_question !== r.question) {
      container.append(el("h3", {}, "Rewritten question"), el("p", { class: "rewritten" }, r.rewritten_question));
    }
    const maps = mappings(r.mappings);
    if (maps) container.append(el("h3", {}, "Entity mappings"), maps);
    if (r.sql) container.append(el("h3", {}, "SQL"), el("pre", { class: "sql" }, el("code", {}, r.sql)), explain ? explainBox(r) : null);
    if (r.rows_withheld) container.append(el("p", { class: "muted withheld" }, `Rows not shown: ${r.rows_withheld}`));
    else if (r.columns && r.columns.length) {
      container.append(el("h3", {}, `Result (${r.rows.length}${r.truncated ? "+" : ""} rows)`));
      const c = chart(r.chart);
      if (c) container.append(c);
      container.append(table(r.columns, r.rows));
      if (r.trace_id && r.rows.length) container.append(downloads(r.trace_id));
    }
  }

  // --- feedback controls ------------------------------------------------------------------------
  // Drawn, not an emoji: a machine without an emoji font would show empty boxes.
  function thumb(down) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("class", "icon");
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", "M2 21h3V10H2v11zm20-9.5c0-1.1-.9-2-2-2h-6.3l1-4.6v-.3c0-.4-.2-.8-.4-1.1L13.2 2 7.6 7.6c-.4.4-.6.9-.6 1.4V19c0 1.1.9 2 2 2h8.5c.8 0 1.5-.5 1.8-1.2l2.6-6.3c.1-.2.1-.5.1-.7v-1.3z");
    if (down) path.setAttribute("transform", "rotate(180 12 12)");
    svg.append(path);
    return svg;
  }

  // The judges a reviewer can label, fetched once per page (none when the server has no judges).
  let judges = null;
  function judgeList() {
    judges = judges || api("GET", "/api/judges").then((d) => d.judges).catch(() => []);
    return judges;
  }

  function feedbackForm(traceId, sql, { onSent, extra } = {}) {
    let value = null;
    const up = el("button", { type: "button", class: "thumb up", title: "Right", "aria-label": "Right", "aria-pressed": "false" }, thumb(false));
    const down = el("button", { type: "button", class: "thumb down", title: "Wrong", "aria-label": "Wrong", "aria-pressed": "false" }, thumb(true));
    const pick = (v) => {
      value = v;
      up.setAttribute("aria-pressed", String(v === true));
      down.setAttribute("aria-pressed", String(v === false));
      send.disabled = false;
      if (v === false) details.open = true;
    };
    up.addEventListener("click", () => pick(true));
    down.addEventListener("click", () => pick(false));
    const comment = el("textarea", { class: "comment", rows: 2, maxlength: 4000, placeholder: "Comment (optional)" });
    const correction = el("textarea", { class: "correction", rows: 4, spellcheck: "false", maxlength: 20000 });
    correction.value = sql || "";
    const rubricName = `rubric-${traceId}-${Math.random().toString(36).slice(2, 7)}`;
    const rubric = el("div", { class: "rubric" }, ["correct", "partially", "wrong"].map((label) =>
      el("label", {}, el("input", { type: "radio", name: rubricName, value: label }), ` ${label}`)));
    const reason = el("input", { type: "text", class: "reason", maxlength: 2000, placeholder: "Reason (optional)" });
    const labels = el("div", { class: "field judge-labels" });  // a label per LLM judge (/api/judges)
    judgeList().then((judges) => labels.replaceChildren(...judges.map((j) => el("div", { class: "rubric", title: j.name },
      `${j.description} `, ...j.values.map((v) => el("label", {},
        el("input", { type: "radio", name: `${rubricName}-${j.name}`, value: v, "data-judge": j.name }), ` ${v}`))))));
    const details = el("details", { class: "more" }, el("summary", {}, "Correct the SQL, rubric"),
      el("label", { class: "field" }, "Corrected SQL", correction),
      el("div", { class: "field" }, "Rubric", rubric, reason), labels);
    const message = el("div", { class: "message", role: "status" });
    const send = el("button", { type: "button", class: "send", disabled: true }, "Send feedback");
    send.addEventListener("click", async () => {
      const body = { trace_id: traceId, value };
      if (comment.value.trim()) body.comment = comment.value.trim();
      if (correction.value.trim() && norm(correction.value) !== norm(sql)) body.corrected_sql = correction.value.trim();
      const checked = rubric.querySelector("input:checked");
      if (checked) body.rubric = { label: checked.value, reason: reason.value.trim() || null };
      const judged = [...labels.querySelectorAll("input:checked")];
      if (judged.length) body.labels = Object.fromEntries(judged.map((i) => [i.dataset.judge, i.value]));
      send.disabled = true;
      message.className = "message";
      message.textContent = "Sending…";
      try {
        const out = await api("POST", "/api/feedback", body);
        message.className = "message ok";
        message.replaceChildren(el("span", {}, `Feedback saved on trace ${traceId.slice(0, 12)}…`));
        if (out.corrected) message.append(el("p", { class: "muted" }, "Rows of the corrected SQL:"), table(out.corrected.columns, out.corrected.rows, 20));
        if (onSent) onSent(out);
      } catch (error) {
        message.className = "message error";
        message.textContent = error.message;
      } finally {
        send.disabled = value === null;
      }
    });
    return el("div", { class: "feedback" },
      el("div", { class: "row" }, el("span", { class: "muted" }, "Was this right?"), up, down),
      comment, details, el("div", { class: "row" }, send, extra || null), message);
  }

  // --- ask page ---------------------------------------------------------------------------------
  function newThread() {
    const id = (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2)).replace(/[^A-Za-z0-9-]/g, "");
    sessionStorage.setItem("sqlagent.thread", id);
    return id;
  }

  // A conversation: every question is a turn that stays on the page, with its own steps, answer,
  // SQL, rows, chart, downloads and feedback; "New conversation" starts a new thread.
  function newTurn(turns, question) {
    const timeline = el("ol", { class: "timeline" }, el("li", { class: "pending" }, "Waiting for the model…"));
    const traceLink = el("p", { class: "muted trace-link" });
    const result = el("div", { class: "result" });
    const feedback = el("div", { class: "feedback-box" });
    const resultCard = el("section", { class: "card result-card", hidden: true }, result, feedback);
    const turn = el("article", { class: "turn" }, el("h2", { class: "turn-question" }, question),
      el("div", { class: "grid" }, el("section", { class: "card steps" }, el("h3", {}, "Steps"), timeline, traceLink), resultCard));
    turns.append(turn);
    turn.scrollIntoView({ block: "start" });
    return { timeline, traceLink, result, feedback, resultCard };
  }

  async function loadSuggestions(box, ask) {
    box.replaceChildren();
    let data;
    try { data = await api("GET", "/api/suggestions"); } catch (_) { return; } // no token yet: nothing to offer
    if (!data.questions.length) return;
    box.append(el("p", { class: "muted" }, "Try one of these, or ask your own:"),
      el("div", { class: "suggestion-list" }, data.questions.map((q) =>
        el("button", { type: "button", class: "secondary suggestion", onclick: () => ask(q) }, q))));
  }

  function initAsk() {
    const form = document.getElementById("ask-form");
    const input = document.getElementById("question");
    const button = document.getElementById("ask-button");
    const turns = document.getElementById("turns");
    const suggestions = document.getElementById("suggestions");
    let thread = sessionStorage.getItem("sqlagent.thread") || newThread();
    let current = null; // the AbortController of the question being streamed
    const ask = (question) => { input.value = question; form.requestSubmit(); };
    const offer = () => { suggestions.hidden = turns.childElementCount > 0; if (!suggestions.hidden) loadSuggestions(suggestions, ask); };
    document.getElementById("new-thread").addEventListener("click", () => {
      if (current) current.abort();
      thread = newThread();
      turns.replaceChildren();
      offer();
      input.focus();
    });
    document.addEventListener("sqlagent:token", offer);

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const question = input.value.trim();
      if (!question) return;
      if (current) current.abort();
      const controller = (current = new AbortController());
      suggestions.hidden = true;
      const turn = newTurn(turns, question);
      const failed = (text) => {
        turn.timeline.querySelector(".pending")?.remove();
        turn.timeline.append(el("li", { class: "node failed" }, text));
      };
      input.value = "";
      button.disabled = true;
      const started = performance.now();
      const params = new URLSearchParams({ question, thread_id: thread });
      let ended = false;
      const onEvent = (kind, data) => {
        if (kind === "node") {
          turn.timeline.querySelector(".pending")?.remove();
          turn.timeline.append(el("li", { class: data.detail.startsWith("failed") ? "node failed" : "node" },
            el("span", { class: "name" }, data.name), el("span", { class: "time" }, fmtMs(data.duration_ms)),
            el("span", { class: "tokens" }, data.tokens ? `${data.tokens} tok` : ""), el("span", { class: "detail", title: data.detail }, short(data.detail))));
        } else if (kind === "result") {
          ended = true;
          turn.timeline.querySelector(".pending")?.remove();
          turn.traceLink.textContent = `${fmtMs(performance.now() - started)} total` + (data.trace_id ? ` · trace ${data.trace_id}` : "");
          turn.resultCard.hidden = false;
          renderResult(turn.result, data, { explain: true });
          turn.feedback.replaceChildren(!data.trace_id ? el("p", { class: "muted" }, "Tracing is off: no feedback.")
            : data.trace_stored === false ? el("p", { class: "muted" }, "The tracking store did not take this answer's trace (it was down or slow): feedback on it may not be recorded.")
            : feedbackForm(data.trace_id, data.sql));
        } else if (kind === "failure") {
          ended = true;
          failed(data.error);
        }
      };
      try {
        await stream(`/api/ask/stream?${params}`, onEvent, controller.signal);
        if (!ended) failed("The connection to the server was lost.");
      } catch (error) {
        if (error.name !== "AbortError") failed(error.message); // 401, 403, 422 (a bad question), 429
      } finally {
        if (current === controller) { current = null; button.disabled = false; }
      }
    });
    offer();
    input.focus();
  }

  // --- review page ------------------------------------------------------------------------------
  function reviewCard(item) {
    const card = el("article", { class: "card review-item", "data-trace": item.trace_id });
    const when = item.timestamp_ms ? new Date(item.timestamp_ms).toLocaleString() : "";
    const badge = el("span", { class: `badge ${item.review}` }, item.review);
    const promote = el("button", { type: "button", class: "promote" }, "Promote to golden set");
    const promoted = el("div", { class: "message", role: "status" });
    promote.addEventListener("click", async () => {
      promote.disabled = true;
      try {
        const out = await api("POST", "/api/golden", { trace_id: item.trace_id });
        promoted.className = "message ok";
        promoted.textContent = `Added to the golden set as ${out.item.id} (${out.item.split}).`;
        card.classList.add("done");
      } catch (error) {
        promoted.className = "message error";
        promoted.textContent = error.message;
        promote.disabled = error.status === 409;
      }
    });
    const resultBox = el("div", { class: "details" });
    const show = el("button", { type: "button", class: "secondary" }, "Show result");
    show.addEventListener("click", async () => {
      show.disabled = true;
      try { renderResult(resultBox, await api("GET", `/api/traces/${encodeURIComponent(item.trace_id)}`)); show.remove(); }
      catch (error) { resultBox.textContent = error.message; show.disabled = false; }
    });
    const prior = item.feedback ? el("p", { class: "muted" },
      `${item.feedback.value ? "Right" : "Wrong"} (by ${item.feedback.by})` +
      (item.feedback.rubric ? ` · ${item.feedback.rubric}${item.feedback.rubric_reason ? `: ${item.feedback.rubric_reason}` : ""}` : "") +
      (item.feedback.comment ? ` · “${item.feedback.comment}”` : "")) : null;
    card.append(
      el("div", { class: "result-head" }, el("h2", {}, item.question || "(no question)"), badge, el("span", { class: `badge ${item.status}` }, item.status)),
      el("p", { class: "muted" }, `${when} · trace ${item.trace_id}`),
      prior,
      item.sql ? el("pre", { class: "sql" }, el("code", {}, item.sql)) : el("p", { class: "muted" }, "No SQL."),
      item.expected_sql ? el("div", {}, el("h3", {}, "Corrected SQL"), el("pre", { class: "sql corrected" }, el("code", {}, item.expected_sql))) : null,
      show, resultBox,
      feedbackForm(item.trace_id, item.expected_sql || item.sql, { extra: promote }),
      promoted);
    return card;
  }

  async function initReview() {
    const queue = document.getElementById("queue");
    const load = async () => {
      queue.replaceChildren(el("p", { class: "muted loading" }, "Reading the review queue…"));
      try {
        const data = await api("GET", "/api/review");
        queue.replaceChildren(...(data.items.length ? data.items.map(reviewCard) : [el("div", { class: "card empty" },
          el("h2", {}, "Nothing awaits review"),
          el("p", {}, "Answers appear here until they get a thumbs-up, and again after a thumbs-down. Ask a question on the ",
            el("a", { href: "/" }, "Ask page"), ", then come back to correct its SQL or promote it to the golden set."))]));
      } catch (error) {
        queue.replaceChildren(el("p", { class: "message error" }, error.message));
      }
    };
    document.addEventListener("sqlagent:token", load);
    await load();
  }

  return { initAuth, initAsk, initReview, chart, renderResult };
})();
