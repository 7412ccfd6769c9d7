// aibridged web page: sessions, one session's threads, usage charts. Plain JavaScript, no build step and
// nothing loaded from elsewhere. Every value from the API is put on the page as text, never as HTML.
"use strict";

const TOKEN_KEY = "aibridged-token";
const API = "/api/v2/aibridge";
const COLORS = ["#2f5bd3", "#e8743b", "#19a979", "#ed4a7b", "#945ecf", "#13a4b4", "#bf399e", "#6c8893", "#ee6868", "#f4b400"];

const main = document.getElementById("main");

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svgEl(tag, attrs, ...children) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function show(...nodes) {
  main.replaceChildren(...nodes.flat());
}

function progress(text) {
  return el("div", { class: "progress", id: "progress" }, text || "Loading…");
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path) {
  const res = await fetch(API + path, { headers: { Authorization: "Bearer " + token() } });
  let body = null;
  try {
    body = await res.json();
  } catch (_) {
    body = null;
  }
  if (!res.ok) throw new ApiError(res.status, (body && body.message) || res.statusText);
  return body;
}

function fmtTime(t) {
  if (!t) return "—";
  const d = new Date(t);
  return d.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function fmtNum(n) {
  return (n || 0).toLocaleString();
}

function totalTokens(u) {
  return (u.input_tokens || 0) + (u.output_tokens || 0) + (u.cache_read_input_tokens || 0) + (u.cache_write_input_tokens || 0);
}

function fmtDuration(ms) {
  if (ms === null || ms === undefined) return "in progress";
  return ms < 1000 ? ms + " ms" : (ms / 1000).toFixed(1) + " s";
}

function failure(err) {
  if (err instanceof ApiError && err.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    location.hash = "#/login";
    return el("div");
  }
  const what = err instanceof ApiError && err.status === 403 ? "You may not see this." : "Could not load: " + err.message;
  return el("div", { class: "card error", id: "error" }, what);
}

function params() {
  const q = location.hash.split("?")[1] || "";
  return new URLSearchParams(q);
}

// --- sign in ---------------------------------------------------------------------------------------

function loginPage(message) {
  const input = el("input", { id: "token-input", type: "password", placeholder: "aibr_…", autocomplete: "off" });
  const status = el("div", { id: "login-status", class: message ? "error" : "muted" }, message || "");
  const form = el("form", { class: "card login", id: "login-form" },
    el("h1", {}, "Sign in"),
    el("p", { class: "muted" }, "Use a gateway token (aibridged tokens create). It stays in this tab only."),
    input, el("button", { class: "primary", id: "sign-in", type: "submit" }, "Sign in"), status);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    status.className = "muted";
    status.textContent = "Checking…";
    try {
      await api("/sessions?limit=1");
      location.hash = "#/sessions";
    } catch (err) {
      sessionStorage.removeItem(TOKEN_KEY);
      status.className = "error";
      status.textContent = err.status === 401 ? "That token is not valid." : "Sign-in failed: " + err.message;
    }
  });
  show(form);
  input.focus();
}

// --- sessions list ---------------------------------------------------------------------------------

async function sessionsPage() {
  const p = params();
  const since = p.get("since") || "24h";
  const field = (name, label, value, placeholder) =>
    el("label", {}, label, el("input", { name, id: "filter-" + name, value: value || "", placeholder: placeholder || "" }));
  const form = el("form", { class: "filters", id: "filters" },
    field("user", "User", p.get("user")), field("model", "Model", p.get("model")),
    field("client", "Client", p.get("client"), "claude-code"), field("since", "Since", since, "24h, 7d or a time"),
    el("button", { type: "submit", class: "primary" }, "Apply"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const name of ["user", "model", "client", "since"]) {
      const v = form.elements[name].value.trim();
      if (v) q.set(name, v);
    }
    location.hash = "#/sessions?" + q.toString();
  });
  const body = el("div", {}, progress("Loading sessions…"));
  show(el("h1", {}, "Sessions"), form, body);

  const terms = ["started_after:" + since];
  if (p.get("user")) terms.push("initiator:" + p.get("user"));
  if (p.get("model")) terms.push("model:" + p.get("model"));
  if (p.get("client")) terms.push("client:" + p.get("client"));
  const after = p.get("after");
  let page;
  try {
    page = await api("/sessions?limit=50&q=" + encodeURIComponent(terms.join(" ")) + (after ? "&after_session_id=" + encodeURIComponent(after) : ""));
  } catch (err) {
    body.replaceChildren(failure(err));
    return;
  }
  if (page.sessions.length === 0) {
    body.replaceChildren(el("div", { class: "empty", id: "empty" }, "No sessions since " + since + ". Sessions appear here once an agent sends requests through the gateway."));
    return;
  }
  const rows = page.sessions.map((s) => {
    const open = () => { location.hash = "#/session/" + encodeURIComponent(s.id); };
    return el("tr", { class: "session-row", "data-session-id": s.id, onclick: open },
      el("td", {}, fmtTime(s.started_at)),
      el("td", {}, s.initiator_id || "—"),
      el("td", {}, s.client || "—"),
      el("td", {}, s.models.join(", ")),
      el("td", { class: "num" }, s.threads),
      el("td", { class: "num" }, fmtNum(totalTokens(s.token_usage_summary))),
      el("td", { class: "prompt", title: s.last_prompt || "" },
        el("a", { class: "session-link", href: "#/session/" + encodeURIComponent(s.id) }, s.last_prompt || "(no prompt)")));
  });
  const table = el("table", { id: "sessions-table" },
    el("thead", {}, el("tr", {}, el("th", {}, "Started"), el("th", {}, "User"), el("th", {}, "Client"), el("th", {}, "Models"),
      el("th", { class: "num" }, "Threads"), el("th", { class: "num" }, "Tokens"), el("th", {}, "Last prompt"))),
    el("tbody", {}, rows));
  const more = [];
  if (page.next_after_session_id) {
    const q = params();
    q.set("after", page.next_after_session_id);
    more.push(el("p", {}, el("a", { href: "#/sessions?" + q.toString(), id: "next-page" }, "Older sessions →")));
  }
  body.replaceChildren(el("p", { class: "muted", id: "session-count" }, page.count + " session" + (page.count === 1 ? "" : "s")), table, ...more);
}

// --- one session -----------------------------------------------------------------------------------

function stepView(a, index) {
  const failed = a.status !== "completed" && a.status !== "in_progress";
  const u = a.token_usage;
  return el("li", { class: "step" + (failed ? " failed" : ""), "data-interception-id": a.interception_id },
    el("div", { class: "step-head" },
      el("b", {}, "Step " + (index + 1)), el("span", {}, a.model || ""), el("span", {}, fmtTime(a.started_at)),
      el("span", {}, fmtDuration(a.duration_ms)),
      el("span", { class: "tokens" }, fmtNum(u.input_tokens) + " in · " + fmtNum(u.output_tokens) + " out · " + fmtNum(u.cache_read_input_tokens) + " cached"),
      a.correlating_tool_call_id ? el("span", {}, "answers " + a.correlating_tool_call_id) : null,
      failed ? el("span", { class: "error" }, a.status + (a.upstream_status ? " (" + a.upstream_status + ")" : "")) : null),
    a.thinking.map((t) => el("div", { class: "thinking" }, t.content)),
    a.tool_calls.map((t) => el("div", { class: "tool-call", "data-tool-call-id": t.id },
      el("b", {}, "Tool call: " + t.name), el("span", { class: "muted" }, "  " + t.id), el("pre", {}, t.input))));
}

async function sessionPage(id) {
  show(el("p", {}, el("a", { href: "#/sessions" }, "← Sessions")), progress("Loading session…"));
  let s;
  try {
    s = await api("/sessions/" + encodeURIComponent(id));
  } catch (err) {
    show(el("p", {}, el("a", { href: "#/sessions" }, "← Sessions")), failure(err));
    return;
  }
  const u = s.token_usage_summary;
  const threads = s.threads.map((t, i) => el("section", { class: "card thread", "data-thread-id": t.id },
    el("h2", {}, "Thread " + (i + 1) + " · " + t.agentic_actions.length + " step" + (t.agentic_actions.length === 1 ? "" : "s")),
    el("div", { class: "prompt-text" }, t.prompt || "(no prompt recorded)"),
    el("div", { class: "meta" }, el("span", {}, "Model ", el("b", {}, t.model || "—")), el("span", {}, "Status ", el("b", {}, t.status)),
      el("span", {}, "Tokens ", el("b", {}, fmtNum(totalTokens(t.token_usage))))),
    t.errors.length ? el("div", { class: "error" }, t.errors.length + " failed step(s)") : null,
    el("ol", { class: "timeline" }, t.agentic_actions.map(stepView))));
  show(el("p", {}, el("a", { href: "#/sessions" }, "← Sessions")),
    el("h1", { id: "session-title" }, "Session " + s.id),
    el("div", { class: "meta" }, el("span", {}, "User ", el("b", {}, s.initiator_id || "—")), el("span", {}, "Client ", el("b", {}, s.client || "—")),
      el("span", {}, "Started ", el("b", {}, fmtTime(s.started_at))), el("span", {}, "Threads ", el("b", { id: "thread-count" }, s.threads.length)),
      el("span", {}, "Tokens ", el("b", {}, fmtNum(totalTokens(u))))),
    threads);
}

// --- usage -----------------------------------------------------------------------------------------

// A stacked bar chart: one bar per day, one colour per series. `rows` are {day, series, value}.
function stackedBars(id, title, rows) {
  const days = [...new Set(rows.map((r) => r.day))].sort();
  const series = [...new Set(rows.map((r) => r.series))].sort();
  const totals = days.map((d) => rows.filter((r) => r.day === d).reduce((a, r) => a + r.value, 0));
  const max = Math.max(1, ...totals);
  const W = 560, H = 260, left = 56, bottom = 28, top = 10;
  const slot = (W - left - 10) / Math.max(1, days.length);
  const bw = Math.min(48, slot * 0.7);
  const svg = svgEl("svg", { class: "chart", id, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  for (let i = 0; i <= 4; i++) {
    const y = top + (H - top - bottom) * (1 - i / 4);
    svg.append(svgEl("line", { x1: left, x2: W - 5, y1: y, y2: y, stroke: "#e3e7ee" }));
    svg.append(svgEl("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, fmtNum(Math.round((max * i) / 4))));
  }
  days.forEach((d, i) => {
    let y = H - bottom;
    const x = left + slot * i + (slot - bw) / 2;
    series.forEach((s, si) => {
      const v = rows.filter((r) => r.day === d && r.series === s).reduce((a, r) => a + r.value, 0);
      if (v <= 0) return;
      const h = ((H - top - bottom) * v) / max;
      y -= h;
      const rect = svgEl("rect", { class: "bar", x, y, width: bw, height: Math.max(1, h), fill: COLORS[si % COLORS.length], "data-value": v });
      rect.append(svgEl("title", {}, `${d} · ${s}: ${fmtNum(v)} tokens`));
      svg.append(rect);
    });
    svg.append(svgEl("text", { x: x + bw / 2, y: H - 10, "text-anchor": "middle" }, d.slice(5)));
  });
  const legend = el("div", { class: "legend" }, series.map((s, si) => el("span", { style: "--c:" + COLORS[si % COLORS.length] }, s)));
  return el("div", { class: "card" }, el("h2", {}, title), svg, legend);
}

async function usagePage() {
  const since = params().get("since") || "7d";
  const body = el("div", {}, progress("Loading usage…"));
  const form = el("form", { class: "filters" }, el("label", {}, "Since", el("input", { name: "since", value: since })),
    el("button", { type: "submit", class: "primary" }, "Apply"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = "#/usage?since=" + encodeURIComponent(form.elements.since.value.trim() || "7d");
  });
  show(el("h1", {}, "Usage"), form, body);
  let byModel, byUser, users;
  try {
    [byModel, byUser, users] = await Promise.all([
      api("/usage?group_by=day,model&since=" + encodeURIComponent(since)),
      api("/usage?group_by=day,user&since=" + encodeURIComponent(since)),
      api("/usage?group_by=user&since=" + encodeURIComponent(since)),
    ]);
  } catch (err) {
    body.replaceChildren(failure(err));
    return;
  }
  if (byModel.groups.length === 0) {
    body.replaceChildren(el("div", { class: "empty", id: "empty" }, "No requests since " + since + "."));
    return;
  }
  const t = byModel.total;
  const top = users.groups.slice().sort((a, b) => totalTokens(b) - totalTokens(a)).slice(0, 10);
  const cost = (g) => "$" + g.approximate_cost_usd.toFixed(2) + (g.unpriced_tokens ? " + " + fmtNum(g.unpriced_tokens) + " unpriced tokens" : "");
  body.replaceChildren(
    el("div", { class: "meta card" }, el("span", {}, "Requests ", el("b", {}, fmtNum(t.requests))),
      el("span", {}, "Tokens ", el("b", {}, fmtNum(totalTokens(t)))), el("span", {}, "Approximate cost ", el("b", { id: "total-cost" }, cost(t))),
      byModel.unpriced_models.length ? el("span", {}, "Unpriced models ", el("b", {}, byModel.unpriced_models.join(", "))) : null),
    el("div", { class: "charts" },
      stackedBars("chart-by-model", "Tokens per day by model", byModel.groups.map((g) => ({ day: g.day, series: g.model || "?", value: totalTokens(g) }))),
      stackedBars("chart-by-user", "Tokens per day by user", byUser.groups.map((g) => ({ day: g.day, series: g.user || "?", value: totalTokens(g) })))),
    el("h2", {}, "Top users"),
    el("table", { id: "top-users" },
      el("thead", {}, el("tr", {}, el("th", {}, "User"), el("th", { class: "num" }, "Requests"), el("th", { class: "num" }, "Input"),
        el("th", { class: "num" }, "Output"), el("th", { class: "num" }, "Cache read"), el("th", {}, "Approximate cost"))),
      el("tbody", {}, top.map((g) => el("tr", {}, el("td", {}, g.user), el("td", { class: "num" }, fmtNum(g.requests)),
        el("td", { class: "num" }, fmtNum(g.input_tokens)), el("td", { class: "num" }, fmtNum(g.output_tokens)),
        el("td", { class: "num" }, fmtNum(g.cache_read_input_tokens)), el("td", {}, cost(g)))))));
}

// --- routing ---------------------------------------------------------------------------------------

function route() {
  const hash = location.hash || "#/sessions";
  const path = hash.slice(1).split("?")[0];
  const signedIn = !!token();
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("sign-out").hidden = !signedIn;
  document.getElementById("who").textContent = "";
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", path.startsWith(a.getAttribute("href").slice(1)));
  if (!signedIn || path === "/login") return loginPage();
  if (path.startsWith("/session/")) return sessionPage(decodeURIComponent(path.slice("/session/".length)));
  if (path === "/usage") return usagePage();
  return sessionsPage();
}

document.getElementById("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.hash = "#/login";
});
window.addEventListener("hashchange", route);
route();
