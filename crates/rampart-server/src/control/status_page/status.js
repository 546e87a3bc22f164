// rampart's status page: follows /status/events (one snapshot a second) and draws it.
// No framework, no external asset: the page's CSP allows only this file and status.css.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const token = (location.hash.match(/token=([^&]+)/) || [])[1] || sessionStorage.getItem("rampart-token");
  if (token) sessionStorage.setItem("rampart-token", token);
  const headers = token ? { Authorization: "Bearer " + decodeURIComponent(token) } : {};
  let last = null;
  const history = [];
  const WINDOW = 120;
  // The page counts its own CSP violations (there should be none): tests read it.
  let violations = 0;
  document.addEventListener("securitypolicyviolation", () => {
    violations += 1;
    document.body.dataset.cspViolations = String(violations);
  });

  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
  }
  function fill(id, rows) {
    const body = $(id);
    body.replaceChildren();
    for (const cells of rows) {
      const tr = document.createElement("tr");
      for (const c of cells) cell(tr, c[0], c[1]);
      body.appendChild(tr);
    }
  }
  function draw() {
    const max = Math.max(1, ...history);
    const step = 600 / (WINDOW - 1);
    const start = WINDOW - history.length;
    $("line").setAttribute("points", history.map((v, i) => ((start + i) * step).toFixed(1) + "," + (118 - (v / max) * 112).toFixed(1)).join(" "));
  }
  function render(s) {
    const dt = last ? (s.ts - last.ts) / 1000 : 0;
    const before = {};
    if (last) for (const r of last.requests) before[r.route] = r.count;
    let total = 0;
    fill("routes", s.requests.map((r) => {
      const rate = dt > 0 ? Math.max(0, (r.count - (before[r.route] || 0)) / dt) : 0;
      total += rate;
      return [[r.route], [rate.toFixed(1)], [String(r.count)]];
    }));
    if (dt > 0) {
      history.push(total);
      if (history.length > WINDOW) history.shift();
      draw();
      $("rate").textContent = total.toFixed(1);
    }
    fill("refusals", s.refusals.map((r) => [[r.policy], [r.reason], [String(r.count)]]));
    const servers = [];
    for (const p of (s.upstreams.upstreams || [])) {
      for (const sv of (p.servers || [])) {
        servers.push([[p.name], [sv.server], [sv.up ? "up" : "down", sv.up ? "up" : "down"], [String(sv.inflight ?? "")], [String(sv.errors ?? "")]]);
      }
    }
    fill("upstreams", servers);
    fill("certificates", (s.certificates.certificates || []).map((c) => [[(c.names || []).join(", ")], [c.source || ""], [String(c.days_left), c.days_left < 7 ? "critical" : c.days_left < 30 ? "warning" : ""]]));
    const h = s.health || {};
    $("state").textContent = h.status || "unknown";
    $("state").className = "pill " + (h.status || "");
    fill("health", Object.entries(h).filter(([k]) => k !== "status").map(([k, v]) => [[k], [typeof v === "object" ? JSON.stringify(v) : String(v)]]));
    const list = $("recent");
    list.replaceChildren();
    for (const e of (s.recent || []).slice().reverse()) {
      const li = document.createElement("li");
      li.textContent = [e.ts, e.event, e.severity, e.ip, e.route, e.reason].filter(Boolean).join("  ");
      if (e.severity) li.className = e.severity;
      list.appendChild(li);
    }
    $("version").textContent = "v" + s.version;
    $("updated").textContent = "updated " + new Date(s.ts).toLocaleTimeString();
    last = s;
  }
  async function follow() {
    for (;;) {
      try {
        const r = await fetch("/status/events", { headers, cache: "no-store" });
        if (r.status === 401) {
          $("state").textContent = "token needed: open this page as /status#token=…";
          $("state").className = "pill unhealthy";
          return;
        }
        const reader = r.body.getReader();
        const text = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += text.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const chunk = buf.slice(0, i);
            buf = buf.slice(i + 2);
            for (const line of chunk.split("\n")) {
              if (line.startsWith("data: ")) render(JSON.parse(line.slice(6)));
            }
          }
        }
      } catch (e) {
        $("state").textContent = "disconnected";
        $("state").className = "pill unhealthy";
      }
      await new Promise((ok) => setTimeout(ok, 2000));
    }
  }
  follow();
})();
