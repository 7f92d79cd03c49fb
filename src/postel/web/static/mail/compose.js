// The compose dialog: addresses with autocomplete, plain or rich text, attachments by
// upload or drag and drop, drafts saved automatically, and undo send.
"use strict";

const $ = (id) => document.getElementById(id);
const UNDO_SECONDS = 5;
const AUTOSAVE_MS = 4000;

function formatSize(bytes) {
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function splitAddresses(value) {
  return value.split(/,(?=(?:[^"]*"[^"]*")*[^"]*$)/).map((s) => s.trim()).filter(Boolean);
}

export class Composer {
  constructor({ api, toast, onSent }) {
    this.api = api;
    this.toast = toast;
    this.onSent = onSent;
    this.identities = null;
    this.dialog = $("compose");
    this.draftId = null;
    this.replyToId = null;
    this.inReplyTo = "";
    this.references = [];
    this.attachments = [];   // {upload | message+part | message, filename, size, type}
    this.dirty = false;
    this.saving = null;
    this.timer = null;
    this.suggestFor = null;
    this.bind();
  }

  bind() {
    $("compose-close").addEventListener("click", () => this.close(true));
    $("compose-discard").addEventListener("click", () => this.discard());
    $("compose-save").addEventListener("click", () => this.save(true));
    $("compose-send").addEventListener("click", () => this.send());
    $("compose-rich").addEventListener("change", (e) => this.setRich(e.target.checked));
    $("compose-files").addEventListener("change", (e) => { this.addFiles(e.target.files); e.target.value = ""; });
    const zone = $("dropzone");
    for (const target of [zone, this.dialog]) {
      target.addEventListener("dragover", (e) => { if (e.dataTransfer.types.includes("Files")) { e.preventDefault(); zone.classList.add("drop"); } });
      target.addEventListener("dragleave", () => zone.classList.remove("drop"));
      target.addEventListener("drop", (e) => {
        if (!e.dataTransfer.files.length) return;
        e.preventDefault(); zone.classList.remove("drop"); this.addFiles(e.dataTransfer.files);
      });
    }
    for (const button of document.querySelectorAll("#rich-tools [data-command]")) {
      button.addEventListener("click", () => {
        const command = button.dataset.command;
        let value = null;
        if (command === "createLink") {
          value = window.prompt("Link address (https://…)");
          if (!value || !/^(https?:|mailto:)/i.test(value)) return;
        }
        document.execCommand(command, false, value);
        $("compose-html").focus();
        this.changed();
      });
    }
    this.dialog.addEventListener("input", (e) => {
      this.changed();
      if (e.target.matches("[data-addresses]")) this.suggest(e.target);
    });
    this.dialog.addEventListener("cancel", (e) => { e.preventDefault(); this.close(true); });
    this.dialog.addEventListener("keydown", (e) => {
      if ((e.ctrlKey || e.metaKey) && e.key === "Enter") { e.preventDefault(); this.send(); }
    });
  }

  async open({ mode, id }) {
    if (this.dialog.open) await this.close(true);
    let data;
    try {
      data = await this.api.get("/compose", id ? { mode, id: String(id) } : { mode });
    } catch (error) { this.toast(error.message); return; }
    this.fill(data, mode);
    this.dialog.showModal();
    (mode === "reply" || mode === "all" ? $("compose-body") : $("compose-to")).focus();
    if (mode === "reply" || mode === "all") $("compose-body").setSelectionRange(0, 0);
  }

  fill(data, mode) {
    const draft = data.draft;
    this.draftId = data.draft_id || null;
    this.replyToId = data.reply_to_id || null;
    this.inReplyTo = draft.in_reply_to || "";
    this.references = draft.references || [];
    this.attachments = draft.attachments || [];
    const from = $("compose-from");
    const ids = this.identities || { addresses: [draft.from], default: draft.from };
    from.replaceChildren(...ids.addresses.map((a) => new Option(a, a)));
    from.value = ids.addresses.includes(draft.from) ? draft.from : ids.default;
    $("compose-to").value = draft.to.join(", ");
    $("compose-cc").value = draft.cc.join(", ");
    $("compose-bcc").value = draft.bcc.join(", ");
    $("compose-more").open = draft.cc.length > 0 || draft.bcc.length > 0;
    $("compose-subject").value = draft.subject;
    $("compose-body").value = draft.text;
    $("compose-html").innerHTML = "";
    $("compose-rich").checked = false;
    this.setRich(false);
    if (draft.html) {
      // A resumed rich draft: its HTML came back sanitised by the server.
      $("compose-rich").checked = true;
      this.setRich(true, draft.html);
    }
    $("compose-title").textContent = { reply: "Reply", all: "Reply to all", forward: "Forward",
      forward_attachment: "Forward", draft: "Draft" }[mode] || "New message";
    $("attach-limit").textContent = ids.max_attachment_bytes
      ? `Up to ${formatSize(ids.max_attachment_bytes)} in all` : "";
    $("compose-error").hidden = true;
    $("draft-state").textContent = this.draftId ? "Draft" : "";
    this.dirty = false;
    this.renderAttachments();
  }

  setRich(on, html) {
    const text = $("compose-body");
    const rich = $("compose-html");
    if (on && rich.hidden) {
      if (html !== undefined) rich.innerHTML = html;
      else { rich.replaceChildren(); for (const line of text.value.split("\n")) { rich.append(document.createTextNode(line), document.createElement("br")); } }
    } else if (!on && !rich.hidden) {
      text.value = rich.innerText;
    }
    rich.hidden = !on;
    text.hidden = on;
    $("rich-tools").hidden = !on;
  }

  renderAttachments() {
    const list = $("compose-attachments");
    list.replaceChildren(...this.attachments.map((a, index) => {
      const item = document.createElement("li");
      item.append(`${a.filename} (${a.size !== undefined ? formatSize(a.size) : "…"}) `);
      if (a.progress !== undefined && a.progress < a.size) item.append(`${Math.round(100 * a.progress / Math.max(1, a.size))}% `);
      const remove = document.createElement("button");
      remove.type = "button"; remove.className = "link small"; remove.textContent = "Remove";
      remove.setAttribute("aria-label", `Remove ${a.filename}`);
      remove.addEventListener("click", () => { this.attachments.splice(index, 1); this.renderAttachments(); this.changed(); });
      item.append(remove);
      return item;
    }));
  }

  totalSize() { return this.attachments.reduce((sum, a) => sum + (a.size || 0), 0); }

  async addFiles(files) {
    const limit = (this.identities && this.identities.max_attachment_bytes) || Infinity;
    const chunk = (this.identities && this.identities.upload_chunk_bytes) || 512 * 1024;
    for (const file of files) {
      if (this.totalSize() + file.size > limit) {
        this.toast(`${file.name} is too large: attachments may be ${formatSize(limit)} in all.`);
        continue;
      }
      const entry = { filename: file.name, size: file.size, type: file.type, progress: 0, pending: true };
      this.attachments.push(entry);
      this.renderAttachments();
      try {
        const meta = await this.api.upload(file, chunk, (done) => { entry.progress = done; this.renderAttachments(); });
        Object.assign(entry, { upload: meta.upload, size: meta.size, pending: false });
        delete entry.progress;
      } catch (error) {
        this.attachments.splice(this.attachments.indexOf(entry), 1);
        this.toast(`${file.name}: ${error.message}`);
      }
      this.renderAttachments();
      this.changed();
    }
  }

  message() {
    const rich = !$("compose-html").hidden;
    const html = rich ? $("compose-html").innerHTML : "";
    const text = rich ? $("compose-html").innerText : $("compose-body").value;
    return {
      from: $("compose-from").value,
      to: splitAddresses($("compose-to").value),
      cc: splitAddresses($("compose-cc").value),
      bcc: splitAddresses($("compose-bcc").value),
      subject: $("compose-subject").value,
      text, html,
      in_reply_to: this.inReplyTo,
      references: this.references,
      attachments: this.attachments.filter((a) => !a.pending).map((a) => {
        const ref = {};
        for (const key of ["upload", "message", "part"]) if (a[key] !== undefined && a[key] !== null) ref[key] = a[key];
        return ref;
      }),
      draft_id: this.draftId,
      reply_to_id: this.replyToId,
    };
  }

  changed() {
    this.dirty = true;
    $("draft-state").textContent = "Not saved yet";
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.save(false), AUTOSAVE_MS);
  }

  async save(shown) {
    clearTimeout(this.timer);
    if (this.saving) await this.saving;
    if (!this.dirty && !shown) return;
    if (this.attachments.some((a) => a.pending)) { this.timer = setTimeout(() => this.save(shown), 1000); return; }
    this.dirty = false;
    $("draft-state").textContent = "Saving…";
    const body = this.message();
    this.saving = this.api.send("POST", "/drafts", body).then((result) => {
      this.draftId = result.draft_id;
      // Attachments now live in the saved draft; uploads were used up.
      const uploaded = this.attachments.filter((a) => a.upload);
      if (uploaded.length || this.attachments.length) {
        const pending = this.attachments.filter((a) => a.pending);
        this.attachments = [...result.attachments, ...pending];
        this.renderAttachments();
      }
      $("draft-state").textContent = "Draft saved";
      if (shown) this.toast("Draft saved.");
    }).catch((error) => {
      this.dirty = true;
      $("draft-state").textContent = "Not saved";
      if (shown) this.toast(error.message);
    }).finally(() => { this.saving = null; });
    await this.saving;
  }

  async close(keep) {
    clearTimeout(this.timer);
    if (keep && this.dirty) await this.save(false);
    if (this.saving) await this.saving;
    this.dialog.close();
    $("suggestions").hidden = true;
  }

  async discard() {
    clearTimeout(this.timer);
    if (this.saving) await this.saving;
    const draftId = this.draftId;
    this.dirty = false;
    this.dialog.close();
    if (draftId) {
      try { await this.api.send("POST", "/messages/actions", { action: "delete", ids: [draftId] }); } catch { /* gone already */ }
    }
    this.onSent();
  }

  async send() {
    const body = this.message();
    if (!body.to.length && !body.cc.length && !body.bcc.length) {
      this.showError("Add at least one recipient.");
      return;
    }
    if (this.attachments.some((a) => a.pending)) { this.showError("Wait for the attachments to finish uploading."); return; }
    clearTimeout(this.timer);
    if (this.saving) await this.saving;
    body.draft_id = this.draftId;
    this.dirty = false;
    this.dialog.close();
    // Undo send: the message leaves only after a few seconds unless the user takes it back.
    let undone = false;
    const sending = new Promise((resolve) => {
      this.toast(`Sending in ${UNDO_SECONDS} seconds…`, { label: "Undo", ms: UNDO_SECONDS * 1000, run: () => { undone = true; resolve(); } });
      setTimeout(resolve, UNDO_SECONDS * 1000);
    });
    await sending;
    if (undone) {
      this.dialog.showModal();
      this.toast("Sending cancelled.");
      return;
    }
    try {
      await this.api.send("POST", "/send", body);
      this.toast("Message sent.");
      this.onSent();
    } catch (error) {
      this.dialog.showModal();
      this.showError(error.message);
    }
  }

  showError(message) {
    const box = $("compose-error");
    box.textContent = message;
    box.hidden = false;
  }

  async suggest(input) {
    const parts = input.value.split(",");
    const last = parts[parts.length - 1].trim();
    const list = $("suggestions");
    if (last.length < 2) { list.hidden = true; return; }
    let found;
    try { found = (await this.api.get("/contacts", { q: last })).addresses; } catch { return; }
    // Nothing to offer, or only what is already typed in full.
    if (!found.length || (found.length === 1 && found[0].toLowerCase().includes(last.toLowerCase())
                          && last.includes("@") && found[0].toLowerCase().endsWith(last.toLowerCase()))) {
      list.hidden = true;
      return;
    }
    list.replaceChildren(...found.map((address) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button"; button.textContent = address; button.className = "suggestion";
      button.addEventListener("click", () => {
        parts[parts.length - 1] = " " + address;
        input.value = parts.join(",").trim() + ", ";
        list.hidden = true;
        input.focus();
        this.changed();
      });
      item.append(button);
      return item;
    }));
    input.after(list);
    list.hidden = false;
  }
}
