// The webmail's calls to /api/v1/mail: JSON in and out, the CSRF header on unsafe methods.
"use strict";

const root = document.getElementById("mail");
const csrf = root ? root.dataset.csrf : "";
export const BASE = "/api/v1/mail";

export class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field || "";
  }
}

async function parse(response) {
  if (response.status === 204) return null;
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (!response.ok) {
    if (response.status === 401) window.location.assign("/logon?next=/mail");
    throw new ApiError(response.status, (body && body.error) || response.statusText,
                       body && body.field);
  }
  return body;
}

export async function get(path, params) {
  const query = params ? "?" + new URLSearchParams(params).toString() : "";
  return parse(await fetch(BASE + path + query, { credentials: "same-origin" }));
}

export async function send(method, path, body) {
  return parse(await fetch(BASE + path, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: body === undefined ? undefined : JSON.stringify(body),
  }));
}

// Upload a file in chunks under the server's request size limit; onProgress(bytes).
export async function upload(file, chunkSize, onProgress) {
  let meta = null;
  for (let offset = 0; offset < Math.max(file.size, 1); offset += chunkSize) {
    const chunk = file.slice(offset, offset + chunkSize);
    const path = meta ? `/uploads/${meta.upload}`
      : "/uploads?" + new URLSearchParams({ name: file.name, type: file.type || "" });
    meta = await parse(await fetch(BASE + path, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/octet-stream", "X-CSRF-Token": csrf },
      body: chunk,
    }));
    if (onProgress) onProgress(Math.min(file.size, offset + chunkSize));
  }
  return meta;
}
