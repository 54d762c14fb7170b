// The business panels: open alerts and inventory accuracy (the newest reconciliation of each
// warehouse), refreshed with the rest of the page.
//
// Open alerts come from GET /api/reports/open-alerts, which answers {"items": [alert, ...]}:
// each item an `alert` payload (schemas/alert.v1.json: rule, severity, subject, text,
// occurred_at, warehouse, ...) that is fired and not yet resolved, newest first. A bus that
// serves no such endpoint (404) shows the panel as "not available". Text is never HTML.
import {ApiError, api, cell, element} from "./api.js";

const $ = (selector) => document.querySelector(selector);

export async function refreshBusiness() {
  $("#business").hidden = false;
  await Promise.all([refreshAlerts(), refreshAccuracy()]);
}

async function refreshAlerts() {
  const status = $("#alerts-status");
  const list = $("#alerts-list");
  let body;
  try {
    body = await api("/api/reports/open-alerts");
  } catch (error) {
    list.replaceChildren();
    const missing = error instanceof ApiError && error.status === 404;
    status.textContent = missing ? "Open alerts: not available on this bus." : `Could not load the alerts: ${error.message}`;
    status.dataset.state = missing ? "not-available" : "error";
    return;
  }
  const items = body.items || [];
  list.replaceChildren(...items.map(alertItem));
  status.textContent = items.length ? `${items.length} open alert(s)` : "No open alerts.";
  status.dataset.state = "available";
}

function alertItem(alert) {
  const item = element("li", null, `alert severity-${alert.severity || "warning"}`);
  item.appendChild(element("span", (alert.severity || "warning").toUpperCase(), "severity"));
  item.appendChild(element("span", alert.subject || alert.rule, "subject"));
  item.appendChild(element("span", [alert.rule, alert.occurred_at].filter(Boolean).join(" · "), "muted when"));
  if (alert.text) item.title = alert.text;
  return item;
}

async function refreshAccuracy() {
  const status = $("#accuracy-status");
  const table = $("#accuracy-table");
  let rows;
  try {
    rows = (await api("/api/reports/inventory-accuracy?limit=1000")).items || [];
  } catch (error) {
    const missing = error instanceof ApiError && error.status === 404;
    status.textContent = missing ? "Inventory accuracy: not available on this bus."
      : `Could not load the inventory accuracy: ${error.message}`;
    table.hidden = true;
    return;
  }
  const newest = new Map();  // rows come newest cut-off first: the first of each warehouse
  for (const row of rows) if (!newest.has(row.warehouse)) newest.set(row.warehouse, row);
  const tbody = $("#accuracy-table tbody");
  tbody.replaceChildren();
  for (const row of newest.values()) {
    const line = tbody.insertRow();
    line.dataset.warehouse = row.warehouse;
    cell(line, row.warehouse);
    cell(line, `${(row.accuracy * 100).toFixed(1)} %`, "number accuracy-value");
    cell(line, row.as_of);
    cell(line, row.compared_lines, "number");
    cell(line, row.differing_lines, "number");
  }
  table.hidden = newest.size === 0;
  status.textContent = newest.size ? "The newest reconciliation of each warehouse" : "No reconciliation yet.";
}
