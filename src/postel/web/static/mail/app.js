// Postel webmail: folders, the message list, the reading pane, compose, search and live
// updates, all through the documented /api/v1/mail endpoints. Plain ES modules, no build.
"use strict";

import * as api from "./api.js";
import { Composer } from "./compose.js";

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
};

const ROLE_NAMES = { inbox: "Inbox", drafts: "Drafts", sent: "Sent", junk: "Junk",
                     trash: "Trash", archive: "Archive" };
const PAGE = 50;

const state = {
  folders: [],
  folder: null,           // the open folder (object from /folders)
  search: null,           // {q, scope} while showing search results
  sort: "date", order: "desc",
  messages: [],           // loaded list rows
  next: null,             // keyset cursor of the next page
  loading: false,
  generation: 0,          // bumped by every new list; stale answers are dropped
  selected: new Set(),    // ids
  cursor: -1,             // index of the focused row
  open: null,             // message JSON in the reader
  identities: null,
  prefs: null,
  notify: localStorage.getItem("postel-notify") === "1",
};

const root = $("mail");
const composer = new Composer({ api, toast, onSent: () => refresh(), state });

// -- helpers ----------------------------------------------------------------------------

function toast(text, action) {
  const box = $("toast");
  box.replaceChildren(el("span", {}, text));
  if (action) box.append(el("button", { type: "button", class: "link", onclick: () => {
    box.hidden = true; action.run();
  } }, action.label));
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, action ? action.ms || 6000 : 3500);
}

function formatDate(iso) {
  const date = new Date(iso);
  const now = new Date();
  if (date.toDateString() === now.toDateString()) {
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  if (date.getFullYear() === now.getFullYear()) {
    return date.toLocaleDateString([], { month: "short", day: "numeric" });
  }
  return date.toLocaleDateString();
}

function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function folderLabel(folder) {
  if (folder.role) return ROLE_NAMES[folder.role];
  return folder.name.split("/").pop();
}

function failed(error) {
  toast(error instanceof api.ApiError ? error.message : "Something went wrong; try again.");
}

function setView(view) { root.dataset.view = view; }

// -- folders ----------------------------------------------------------------------------

async function loadFolders() {
  const data = await api.get("/folders");
  state.folders = data.folders;
  if (state.folder) state.folder = state.folders.find((f) => f.id === state.folder.id) || null;
  renderFolders();
  updateTitle(data.unseen_inbox);
}

function renderFolders() {
  const tree = el("ul", { class: "tree" });
  const byName = new Map(state.folders.map((f) => [f.name, f]));
  for (const folder of state.folders) {
    const depth = folder.role ? 0 : folder.name.split("/").length - 1;
    const parentMissing = depth > 0 && !byName.has(folder.name.split("/").slice(0, -1).join("/"));
    const item = el("li", { style: undefined },
      el("a", {
        href: `#folder/${folder.id}`,
        class: "folder" + (state.folder && state.folder.id === folder.id && !state.search ? " current" : ""),
        dataset: { folder: folder.id, role: folder.role || "" },
        "aria-current": state.folder && state.folder.id === folder.id && !state.search ? "page" : null,
        onclick: (event) => { event.preventDefault(); openFolder(folder); },
        ondragover: (event) => { event.preventDefault(); event.currentTarget.classList.add("drop"); },
        ondragleave: (event) => event.currentTarget.classList.remove("drop"),
        ondrop: (event) => dropOnFolder(event, folder),
      },
      el("span", { class: "name" }, (parentMissing ? folder.name : folderLabel(folder))),
      folder.unseen ? el("span", { class: "count", "aria-label": `${folder.unseen} unread` }, String(folder.unseen)) : null),
      !folder.role ? el("button", { type: "button", class: "icon small folder-menu",
        "aria-label": `Folder options for ${folder.name}`,
        onclick: () => folderMenu(folder) }, "⋯") : null);
    item.style.setProperty("--depth", String(parentMissing ? 0 : depth));
    tree.append(item);
  }
  $("folder-tree").replaceChildren(tree);
  const move = $("move-to");
  move.replaceChildren(el("option", { value: "" }, "Move to…"),
    ...state.folders.map((f) => el("option", { value: String(f.id) }, f.role ? ROLE_NAMES[f.role] : f.name)));
  const inJunk = state.folder && state.folder.role === "junk";
  $("junk-button").dataset.action = inJunk ? "notjunk" : "junk";
  $("junk-button").textContent = inJunk ? "Not junk" : "Junk";
}

async function folderMenu(folder) {
  const choice = window.prompt(`Rename or move "${folder.name}" (full path, "/" between levels), or type DELETE to delete it:`, folder.name);
  if (choice === null || choice === folder.name) return;
  try {
    if (choice === "DELETE") {
      if (!window.confirm(`Delete the folder ${folder.name} and every message in it?`)) return;
      await api.send("DELETE", `/folders/${folder.id}`);
      if (state.folder && state.folder.id === folder.id) state.folder = null;
    } else {
      await api.send("PATCH", `/folders/${folder.id}`, { name: choice });
    }
    await loadFolders();
    if (!state.folder) openFolder(state.folders[0]);
  } catch (error) { failed(error); }
}

async function newFolder() {
  const name = window.prompt("Name of the new folder (use / for a subfolder):");
  if (!name) return;
  try {
    await api.send("POST", "/folders", { name });
    await loadFolders();
  } catch (error) { failed(error); }
}

function updateTitle(unseen) {
  const label = state.folder ? folderLabel(state.folder) : "Mail";
  document.title = (unseen ? `(${unseen}) ` : "") + `${label} · Postel`;
  drawBadge(unseen);
}

function drawBadge(count) {
  // The favicon with the unread count, drawn on a canvas (a data: URL, allowed by the CSP).
  const link = $("favicon");
  if (!count) { link.href = "/static/mail/icon.svg"; return; }
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 32;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#1f5fbf"; ctx.fillRect(2, 7, 28, 20);
  ctx.fillStyle = "#d42d2d"; ctx.beginPath(); ctx.arc(22, 10, 10, 0, 2 * Math.PI); ctx.fill();
  ctx.fillStyle = "#fff"; ctx.font = "bold 13px sans-serif"; ctx.textAlign = "center";
  ctx.textBaseline = "middle"; ctx.fillText(count > 99 ? "99" : String(count), 22, 11);
  link.href = canvas.toDataURL("image/png");
}

// -- the message list -------------------------------------------------------------------

async function openFolder(folder) {
  if (!folder) return;
  state.folder = folder;
  state.search = null;
  $("search").value = "";
  $("list-title").textContent = folderLabel(folder);
  window.location.hash = `folder/${folder.id}`;
  renderFolders();
  updateTitle(state.folders.find((f) => f.role === "inbox")?.unseen || 0);
  setView("list");
  await loadList(true);
}

async function fetchPage(after, limit) {
  const params = { limit: String(limit) };
  if (after) params.after = after;
  if (state.search) {
    params.q = state.search.q;
    if (state.search.scope === "folder" && state.folder) params.folder = String(state.folder.id);
    return api.get("/search", params);
  }
  params.sort = state.sort;
  params.order = state.order;
  return api.get(`/folders/${state.folder.id}/messages`, params);
}

async function loadList(reset) {
  // A new list (folder, search, sort) wins over any page still loading for the old one.
  if (!reset && (state.loading || !state.next)) return;
  if (!state.folder && !state.search) return;
  const generation = reset ? ++state.generation : state.generation;
  state.loading = true;
  try {
    const started = performance.now();
    const data = await fetchPage(reset ? null : state.next, PAGE);
    if (generation !== state.generation) return;
    if (reset) { state.messages = []; state.selected.clear(); state.cursor = -1; }
    state.messages.push(...data.messages);
    state.next = data.next;
    renderList();
    performance.measure("postel-list", { start: started, end: performance.now() });
  } catch (error) { failed(error); } finally {
    if (generation === state.generation) state.loading = false;
  }
}

// Re-read what is shown (after a live change): the same number of rows from the top.
async function refreshList() {
  if (!state.folder && !state.search) return;
  const count = Math.min(200, Math.max(PAGE, state.messages.length));
  const generation = state.generation;
  try {
    const data = await fetchPage(null, count);
    if (generation !== state.generation) return;
    state.messages = data.messages;
    state.next = data.next;
    const ids = new Set(state.messages.map((m) => m.id));
    for (const id of [...state.selected]) if (!ids.has(id)) state.selected.delete(id);
    renderList();
  } catch (error) { /* the next change or reconnect tries again */ }
}

function renderList() {
  const list = $("message-list");
  const rows = state.messages.map((message, index) => {
    const selected = state.selected.has(message.id);
    const row = el("li", {
      class: "message" + (message.seen ? "" : " unread") + (selected ? " selected" : "")
        + (index === state.cursor ? " cursor" : "")
        + (state.open && state.open.id === message.id ? " open" : ""),
      dataset: { id: message.id }, draggable: "true", "aria-selected": selected ? "true" : "false",
      ondragstart: (event) => {
        const ids = state.selected.has(message.id) ? [...state.selected] : [message.id];
        event.dataTransfer.setData("application/x-postel-messages", JSON.stringify(ids));
        event.dataTransfer.effectAllowed = "move";
      },
    },
    el("input", { type: "checkbox", class: "pick", "aria-label": `Select ${message.subject || "(no subject)"}`,
      checked: selected ? "checked" : null,
      onclick: (event) => { event.stopPropagation(); toggleSelected(message.id, event.target.checked); } }),
    el("button", { type: "button", class: "star" + (message.flagged ? " on" : ""),
      "aria-label": message.flagged ? "Flagged; remove flag" : "Flag",
      "aria-pressed": message.flagged ? "true" : "false",
      onclick: (event) => { event.stopPropagation(); act(message.flagged ? "unflag" : "flag", [message.id]); } },
      message.flagged ? "★" : "☆"),
    el("a", { href: `#message/${message.id}`, class: "summary",
      onclick: (event) => { event.preventDefault(); state.cursor = index; openMessage(message.id); } },
      el("span", { class: "from" }, (state.folder && ["sent", "drafts"].includes(state.folder.role) && !state.search
        ? (message.to ? "To: " + message.to : "") : message.from) || "(unknown)"),
      el("span", { class: "date" }, formatDate(message.date)),
      el("span", { class: "subject" }, message.attachment ? el("span", { class: "clip", "aria-label": "Has attachments" }, "📎 ") : null,
        message.subject || "(no subject)"),
      el("span", { class: "preview" }, message.preview)));
    return row;
  });
  list.replaceChildren(...rows);
  $("list-end").textContent = state.messages.length === 0
    ? (state.search ? "No messages match." : "This folder is empty.")
    : (state.next ? "" : `${state.messages.length} message${state.messages.length === 1 ? "" : "s"}`);
  $("select-all").checked = state.messages.length > 0 && state.selected.size === state.messages.length;
}

function toggleSelected(id, on) {
  if (on) state.selected.add(id); else state.selected.delete(id);
  renderList();
}

function targets() {
  if (state.selected.size) return [...state.selected];
  if (state.open) return [state.open.id];
  const focused = state.messages[state.cursor];
  return focused ? [focused.id] : [];
}

async function act(action, ids, folder) {
  ids = ids || targets();
  if (!ids.length) { toast("Select messages first."); return; }
  const body = { action, ids };
  if (folder) body.folder = folder;
  try {
    const result = await api.send("POST", "/messages/actions", body);
    if (["move", "delete", "archive", "junk", "notjunk"].includes(action)) {
      if (state.open && ids.includes(state.open.id)) closeReader();
      state.selected.clear();
      const gone = new Set(ids);
      state.messages = state.messages.filter((m) => !gone.has(m.id));
      renderList();
      const verb = { move: "Moved", delete: "Deleted", archive: "Archived", junk: "Marked as junk", notjunk: "Moved to Inbox" }[action];
      toast(`${verb} ${result.changed} message${result.changed === 1 ? "" : "s"}.`);
    } else {
      const key = action === "read" || action === "unread" ? "seen" : "flagged";
      const value = action === "read" || action === "flag";
      for (const message of state.messages) if (ids.includes(message.id)) message[key] = value;
      if (state.open && ids.includes(state.open.id)) state.open.flags[key] = value;
      renderList();
      if (state.open) renderReaderFlags();
    }
    loadFolders();
  } catch (error) { failed(error); }
}

function dropOnFolder(event, folder) {
  event.preventDefault();
  event.currentTarget.classList.remove("drop");
  const raw = event.dataTransfer.getData("application/x-postel-messages");
  if (!raw) return;
  act("move", JSON.parse(raw), folder.id);
}

// -- the reading pane -------------------------------------------------------------------

function closeReader() {
  state.open = null;
  $("reader").replaceChildren(el("p", { class: "empty" }, "Select a message to read it."));
  setView("list");
}

function people(list) {
  return list.map((p) => p.name ? `${p.name} <${p.email}>` : p.email).join(", ");
}

async function openMessage(id, options = {}) {
  const started = performance.now();
  let message;
  try {
    const params = {};
    if (options.part) params.part = options.part;
    if (options.remote) params.remote = "1";
    message = await api.get(`/messages/${id}`, params);
  } catch (error) { failed(error); return; }
  state.open = message;
  if (message.flags.draft && !options.part && state.folder && state.folder.role === "drafts") {
    composer.open({ mode: "draft", id });
    return;
  }
  renderReader(message);
  performance.measure("postel-open", { start: started, end: performance.now() });
  setView("reader");
  window.location.hash = `message/${id}`;
  if (!message.flags.seen && message.mark_read && !options.part) {
    message.flags.seen = true;
    act("read", [id]);
  } else {
    renderList();
  }
}

function renderReaderFlags() {
  const star = $("reader-flag");
  if (star) star.textContent = state.open.flags.flagged ? "Unflag" : "Flag";
  const seen = $("reader-unread");
  if (seen) seen.textContent = state.open.flags.seen ? "Mark unread" : "Mark read";
}

function renderReader(message) {
  const reader = $("reader");
  const buttons = el("div", { class: "reader-actions", role: "toolbar", "aria-label": "Message actions" },
    el("button", { type: "button", class: "phone-only", onclick: closeReader }, "← Back"),
    el("button", { type: "button", onclick: () => composer.open({ mode: "reply", id: message.id }) }, "Reply"),
    el("button", { type: "button", onclick: () => composer.open({ mode: "all", id: message.id }) }, "Reply all"),
    el("button", { type: "button", onclick: () => composer.open({ mode: "forward", id: message.id }) }, "Forward"),
    el("button", { type: "button", onclick: () => composer.open({ mode: "forward_attachment", id: message.id }) }, "Forward as attachment"),
    el("button", { type: "button", onclick: () => act("archive", [message.id]) }, "Archive"),
    el("button", { type: "button", onclick: () => act("delete", [message.id]) }, "Delete"),
    el("button", { type: "button", id: "reader-flag", onclick: () => act(message.flags.flagged ? "unflag" : "flag", [message.id]) }, "Flag"),
    el("button", { type: "button", id: "reader-unread", onclick: () => act(message.flags.seen ? "unread" : "read", [message.id]) }, "Mark unread"),
    el("button", { type: "button", onclick: () => showThread(message.id) }, "Conversation"),
    el("a", { class: "button", href: message.raw_url, target: "_blank", rel: "noopener" }, "Source"));
  // ENVELOPE fills Reply-To from From when the header is absent (RFC 9051 7.5.2).
  const replyTo = people(message.reply_to) !== people(message.from) ? message.reply_to : [];
  const header = el("dl", { class: "headers" },
    el("dt", {}, "From"), el("dd", { class: "from" }, people(message.from)),
    replyTo.length ? el("dt", {}, "Reply-To") : null,
    replyTo.length ? el("dd", {}, people(replyTo)) : null,
    el("dt", {}, "To"), el("dd", {}, people(message.to) || "—"),
    message.cc.length ? el("dt", {}, "Cc") : null,
    message.cc.length ? el("dd", {}, people(message.cc)) : null,
    el("dt", {}, "Date"), el("dd", {}, message.date ? new Date(message.date).toLocaleString() : new Date(message.internal_date).toLocaleString()));
  const parts = [buttons, el("h2", { class: "reader-subject" }, message.subject || "(no subject)"), header];
  if (message.part) parts.unshift(el("p", { class: "small" }, "An attached message. ",
    el("a", { href: "#", onclick: (e) => { e.preventDefault(); openMessage(message.id); } }, "Back to the message")));
  if (message.remote_blocked && !message.remote_allowed) {
    parts.push(el("p", { class: "remote-banner", role: "note" },
      `Remote images were blocked to protect your privacy. `,
      el("button", { type: "button", class: "link", id: "show-remote",
        onclick: () => openMessage(message.id, { remote: true, part: message.part }) }, "Show images"),
      " · ",
      el("button", { type: "button", class: "link",
        onclick: async () => {
          try {
            await api.send("POST", "/trusted-senders", { sender: message.from[0]?.email || "" });
            openMessage(message.id, { part: message.part });
          } catch (error) { failed(error); }
        } }, "Always show from this sender")));
  }
  if (message.html_url) {
    parts.push(el("iframe", { class: "body-frame", title: "Message body", src: message.html_url,
      sandbox: "allow-popups allow-popups-to-escape-sandbox", referrerpolicy: "no-referrer" }));
  } else {
    parts.push(plainBody(message.text));
  }
  if (message.text_cut) parts.push(el("p", { class: "small" }, "The text was cut here; see the source for all of it."));
  if (message.attachments.length) {
    parts.push(el("h3", { class: "small" }, "Attachments"), el("ul", { class: "attachments" },
      ...message.attachments.map((a) => el("li", {},
        el("a", { href: a.url, download: a.filename, class: "attachment" }, a.filename),
        el("span", { class: "small" }, ` ${formatSize(a.size)} `),
        a.preview ? el("a", { href: `${a.url}?inline=1`, target: "_blank", rel: "noopener", class: "small" }, "Preview") : null,
        a.message ? el("button", { type: "button", class: "link small",
          onclick: () => openMessage(message.id, { part: a.part }) }, "View") : null,
        a.type.startsWith("image/") && a.preview && a.size < 5e6
          ? el("img", { src: `${a.url}?inline=1`, alt: a.filename, class: "thumb", loading: "lazy" }) : null))));
  }
  reader.replaceChildren(...parts);
  renderReaderFlags();
  reader.focus({ preventScroll: true });
}

function plainBody(text) {
  // Text as text (never HTML), with web links made clickable.
  const body = el("div", { class: "plain" });
  const pattern = /\bhttps?:\/\/[^\s<>"]+/g;
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    body.append(text.slice(last, match.index));
    body.append(el("a", { href: match[0], target: "_blank", rel: "noopener noreferrer" }, match[0]));
    last = match.index + match[0].length;
  }
  body.append(text.slice(last));
  return body;
}

async function showThread(id) {
  try {
    const data = await api.get(`/messages/${id}/thread`);
    const folderName = (mid) => {
      const f = state.folders.find((x) => x.id === mid);
      return f ? folderLabel(f) : "";
    };
    const list = el("ol", { class: "thread" }, ...data.messages.map((m) => el("li", {},
      el("a", { href: "#", onclick: (e) => { e.preventDefault(); openMessage(m.id); } },
        `${m.from || "?"} — ${m.subject || "(no subject)"}`),
      el("span", { class: "small" }, ` ${formatDate(m.date)} · ${folderName(m.mailbox_id)}`))));
    $("reader").append(el("section", { class: "thread-box" }, el("h3", {}, `Conversation (${data.messages.length})`), list));
  } catch (error) { failed(error); }
}

// -- search -----------------------------------------------------------------------------

async function runSearch(event) {
  if (event) event.preventDefault();
  const q = $("search").value.trim();
  if (!q) { if (state.search) openFolder(state.folder); return; }
  state.search = { q, scope: $("search-scope").value };
  $("list-title").textContent = `Search: ${q}`;
  renderFolders();
  const started = performance.now();
  await loadList(true);
  performance.measure("postel-search", { start: started, end: performance.now() });
}

// -- live updates -----------------------------------------------------------------------

function connectEvents() {
  const source = new EventSource(api.BASE + "/events");
  let first = true;
  source.addEventListener("hello", () => {
    if (!first) { loadFolders(); refreshList(); }
    first = false;
  });
  source.addEventListener("change", async (event) => {
    const change = JSON.parse(event.data);
    const before = state.folders.find((f) => f.role === "inbox")?.unseen || 0;
    await loadFolders();
    const inbox = state.folders.find((f) => f.role === "inbox");
    if (inbox && inbox.unseen > before && state.notify && document.hidden && "Notification" in window
        && Notification.permission === "granted") {
      new Notification("New mail", { body: `${inbox.unseen} unread in your Inbox`, icon: "/static/mail/icon.svg" });
    }
    if (state.search || (state.folder && change.folders.includes(state.folder.id))) await refreshList();
  });
  source.addEventListener("signed-out", () => window.location.assign("/logon?next=/mail"));
}

// -- settings ---------------------------------------------------------------------------

async function openSettings() {
  try {
    const [prefs, ids] = await Promise.all([api.get("/prefs"), api.get("/identities")]);
    $("settings-signature").value = prefs.signature;
    $("settings-mark-read").checked = prefs.mark_read_on_open;
    $("settings-notify").checked = state.notify;
    $("settings-identities").textContent = ids.addresses.join(", ");
    $("settings").showModal();
  } catch (error) { failed(error); }
}

async function saveSettings(event) {
  event.preventDefault();
  try {
    await api.send("PUT", "/prefs", { signature: $("settings-signature").value,
                                      mark_read_on_open: $("settings-mark-read").checked });
    state.notify = $("settings-notify").checked;
    localStorage.setItem("postel-notify", state.notify ? "1" : "0");
    if (state.notify && "Notification" in window) Notification.requestPermission();
    $("settings").close();
    toast("Settings saved.");
  } catch (error) { failed(error); }
}

// -- keyboard ---------------------------------------------------------------------------

function moveCursor(step) {
  if (!state.messages.length) return;
  state.cursor = Math.max(0, Math.min(state.messages.length - 1, state.cursor + step));
  const message = state.messages[state.cursor];
  openMessage(message.id);
  const row = document.querySelector(`#message-list li[data-id="${message.id}"]`);
  if (row) row.scrollIntoView({ block: "nearest" });
  if (state.cursor >= state.messages.length - 5) loadList(false);
}

function onKey(event) {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target.closest("input, textarea, select, [contenteditable=true], dialog[open]")) {
    if (event.key === "Escape" && target.id === "search") { target.blur(); }
    return;
  }
  const open = state.open;
  const actions = {
    j: () => moveCursor(1), k: () => moveCursor(-1),
    r: () => open && composer.open({ mode: "reply", id: open.id }),
    a: () => open && composer.open({ mode: "all", id: open.id }),
    f: () => open && composer.open({ mode: "forward", id: open.id }),
    c: () => composer.open({ mode: "new" }),
    e: () => act("archive"),
    "#": () => act("delete"),
    s: () => open && act(open.flags.flagged ? "unflag" : "flag", [open.id]),
    u: () => closeReader(),
    "/": () => $("search").focus(),
    Escape: () => closeReader(),
  };
  const run = actions[event.key];
  if (run) { event.preventDefault(); run(); }
}

// -- start ------------------------------------------------------------------------------

async function start() {
  for (const id of ["compose-button", "compose-phone"]) {
    $(id).addEventListener("click", () => composer.open({ mode: "new" }));
  }
  $("new-folder").addEventListener("click", newFolder);
  $("open-settings").addEventListener("click", openSettings);
  $("settings-form").addEventListener("submit", saveSettings);
  $("settings-cancel").addEventListener("click", () => $("settings").close());
  $("search-form").addEventListener("submit", runSearch);
  $("search").addEventListener("search", () => { if (!$("search").value) runSearch(); });
  $("show-folders").addEventListener("click", () => setView(root.dataset.view === "folders" ? "list" : "folders"));
  $("select-all").addEventListener("change", (event) => {
    state.selected = new Set(event.target.checked ? state.messages.map((m) => m.id) : []);
    renderList();
  });
  for (const button of document.querySelectorAll("#list-toolbar [data-action]")) {
    button.addEventListener("click", () => act(button.dataset.action));
  }
  $("move-to").addEventListener("change", (event) => {
    if (event.target.value) act("move", null, Number(event.target.value));
    event.target.value = "";
  });
  $("sort").addEventListener("change", (event) => {
    [state.sort, state.order] = event.target.value.split(":");
    loadList(true);
  });
  const end = $("list-end");
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadList(false);
  }, { root: $("list-pane"), rootMargin: "400px" }).observe(end);
  document.addEventListener("keydown", onKey);
  try {
    state.identities = await api.get("/identities");
    composer.identities = state.identities;
    await loadFolders();
  } catch (error) { failed(error); return; }
  const hash = window.location.hash.match(/^#(folder|message)\/(\d+)$/);
  const byId = hash && hash[1] === "folder" && state.folders.find((f) => f.id === Number(hash[2]));
  await openFolder(byId || state.folders.find((f) => f.role === "inbox") || state.folders[0]);
  if (hash && hash[1] === "message") openMessage(Number(hash[2]));
  connectEvents();
  root.dataset.ready = "true";
}

function refresh() { loadFolders(); refreshList(); }

start();
