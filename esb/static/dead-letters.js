// The dead-letter browser: a route's dead letters (every destination and its raw inbound input,
// or one destination), page by page, each with its error, attempts, headers and body; admins
// replay one, the selected ones or all, and purge the selected ones or all after typing the
// route's name. Replays and purges go through the admin API, which journals and audits them as
// `esb dlq` does. Bodies and headers are shown as text, never as HTML.
import {api, button, cell, element, post, routePath, say, session, showAdminParts} from "./api.js";

const PAGE_SIZE = 50;
const INBOUND = "(inbound)";  // a raw inbound payload: the input a polled source could not map

const state = {route: null, destination: "", offset: 0, page: null, purge: null, onChange: () => {}};

const $ = (selector) => document.querySelector(selector);

export function initDeadLetters(onChange) {
  state.onChange = onChange;
  $("#dlq-destination").addEventListener("change", (event) => {
    state.destination = event.target.value;
    state.offset = 0;
    load();
  });
  $("#dlq-reload").addEventListener("click", () => load());
  $("#dlq-close").addEventListener("click", () => { $("#dead-letters").hidden = true; state.route = null; });
  $("#dlq-previous").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE_SIZE); load(); });
  $("#dlq-next").addEventListener("click", () => {
    if (state.page && state.page.next_offset !== null) { state.offset = state.page.next_offset; load(); }
  });
  $("#dlq-select-page").addEventListener("change", (event) => {
    document.querySelectorAll("#dlq-table tbody input.select").forEach((box) => { box.checked = event.target.checked; });
    selectionChanged();
  });
  $("#dlq-replay-selected").addEventListener("click", () => act("replay", selected()));
  $("#dlq-replay-all").addEventListener("click", () => {
    if (confirm(`Replay every dead letter of ${where()}?`)) act("replay", null);
  });
  $("#dlq-purge-selected").addEventListener("click", () => askToPurge(selected()));
  $("#dlq-purge-all").addEventListener("click", () => askToPurge(null));
  $("#purge-typed").addEventListener("input", (event) => {
    $("#purge-confirm").disabled = event.target.value !== state.route;
  });
  $("#purge-cancel").addEventListener("click", closePurge);
  $("#purge-confirm").addEventListener("click", () => {
    if ($("#purge-typed").value !== state.route) return;
    const chosen = state.purge;
    closePurge();
    act("purge", chosen);
  });
}

export function showDeadLetters(route) {
  state.route = route.name;
  state.destination = "";
  state.offset = 0;
  $("#dlq-route").textContent = route.name;
  const choice = $("#dlq-destination");
  choice.replaceChildren(new Option("every destination and inbound", ""));
  for (const destination of route.destinations || []) choice.add(new Option(destination.name, destination.name));
  closePurge();
  $("#dead-letters").hidden = false;
  showAdminParts();
  load();
  $("#dead-letters").scrollIntoView();
}

function where() {
  return `route ${state.route}` + (state.destination ? ` destination ${state.destination}` : "");
}

async function load() {
  const query = new URLSearchParams({view: "full", limit: String(PAGE_SIZE), offset: String(state.offset)});
  if (state.destination) query.set("destination", state.destination);
  try {
    state.page = await api(`${routePath(state.route)}/dead-letters?${query}`);
  } catch (error) {
    $("#dlq-status").textContent = `Could not load the dead letters: ${error.message}`;
    return;
  }
  render(state.page);
}

function render(page) {
  const tbody = $("#dlq-table tbody");
  tbody.replaceChildren();
  $("#dlq-select-page").checked = false;
  for (const letter of page.items) renderLetter(tbody, letter);
  const shown = page.items.length;
  $("#dlq-status").textContent = shown
    ? `${page.offset + 1}–${page.offset + shown} of ${page.total ?? "?"} dead letter(s) in ${where()}`
    : `No dead letters in ${where()}.`;
  $("#dlq-previous").disabled = page.offset === 0;
  $("#dlq-next").disabled = page.next_offset === null;
  selectionChanged();
}

function renderLetter(tbody, letter) {
  const row = tbody.insertRow();
  row.className = "dead-letter";
  row.dataset.id = letter.id || "";
  row.dataset.destination = letter.destination || "";
  if (session.admin) {
    const box = element("input", null, "select");
    box.type = "checkbox";
    box.disabled = !letter.id;  // without an id it can only be purged with all the others
    box.setAttribute("aria-label", `select ${letter.id || "this dead letter"}`);
    box.addEventListener("change", selectionChanged);
    row.insertCell().appendChild(box);
  }
  cell(row, letter.id, "id");
  cell(row, letter.destination || INBOUND, "destination");
  cell(row, letter.attempts, "number attempts");
  cell(row, letter.reason, "reason");
  cell(row, letter.last_error, "error last-error");
  cell(row, letter.dead_lettered_at || letter.last_failed_at, "dead-lettered-at");
  const actions = row.insertCell();
  const details = detailsRow(tbody, letter, row.cells.length);
  actions.appendChild(button("Details", "details", () => { details.hidden = !details.hidden; }));
  if (session.admin && letter.id) {
    actions.appendChild(button("Replay", "replay-one", () => replayOne(letter)));
  }
}

// The headers, body and first error of one dead letter, under its row, hidden until asked for.
function detailsRow(tbody, letter, width) {
  const row = tbody.insertRow();
  row.className = "dead-letter-details";
  row.dataset.id = letter.id || "";
  row.hidden = true;
  const td = row.insertCell();
  td.colSpan = width;
  const facts = [
    ["Correlation id", letter.correlation_id], ["Type", letter.type], ["Content type", letter.content_type],
    ["First error", letter.first_error], ["First failed at", letter.first_failed_at],
  ];
  const list = element("dl");
  for (const [name, value] of facts) {
    list.appendChild(element("dt", name));
    list.appendChild(element("dd", value ?? "–"));
  }
  td.appendChild(list);
  td.appendChild(element("h3", "Headers"));
  td.appendChild(element("pre", JSON.stringify(letter.headers || {}, null, 2), "headers"));
  td.appendChild(element("h3", "Body"));
  const body = typeof letter.body === "string" ? pretty(letter.body) : JSON.stringify(letter.body, null, 2);
  td.appendChild(element("pre", body, "body"));
  return row;
}

function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;  // not JSON (XML, CSV, EDI, ...): as it came
  }
}

function selected() {
  return Array.from(document.querySelectorAll("#dlq-table tbody input.select:checked"))
    .map((box) => box.closest("tr").dataset)
    .map((data) => ({id: data.id, destination: data.destination || null}));
}

function selectionChanged() {
  const count = selected().length;
  $("#dlq-replay-selected").disabled = count === 0;
  $("#dlq-purge-selected").disabled = count === 0;
}

function askToPurge(chosen) {
  state.purge = chosen;
  const what = chosen === null ? `every dead letter of ${where()}` : `${chosen.length} selected dead letter(s)`;
  $("#purge-question").textContent =
    `Purge ${what} for good? They cannot be replayed afterwards. Type "${state.route}" to confirm.`;
  $("#purge-typed").value = "";
  $("#purge-confirm").disabled = true;
  $("#purge-confirmation").hidden = false;
  $("#purge-typed").focus();
}

function closePurge() {
  state.purge = null;
  $("#purge-confirmation").hidden = true;
  $("#purge-typed").value = "";
}

async function replayOne(letter) {
  const query = letter.destination ? `?destination=${encodeURIComponent(letter.destination)}` : "";
  let outcome;
  try {
    const done = await post(`${routePath(state.route)}/dead-letters/${encodeURIComponent(letter.id)}/replay${query}`, {});
    outcome = `Replayed ${done.count} dead letter(s) of ${state.route}.` + (done.reason ? ` ${done.reason}` : "");
  } catch (error) {
    outcome = `Replay failed: ${error.message}`;
  }
  await after(outcome);
}

// A replay or purge of `chosen` ({id, destination} items), or of all for null: one call per
// destination, since the same message id can be dead-lettered at two destinations of a route.
async function act(action, chosen) {
  const calls = [];
  if (chosen === null) {
    calls.push({all: true, ...(state.destination ? {destination: state.destination} : {})});
  } else {
    const byDestination = new Map();
    for (const {id, destination} of chosen) {
      byDestination.set(destination, [...(byDestination.get(destination) || []), id]);
    }
    for (const [destination, ids] of byDestination) calls.push({ids, ...(destination ? {destination} : {})});
  }
  let count = 0, outcome;
  const reasons = [];
  try {
    for (const selection of calls) {
      const done = await post(`${routePath(state.route)}/dead-letters/${action}`, selection);
      count += done.count;
      if (done.reason) reasons.push(done.reason);
    }
    const verb = action === "replay" ? "Replayed" : "Purged";
    outcome = `${verb} ${count} dead letter(s) of ${state.route}.` + (reasons.length ? ` ${reasons.join("; ")}` : "");
  } catch (error) {
    outcome = `${action === "replay" ? "Replay" : "Purge"} failed: ${error.message}`;
  }
  await after(outcome);
}

// After an action: the list as it is now, then what was done (so what is said matches what is shown).
async function after(outcome) {
  await load();
  say(outcome);
  state.onChange();
}
