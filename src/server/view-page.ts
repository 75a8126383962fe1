import { createHash } from "node:crypto";
import { VM_STATES } from "./view-state.js";

// The web view's one page: inline style and script (no build step, no external assets), and the headers that
// let only them run.

const STYLE = `
:root { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #1d2330; background: #f5f6f8; }
body { margin: 0; }
header { display: flex; align-items: baseline; gap: 16px; padding: 10px 20px; background: #1d2330; color: #fff; }
header h1 { font-size: 18px; margin: 0; }
header .muted { color: #b8bfcc; }
header button { margin-left: auto; }
main { padding: 12px 20px 40px; max-width: 1400px; }
h2 { font-size: 16px; margin: 18px 0 8px; }
h3 { font-size: 14px; margin: 0; }
h4 { font-size: 12px; margin: 10px 0 4px; text-transform: uppercase; color: #5b6475; }
[hidden] { display: none !important; }
.muted { color: #5b6475; }
.error { color: #a11; background: #fde8e8; border: 1px solid #f3b4b4; padding: 6px 10px; border-radius: 4px; }
.error:empty { display: none; }
#login form { max-width: 560px; margin: 40px auto; background: #fff; padding: 20px; border-radius: 6px; box-shadow: 0 1px 3px #0002; }
#login input { width: 100%; box-sizing: border-box; padding: 8px; font: 13px monospace; margin: 8px 0; }
#filter { margin-top: 10px; width: 320px; padding: 5px 8px; font: inherit; }
button { font: inherit; padding: 4px 12px; border-radius: 4px; border: 1px solid #8891a3; background: #fff; cursor: pointer; }
.pools { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 12px; }
.pool { background: #fff; border-radius: 6px; padding: 12px; box-shadow: 0 1px 3px #0002; }
.chips { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 8px; }
.chip { display: inline-block; padding: 3px 8px; border-radius: 12px; border: 1px solid; font-size: 12px; white-space: nowrap; }
.chip.s-free { background: #e6f4ea; border-color: #1e7f34; }
.chip.s-warming { background: #f0f9f2; border-color: #1e7f34; border-style: dashed; }
.chip.s-warm { background: #c9ecd4; border-color: #1e7f34; }
.chip.s-booting { background: #fff4d6; border-color: #a76b00; }
.chip.s-leased { background: #e3efff; border-color: #1f5fbf; }
.chip.s-building { background: #efe6ff; border-color: #6b3fc2; }
.chip.s-scratching { background: #ffe8d9; border-color: #b34700; }
.chip.s-running-unleased { background: #ffe0e0; border-color: #c01818; border-style: dashed; }
.legend { display: flex; flex-wrap: wrap; gap: 6px; margin-bottom: 8px; }
.queue { margin: 0; padding-left: 0; list-style: none; }
.queue li { padding: 2px 0; }
.link { border: none; background: none; padding: 0; color: #1f5fbf; text-decoration: underline; }
table { border-collapse: collapse; width: 100%; background: #fff; box-shadow: 0 1px 3px #0002; border-radius: 6px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #e4e7ec; vertical-align: top; }
th { font-size: 12px; color: #5b6475; }
tbody tr { cursor: pointer; }
tbody tr:hover { background: #f0f4fb; }
tbody tr.selected { background: #e3efff; }
td.msg { max-width: 420px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; color: #5b6475; }
.badge { display: inline-block; padding: 1px 7px; border-radius: 10px; font-size: 12px; font-weight: 600; }
.badge.b-True { background: #d7f0de; color: #145c26; }
.badge.b-False { background: #fbdcdc; color: #8a1212; }
.badge.b-Unknown { background: #e3efff; color: #1f4f99; }
#log-panel h2 { display: flex; gap: 10px; align-items: baseline; }
#log { background: #11151c; color: #dfe5ee; padding: 10px; border-radius: 6px; max-height: 480px; overflow: auto; font: 12px/1.35 "DejaVu Sans Mono", monospace; white-space: pre-wrap; word-break: break-all; min-height: 40px; }
`;


const SCRIPT = `
"use strict";
(() => {
  const TOKEN_KEY = "vmbuild.token";
  const POLL_MS = 1000;
  const STATES = ${JSON.stringify(VM_STATES)};
  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  let timer = 0;
  let selected = "";
  let logAbort = null;
  let last = null;

  // Builds elements with text children only: data never passes through an HTML parser.
  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
    for (const c of children || []) if (c !== undefined && c !== null) e.append(c);
    return e;
  }

  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  }

  function time(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
  }

  function showLogin(message) {
    $("app").hidden = true;
    $("sign-out").hidden = true;
    $("user").textContent = "";
    $("updated").textContent = "";
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("token").focus();
  }

  function showApp() {
    $("login").hidden = true;
    $("app").hidden = false;
    $("sign-out").hidden = false;
  }

  function signOut(message) {
    token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    clearTimeout(timer);
    closeLog();
    showLogin(message);
  }

  function showError(message) {
    $("error").textContent = message;
    $("error").hidden = !message;
  }

  async function poll() {
    clearTimeout(timer);
    const mine = token;
    try {
      const res = await fetch("api/state", { headers: { authorization: "Bearer " + mine }, cache: "no-store" });
      if (mine !== token) return;
      if (res.status === 401) return signOut((await res.text()).trim() || "The token was not accepted.");
      if (!res.ok) showError("The controller answered " + res.status + ": " + (await res.text()).trim());
      else {
        render(await res.json());
        showError("");
      }
    } catch (err) {
      if (mine === token) showError("Cannot reach the controller (" + err.message + "); retrying.");
    }
    if (mine === token && token) timer = setTimeout(poll, POLL_MS);
  }

  function render(state) {
    last = state;
    $("user").textContent = state.user ? "signed in as " + state.user : "";
    $("updated").textContent = "updated " + time(state.generatedAt);
    $("updated").setAttribute("data-generated-at", state.generatedAt);
    // The filter narrows what is shown, by "namespace/name" of pools and runs (a pool also by its runs).
    const q = $("filter").value.trim().toLowerCase();
    const match = (namespace, name) => !q || (namespace + "/" + name).toLowerCase().includes(q);
    renderPools(state.pools.filter((p) => match(p.namespace, p.name)
      || p.vms.some((v) => v.holder && match(v.holder.namespace, v.holder.name))
      || p.queue.some((e) => match(e.namespace, e.name))), state.pools.length);
    renderRuns(state.runs.filter((r) => match(r.namespace, r.name)), state.runs.length);
  }

  function runButton(namespace, name) {
    const key = namespace + "/" + name;
    return el("button", { class: "link", type: "button", "data-log": key, title: "show the build log" }, [key]);
  }

  function renderPools(pools, total) {
    $("pools-count").textContent = pools.length === total ? "(" + total + ")" : "(" + pools.length + " of " + total + ")";
    const cards = pools.map((p) => {
      const key = p.namespace + "/" + p.name;
      const counts = {};
      for (const v of p.vms) counts[v.state] = (counts[v.state] || 0) + 1;
      const summary = STATES.filter((s) => counts[s]).map((s) => counts[s] + " " + s).join(" · ") || "no VMs";
      const queue = p.queue.length
        ? el("ol", { class: "queue" }, p.queue.map((q) =>
            el("li", { "data-testid": "queue-entry", "data-run": q.namespace + "/" + q.name, "data-position": q.position }, [
              el("b", {}, ["#" + q.position]), " ", runButton(q.namespace, q.name), " ",
              el("span", { class: "muted" }, ["waiting " + duration(q.waitingSeconds)]),
            ])))
        : el("p", { class: "muted" }, ["nobody waiting"]);
      return el("section", { class: "pool", "data-testid": "pool", "data-pool": key }, [
        el("h3", {}, [key]),
        el("span", { class: "muted" }, [summary]),
        el("div", { class: "chips" }, p.vms.map(vmChip)),
        el("h4", {}, ["queue"]),
        queue,
      ]);
    });
    if (cards.length === 0) cards.push(el("p", { class: "muted", "data-testid": "no-pools" }, ["No pools to show."]));
    $("pools").replaceChildren(...cards);
  }

  function vmChip(v) {
    const h = v.holder;
    const holder = h ? h.namespace + "/" + h.name + " (" + (h.phase || "run gone") + ", attempt " + h.attempt + ")" : "";
    return el("span", {
      class: "chip s-" + v.state,
      "data-testid": "vm",
      "data-vm": v.name,
      "data-state": v.state,
      "data-holder": h ? h.namespace + "/" + h.name : undefined,
      title: holder ? "leased to " + holder : v.state,
    }, [el("b", {}, [v.name]), " " + v.state, holder ? " · " + h.name : ""]);
  }

  function renderRuns(runs, total) {
    $("runs-count").textContent = runs.length === total ? "(" + total + ")" : "(" + runs.length + " of " + total + ")";
    $("no-runs").hidden = runs.length > 0;
    $("runs-body").replaceChildren(...runs.map((r) => {
      const key = r.namespace + "/" + r.name;
      const label = r.reason || (r.status === "Unknown" ? "Pending" : r.status);
      const took = r.startTime && r.completionTime
        ? " (" + duration((Date.parse(r.completionTime) - Date.parse(r.startTime)) / 1000) + ")" : "";
      return el("tr", {
        "data-testid": "run", "data-run": key, "data-log": key, "data-phase": r.phase || "", "data-status": r.status,
        class: key === selected ? "selected" : undefined, tabindex: "0", title: "show the build log",
      }, [
        el("td", {}, [el("span", { class: "muted" }, [r.namespace + "/"]), el("b", {}, [r.name])]),
        el("td", {}, [el("span", { class: "badge b-" + r.status, "data-testid": "run-status" }, [label])]),
        el("td", { "data-testid": "run-phase" }, [r.phase || "–"]),
        el("td", {}, [r.vm || "–"]),
        el("td", {}, [r.attempt === undefined ? "–" : String(r.attempt)]),
        el("td", {}, [time(r.startTime)]),
        el("td", {}, [time(r.completionTime) + took]),
        el("td", { class: "msg", title: r.message || "" }, [r.message || ""]),
      ]);
    }));
  }

  function closeLog() {
    if (logAbort) logAbort.abort();
    logAbort = null;
    selected = "";
    $("log-panel").hidden = true;
    $("log").textContent = "";
    for (const row of document.querySelectorAll("tr.selected")) row.classList.remove("selected");
  }

  function append(pre, text) {
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(text);
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  }

  // The log streams into the <pre> as it arrives; a live build's response stays open until its log closes.
  async function openLog(key) {
    closeLog();
    selected = key;
    for (const row of document.querySelectorAll("tr[data-run]")) row.classList.toggle("selected", row.getAttribute("data-run") === key);
    const abort = new AbortController();
    logAbort = abort;
    const [namespace, name] = key.split("/");
    const pre = $("log");
    $("log-title").textContent = "Build log of " + key;
    $("log-state").textContent = "loading…";
    $("log-panel").hidden = false;
    try {
      const url = "logs/" + encodeURIComponent(namespace) + "/" + encodeURIComponent(name);
      const res = await fetch(url, { headers: { authorization: "Bearer " + token }, signal: abort.signal, cache: "no-store" });
      if (!res.ok) {
        $("log-state").textContent = "HTTP " + res.status;
        pre.textContent = (await res.text()).trim();
        return;
      }
      const attempt = res.headers.get("x-vmbuild-attempt");
      const live = res.headers.get("x-vmbuild-live") === "true";
      $("log-state").textContent = "attempt " + attempt + (live ? " · live" : "");
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        append(pre, decoder.decode(value, { stream: true }));
      }
      append(pre, decoder.decode());
      if (logAbort === abort) $("log-state").textContent = "attempt " + attempt + " · complete";
    } catch (err) {
      if (err.name !== "AbortError") $("log-state").textContent = "error: " + err.message;
    }
  }

  document.addEventListener("click", (ev) => {
    const target = ev.target instanceof Element ? ev.target.closest("[data-log]") : null;
    if (target) void openLog(target.getAttribute("data-log"));
  });
  document.addEventListener("keydown", (ev) => {
    const target = ev.target instanceof Element ? ev.target.closest("tr[data-log]") : null;
    if (target && ev.key === "Enter") void openLog(target.getAttribute("data-log"));
  });
  $("log-close").addEventListener("click", (ev) => {
    ev.stopPropagation();
    closeLog();
  });
  $("sign-out").addEventListener("click", () => signOut(""));
  $("filter").addEventListener("input", () => {
    if (last) render(last);
  });
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = $("token").value.trim();
    if (!value) return;
    token = value;
    sessionStorage.setItem(TOKEN_KEY, value);
    $("token").value = "";
    showApp();
    void poll();
  });

  if (token) {
    showApp();
    void poll();
  } else showLogin("");
})();
`;

export const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>vmbuild</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<header>
  <h1>vmbuild</h1>
  <span id="user" class="muted" data-testid="user"></span>
  <span id="updated" class="muted" data-testid="updated"></span>
  <button id="sign-out" type="button" data-testid="sign-out" hidden>Sign out</button>
</header>
<main>
<section id="login" data-testid="login" hidden>
  <form id="login-form">
    <h2>Sign in</h2>
    <p>Paste a Kubernetes bearer token (e.g. from <code>kubectl create token NAME</code>). You see the runs and pools of
    the namespaces where it may <code>get customruns</code>. The token stays in this tab (sessionStorage) and is sent
    only as a header.</p>
    <input id="token" data-testid="token-input" type="password" autocomplete="off" spellcheck="false" aria-label="bearer token" placeholder="bearer token">
    <button type="submit" data-testid="token-submit">Sign in</button>
    <p id="login-error" data-testid="login-error" class="error" role="alert"></p>
  </form>
</section>
<div id="app" hidden>
  <p id="error" data-testid="error" class="error" role="alert" hidden></p>
  <input id="filter" data-testid="filter" type="search" autocomplete="off" spellcheck="false" aria-label="filter" placeholder="filter by namespace/name">
  <section>
    <h2>Pools <span id="pools-count" class="muted"></span></h2>
    <div class="legend">${VM_STATES.map((s) => `<span class="chip s-${s}">${s}</span>`).join("")}</div>
    <div id="pools" class="pools" data-testid="pools"></div>
  </section>
  <section>
    <h2>Recent runs <span id="runs-count" class="muted"></span></h2>
    <table data-testid="runs">
      <thead><tr><th>run</th><th>status</th><th>phase</th><th>VM</th><th>attempt</th><th>started</th><th>finished</th><th>message</th></tr></thead>
      <tbody id="runs-body"></tbody>
    </table>
    <p id="no-runs" class="muted" data-testid="no-runs" hidden>No runs to show.</p>
  </section>
  <section id="log-panel" data-testid="log-panel" hidden>
    <h2><span id="log-title" data-testid="log-title"></span><span id="log-state" class="muted" data-testid="log-state"></span>
    <button id="log-close" type="button">Close</button></h2>
    <pre id="log" data-testid="log"></pre>
  </section>
</div>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;

const sha256 = (text: string) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`;

// Only the page's own inline script and style run; it talks to its own origin only.
export const PAGE_HEADERS = {
  "content-security-policy": [
    "default-src 'none'",
    `script-src ${sha256(SCRIPT)}`,
    `style-src ${sha256(STYLE)}`,
    "connect-src 'self'",
    "img-src data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; "),
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
};
