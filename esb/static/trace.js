// Trace search: every journaled hop of a message (by its id), of a correlation id, or of a
// business document's number (every message made from it, and refused input that named it),
// oldest first, from GET /api/trace. Everything shown is text, never HTML.
import {ApiError, api, cell} from "./api.js";

const NAMES = {message_id: "message id", correlation_id: "correlation id", document_number: "document number"};

const $ = (selector) => document.querySelector(selector);

export function initTrace() {
  $("#trace-form").addEventListener("submit", (event) => {
    event.preventDefault();
    search($("#trace-kind").value, $("#trace-value").value.trim());
  });
}

async function search(kind, value) {
  const status = $("#trace-status");
  const table = $("#trace-hops");
  table.hidden = true;
  $("#trace-hops tbody").replaceChildren();
  if (!value) {
    status.textContent = `Give a ${NAMES[kind]} to search for.`;
    return;
  }
  status.textContent = "Searching…";
  let body;
  try {
    body = await api(`/api/trace?${new URLSearchParams({[kind]: value})}`);
  } catch (error) {
    status.textContent = error instanceof ApiError && error.status === 404
      ? `No trace for ${NAMES[kind]} "${value}": ${error.message}.`
      : `Could not search: ${error.message}`;
    status.dataset.outcome = "miss";
    return;
  }
  const tbody = $("#trace-hops tbody");
  for (const hop of body.hops) {
    const row = tbody.insertRow();
    row.className = "hop";
    row.dataset.step = hop.step;
    cell(row, hop.at, "at");
    cell(row, hop.step, "step");
    cell(row, hop.route, "route");
    cell(row, hop.destination, "destination");
    cell(row, hop.message_id, "id");
    cell(row, hop.correlation_id, "correlation");
    cell(row, hop.detail, "detail");
  }
  const messages = new Set(body.hops.map((hop) => hop.message_id)).size;
  status.textContent = `${body.hops.length} hop(s) of ${messages} message(s) for ${NAMES[kind]} "${value}".`;
  status.dataset.outcome = "hit";
  table.hidden = false;
}
