// NetGPT testbed console: reads /console/api/overview and /console/api/runs/{id} (same
// origin) and renders the topology, device load, workflows, runs and one run's DAG placed
// on the nodes. No libraries: the page works offline.
"use strict";

const $ = (id) => document.getElementById(id);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) =>
  ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

function table(headers, rows) {
  if (!rows.length) return "<p><small>none</small></p>";
  return "<table><tr>" + headers.map((h) => `<th>${esc(h)}</th>`).join("") + "</tr>" +
    rows.map((r) => "<tr>" + r.map((c) => `<td>${c}</td>`).join("") + "</tr>").join("") +
    "</table>";
}

// A peer section ({available, error, items}): the rendered items, or why there are none.
function section(sec, render) {
  if (!sec.available) return `<p class="unavailable">unavailable: ${esc(sec.error)}</p>`;
  return render(sec.items);
}

// Milliseconds since the epoch, keeping the sub-millisecond digits of an RFC 3339 time.
function ms(t) {
  if (!t) return null;
  const m = /^(.*?:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(t);
  if (!m) return Date.parse(t);
  return Date.parse(m[1] + m[3]) + (m[2] ? parseFloat("0" + m[2]) * 1000 : 0);
}
const fmt = (x) => (x == null ? "–" : x.toFixed(1));
const status = (s) => `<span class="st-${esc(s)}">${esc(s)}</span>`;

function renderOverview(o) {
  $("sites").innerHTML = table(["site", "name", "tz"], o.sites.map((s) =>
    [`<code>${esc(s.id)}</code>`, esc(s.name), esc(s.timezone ?? "")]));
  $("cells").innerHTML = section(o.cells, (cells) => table(["NR cell", "name", "site"],
    cells.map((c) => [`<code>${esc(c.ncgi.nrCellId)}</code>`, esc(c.name), esc(c.site)])));
  $("ues").innerHTML = section(o.ues, (ues) => table(["SUPI", "cell", "site"],
    ues.map((u) => [`<code>${esc(u.supi)}</code>`,
      `<code>${esc(u.servingCell?.ncgi?.nrCellId ?? "")}</code>`, esc(u.servingCell?.site ?? "")])));
  $("nfs").innerHTML = section(o.nfs, (nfs) => table(["type", "name", "locality", "status", "services"],
    nfs.map((n) => [`<b>${esc(n.nfType)}</b>`, esc(n.name ?? n.nfInstanceId), esc(n.locality ?? ""),
      esc(n.status), esc(n.services.join(", "))])));
  $("nodes").innerHTML = '<div class="nodes">' + o.nodes.map((n) =>
    `<div class="node" data-node="${esc(n.nodeId)}"><h3>${esc(n.nodeId)} <small>${esc(n.source)}</small></h3>` +
    n.devices.map((d) => {
      const busy = d.load ? d.load.busyUnits : 0;
      const pct = Math.round((100 * busy) / Math.max(1, d.units));
      const q = d.load ? `queue ${d.load.queueLength}` : "no report";
      return `<div class="dev" data-device="${esc(d.deviceId)}"><span>${esc(d.deviceId)} <small>${esc(d.kind)}</small></span>` +
        `<span class="bar" title="${pct}%"><span class="${pct >= 80 ? "hot" : ""}" style="width:${pct}%"></span></span>` +
        `<span>${busy}/${d.units} · ${q}</span></div>`;
    }).join("") + "</div>").join("") + "</div>";
  $("workflows").innerHTML = table(["workflow", "source", "budget", "steps"], o.workflows.map((w) =>
    [`<b>${esc(w.name)}</b>`, esc(w.source), w.budgetMs ? `${w.budgetMs} ms` : "", esc(w.steps.join(" → "))]));
  $("runs").innerHTML = section(o.runs, (runs) => table(["run", "workflow", "status", "started", "duration"],
    runs.map((r) => [`<a href="#run=${esc(r.id)}"><code>${esc(r.id)}</code></a>`, esc(r.workflow),
      status(r.status), esc(r.startedAt),
      r.finishedAt ? `${fmt(ms(r.finishedAt) - ms(r.startedAt))} ms` : ""])));
}

// The DAG placed on the nodes: one column per node, one row per step (workflow order).
function dagSvg(view) {
  const steps = view.run.steps;
  const planned = new Map((view.plan?.steps ?? []).map((p) => [p.stepId, p]));
  const nodeOf = (s) => s.node ?? planned.get(s.stepId)?.node ?? "unplaced";
  const cols = [];
  steps.forEach((s) => { if (!cols.includes(nodeOf(s))) cols.push(nodeOf(s)); });
  const CW = 250, BW = 220, BH = 54, RH = 74, TOP = 34, LEFT = 15;
  const W = LEFT * 2 + cols.length * CW, H = TOP + steps.length * RH + 6;
  const t0 = ms(view.run.startedAt);
  const pos = new Map();
  steps.forEach((s, i) => pos.set(s.stepId, { x: LEFT + cols.indexOf(nodeOf(s)) * CW + (CW - BW) / 2, y: TOP + i * RH }));
  const fill = { succeeded: "#d8f3dc", failed: "#fde8e8", running: "#fff3cd", skipped: "#eceff1", pending: "#eceff1" };
  const stroke = { succeeded: "#2d6a4f", failed: "#a4161a", running: "#b26b00", skipped: "#90a4ae", pending: "#90a4ae" };
  let out = `<svg xmlns="http://www.w3.org/2000/svg" id="dag" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">` +
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto">' +
    '<path d="M0,0L10,5L0,10z" fill="#5c6b7a"/></marker></defs>';
  cols.forEach((c, i) => {
    const x = LEFT + i * CW;
    out += `<rect x="${x + 4}" y="4" width="${CW - 8}" height="${H - 8}" rx="6" fill="#eef2f6" stroke="#d5dbe1"/>` +
      `<text x="${x + CW / 2}" y="23" text-anchor="middle" font-weight="600" font-size="13">${esc(c)}</text>`;
  });
  for (const [a, b] of view.edges) {
    const p = pos.get(a), q = pos.get(b);
    if (!p || !q) continue;
    let d;
    if (p.x === q.x && q.y - p.y <= RH) {
      // Next row, same node: straight down.
      d = `M${p.x + BW / 2},${p.y + BH} L${q.x + BW / 2},${q.y}`;
    } else if (p.x === q.x) {
      // Skips rows on the same node: around the boxes in between, on the right.
      const bulge = p.x + BW + 14 + Math.min(20, (q.y - p.y) / RH * 3);
      const ya = p.y + BH * 0.3, yb = q.y + BH * 0.3;
      d = `M${p.x + BW},${ya} C${bulge},${ya} ${bulge},${yb} ${q.x + BW},${yb}`;
    } else {
      // To another node: from the side facing it to the top of the target.
      // Leaves lower than the same-node edges enter, so the two never meet.
      const x1 = q.x > p.x ? p.x + BW : p.x, y1 = p.y + BH * 0.75, x2 = q.x + BW / 2, y2 = q.y;
      d = `M${x1},${y1} C${x2},${y1} ${x2},${y1} ${x2},${y2}`;
    }
    out += `<path class="edge" data-from="${esc(a)}" data-to="${esc(b)}" d="${d}" ` +
      'fill="none" stroke="#5c6b7a" stroke-width="1.3" marker-end="url(#arrow)"/>';
  }
  steps.forEach((s) => {
    const { x, y } = pos.get(s.stepId);
    const st = s.status;
    const a = s.startedAt ? ms(s.startedAt) - t0 : null, b = s.finishedAt ? ms(s.finishedAt) - t0 : null;
    const p = planned.get(s.stepId);
    out += `<g class="step" data-step="${esc(s.stepId)}" data-node="${esc(s.node ?? "")}" data-device="${esc(s.device ?? "")}" data-status="${esc(st)}">` +
      `<title>${esc(s.stepId)}${p ? ` (${esc(p.operation)}; predicted ${fmt(p.startMs)}–${fmt(p.finishMs)} ms)` : ""}${s.error ? " — " + esc(s.error) : ""}</title>` +
      `<rect x="${x}" y="${y}" width="${BW}" height="${BH}" rx="5" fill="${fill[st] ?? "#fff"}" stroke="${stroke[st] ?? "#333"}" stroke-width="1.5"/>` +
      `<text x="${x + 8}" y="${y + 16}" font-weight="600" font-size="13">${esc(s.stepId)}</text>` +
      `<text x="${x + BW - 8}" y="${y + 16}" text-anchor="end" font-size="12">×${s.attempts}</text>` +
      `<text x="${x + 8}" y="${y + 32}" font-size="12">${esc(s.device ?? "–")} · ${esc(st)}</text>` +
      `<text x="${x + 8}" y="${y + 47}" font-size="12">${fmt(a)}–${fmt(b)} ms</text></g>`;
  });
  return out + "</svg>";
}

function renderRun(view) {
  const r = view.run;
  const total = r.finishedAt ? ms(r.finishedAt) - ms(r.startedAt) : null;
  const t0 = ms(r.startedAt);
  const planned = new Map((view.plan?.steps ?? []).map((p) => [p.stepId, p]));
  $("run-title").innerHTML = `<code>${esc(r.id)}</code> · ${esc(r.workflow)} · ${status(r.status)}`;
  $("run-detail").innerHTML =
    `<div class="meta"><span>started ${esc(r.startedAt)}</span><span>took ${fmt(total)} ms</span>` +
    (view.plan ? `<span>predicted ${fmt(view.plan.predictedLatencyMs)} ms (${esc(view.plan.algorithm)})</span>` : "") +
    `<a id="trace-link" href="${esc(view.traceUrl)}" target="_blank" rel="noopener">trace in Jaeger${view.traceId ? " (" + esc(view.traceId) + ")" : ""}</a></div>` +
    (r.error ? `<p class="unavailable">${esc(r.error)}</p>` : "") +
    dagSvg(view) +
    table(["step", "node", "device", "status", "attempts", "start ms", "end ms", "predicted ms"], r.steps.map((s) => [
      `<b>${esc(s.stepId)}</b>`, esc(s.node ?? ""), esc(s.device ?? ""), status(s.status), s.attempts,
      fmt(s.startedAt ? ms(s.startedAt) - t0 : null), fmt(s.finishedAt ? ms(s.finishedAt) - t0 : null),
      planned.has(s.stepId) ? `${fmt(planned.get(s.stepId).startMs)}–${fmt(planned.get(s.stepId).finishMs)}` : ""]));
  document.body.dataset.run = r.id;
}

async function getJson(path) {
  const resp = await fetch(path, { headers: { accept: "application/json" } });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body.detail ?? `${resp.status} ${resp.statusText}`);
  return body;
}

async function loadOverview() {
  try {
    renderOverview(await getJson("api/overview"));
    $("status").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.overview = "ok";
  } catch (e) {
    $("status").textContent = "overview unavailable: " + e.message;
  }
}

async function loadRun() {
  const id = new URLSearchParams(location.hash.slice(1)).get("run");
  if (!id) return;
  try {
    renderRun(await getJson("api/runs/" + encodeURIComponent(id)));
    // The chosen run goes first on the page, above the overview.
    document.querySelector("main").prepend($("run"));
  } catch (e) {
    $("run-title").textContent = id;
    $("run-detail").innerHTML = `<p class="unavailable">${esc(e.message)}</p>`;
  }
}

window.addEventListener("hashchange", loadRun);
loadOverview();
loadRun();
setInterval(loadOverview, 10000);
