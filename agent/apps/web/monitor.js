/* The monitor page: /api/monitor's windows as cards, refreshed every 30 s. The token is the one the
   ask page keeps (localStorage "sqlagent.token", app.js). */
"use strict";

const SqlMonitor = (() => {
  const REFRESH_MS = 30000;

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) if (value !== null && value !== undefined) node.setAttribute(key, value);
    for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
    return node;
  }

  async function fetchMonitor() {
    const token = localStorage.getItem("sqlagent.token") || "";
    const response = await fetch("/api/monitor", { headers: token ? { Authorization: `Bearer ${token}` } : {} });
    let data = null;
    try { data = await response.json(); } catch (_) { /* not JSON */ }
    if (!response.ok) throw new Error((data && data.detail) || `${response.status} ${response.statusText}`);
    return data;
  }

  const pct = (v) => (v === null || v === undefined ? "-" : `${Math.round(v * 1000) / 10}%`);
  const num = (v, unit = "") => (v === null || v === undefined ? "-" : `${Math.round(v).toLocaleString()}${unit}`);

  function windowCard(w) {
    const rows = [
      ["answers", `${w.answers} (${w.answers_per_hour}/hour), ${w.scored} scored`],
      ["errors / refusals / clarifications", `${pct(w.error_rate)} / ${pct(w.refusal_rate)} / ${pct(w.clarify_rate)}`],
      ["empty results / valid SQL", `${pct(w.empty_result_rate)} / ${pct(w.valid_sql_rate)}`],
      ["latency p50 / p95", `${num(w.latency_p50_ms, " ms")} / ${num(w.latency_p95_ms, " ms")}`],
      ["tokens per answer", num(w.tokens_per_answer)],
      ["cost per answer", w.cost_per_answer === null ? "-" : `${w.cost_per_answer.toFixed(4)} ${w.currency}`],
      ["stopped by the token budget", String(w.budget_stops)],
      ...Object.entries(w.judges).map(([name, j]) => [`judge ${name}: pass rate`, `${pct(j.pass_rate)} of ${j.judged}`]),
    ];
    const table = el("table", { class: "rows" },
      el("tbody", {}, rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v)))));
    const alerts = w.alerts.length
      ? el("div", { class: "message error", role: "alert" }, w.alerts.map((a) => el("p", {}, a)))
      : el("p", { class: "message ok" }, "No threshold crossed.");
    return el("section", { class: "card" }, el("h2", {}, `Last ${w.window}`), el("p", { class: "muted" }, `since ${w.since}`),
      alerts, el("div", { class: "table-wrap" }, table));
  }

  async function refresh() {
    const box = document.getElementById("monitor");
    try {
      const data = await fetchMonitor();
      const s = data.sampler;
      const note = el("p", { class: "muted" }, s
        ? `Sampling ${pct(s.sample_rate)} of answers for the code scorers and ${pct(s.judge_sample_rate)} for the judges; ` +
          `${s.queued} waiting, ${s.scored} scored and ${s.judged} judged since the server started.`
        : "The sampler is off (monitor.enabled, monitor.sample_rate or tracking.enabled).");
      box.replaceChildren(note, ...data.windows.map(windowCard));
    } catch (error) {
      box.replaceChildren(el("p", { class: "message error" }, error.message));
    }
  }

  function init() {
    refresh();
    setInterval(refresh, REFRESH_MS);
  }

  return { init };
})();
