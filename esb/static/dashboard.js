// The dashboard's entry module (plain ES modules, no build step; files of their own because the
// Content-Security-Policy allows no inline script): the key, the routes table and the charts;
// the dead-letter browser, trace search and business panels are modules of their own.
import {api, button, cell, forget, post, remember, routePath, say, session, showAdminParts} from "./api.js";
import {refreshBusiness} from "./business.js";
import {initDeadLetters, showDeadLetters} from "./dead-letters.js";
import {initTrace} from "./trace.js";

const REFRESH_SECONDS = 5;
let previous = {};  // route -> {delivered, at}: throughput is the delivered count's rate between refreshes
let timer = null;

function render(body) {
  const tbody = document.querySelector("#routes tbody");
  tbody.replaceChildren();
  const now = Date.now() / 1000;
  for (const route of body.routes) {
    const counters = route.counters || {};
    const delivered = counters.delivered || 0;
    const before = previous[route.name];
    const rate = before && now > before.at ? (delivered - before.delivered) / (now - before.at) : null;
    previous[route.name] = {delivered, at: now};
    const row = tbody.insertRow();
    row.dataset.route = route.name;
    cell(row, route.name);
    cell(row, route.state, "state-" + route.state);
    cell(row, rate === null ? null : rate.toFixed(2), "number");
    cell(row, delivered, "number");
    cell(row, (counters.rejected || 0) + (counters.dead_lettered || 0), "number errors");
    cell(row, counters.retried || 0, "number retries");
    cell(row, route.dead_letter_depth, "number dlq-depth");
    const last = route.last_error;
    cell(row, last ? `${last.at} ${last.destination || ""} ${last.step}: ${last.detail || ""}` : null, "error");
    const actions = row.insertCell();
    actions.appendChild(button("Dead letters", "browse", () => showDeadLetters(route)));
    if (session.admin) {
      const replay = button("Replay DLQ", "replay", () => replayAll(route.name));
      replay.disabled = !route.dead_letter_depth;
      actions.appendChild(replay);
    }
    for (const destination of route.destinations || []) renderDestination(tbody, route, destination);
  }
  document.querySelector("#routes").hidden = false;
  showAdminParts();
  document.querySelector("#status").textContent =
    `Broker ${body.broker_connected ? "connected" : "NOT connected"} · updated ${new Date().toLocaleTimeString()}` +
    ` · refreshes every ${REFRESH_SECONDS} s`;
}

function seconds(value) {
  if (value === null || value === undefined) return null;
  return value < 1 ? `${Math.round(value * 1000)} ms` : `${value.toFixed(1)} s`;
}

// One row per destination under its route: depths of its work, retry and dead-letter queues, and
// the p50/p99 end-to-end latency since the bus started (from the /metrics histogram).
function renderDestination(tbody, route, destination) {
  const row = tbody.insertRow();
  row.className = "destination";
  row.dataset.route = route.name;
  row.dataset.destination = destination.name;
  cell(row, `↳ ${destination.name} (${destination.adapter})`, "destination-name");
  cell(row, destination.paused ? "paused" : "");
  cell(row, `queue ${destination.queue_depth ?? "–"}`, "number queue-depth");
  cell(row, `retry ${destination.retry_depth ?? "–"}`, "number retry-depth");
  cell(row, `DLQ ${destination.dead_letter_depth ?? "–"}`, "number destination-dlq");
  const latency = destination.latency || {};
  cell(row, `p50 ${seconds(latency.p50) ?? "–"}`, "number p50");
  cell(row, `p99 ${seconds(latency.p99) ?? "–"}`, "number p99");
  cell(row, "");
  cell(row, "");
}

async function replayAll(route) {
  if (!confirm(`Replay every dead letter of route ${route}?`)) return;
  try {
    const done = await post(`${routePath(route)}/dead-letters/replay`, {all: true});
    say(`Replayed ${done.count} message(s) of ${route}.` + (done.reason ? ` ${done.reason}` : ""));
  } catch (error) {
    say(`Replay failed: ${error.message}`);
  }
  refresh();
}

// The last hour as two bar charts (deliveries, errors per minute), drawn as SVG elements: no
// library, no inline style or script (the Content-Security-Policy allows neither).
const SVG = "http://www.w3.org/2000/svg";

function chart(id, counts, className) {
  const svg = document.getElementById(id);
  const width = 600, height = 80, most = Math.max(1, ...counts);
  svg.setAttribute("viewBox", `0 0 ${width} ${height + 14}`);
  svg.replaceChildren();
  const step = width / Math.max(1, counts.length);
  counts.forEach((count, index) => {
    const bar = document.createElementNS(SVG, "rect");
    const tall = count ? Math.max(1, (count / most) * height) : 0;
    bar.setAttribute("x", String(index * step + 0.5));
    bar.setAttribute("y", String(height - tall));
    bar.setAttribute("width", String(Math.max(1, step - 1)));
    bar.setAttribute("height", String(tall));
    bar.setAttribute("class", className);
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${counts.length - index} min ago: ${count}`;
    bar.appendChild(title);
    svg.appendChild(bar);
  });
  const label = document.createElementNS(SVG, "text");
  label.setAttribute("x", "0");
  label.setAttribute("y", String(height + 12));
  label.setAttribute("class", "axis");
  label.textContent = `last hour · max ${most}/min · total ${counts.reduce((a, b) => a + b, 0)}`;
  svg.appendChild(label);
  svg.dataset.total = String(counts.reduce((a, b) => a + b, 0));
}

function renderActivity(body) {
  chart("delivered-chart", body.delivered, "bar-delivered");
  chart("errors-chart", body.errors, "bar-errors");
  document.querySelector("#activity").hidden = false;
}

async function refresh() {
  try {
    renderActivity(await api("/api/activity"));
  } catch (error) {
    document.querySelector("#status").textContent = `Could not load the activity: ${error.message}`;
  }
  try {
    render(await api("/api/routes"));
  } catch (error) {
    document.querySelector("#status").textContent = `Could not load the routes: ${error.message}`;
  }
  await refreshBusiness();
}

async function begin() {
  try {
    session.admin = (await api("/api/whoami")).admin;
  } catch (error) {
    forget();
    document.querySelector("#status").textContent = `Key refused: ${error.message}`;
    return;
  }
  remember(session.key);
  document.querySelector("#forget").hidden = false;
  document.querySelector("#trace").hidden = false;
  await refresh();
  clearInterval(timer);
  timer = setInterval(refresh, REFRESH_SECONDS * 1000);
}

document.querySelector("#login").addEventListener("submit", (event) => {
  event.preventDefault();
  session.key = document.querySelector("#key").value.trim();
  document.querySelector("#key").value = "";
  begin();
});
document.querySelector("#forget").addEventListener("click", () => {
  forget();
  location.reload();
});
initDeadLetters(refresh);
initTrace();
if (session.key) begin();
