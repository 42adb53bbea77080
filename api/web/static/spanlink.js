// spanlink's page script: highlights for "Try it", type toggles, and the writes (ingest, corrections,
// deletes) through the public JSON API. DOM is built with textContent only, never innerHTML with data.
"use strict";

const KEY = "spanlink-api-key";
const FLASH = "spanlink-flash";
const needsKey = document.body.dataset.needsKey === "true";

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name === "style") node.setAttribute("style", value);
    else if (name.startsWith("data-") || name.startsWith("aria-") || name === "href" || name === "role" || name === "id" || name === "tabindex" || name === "type")
      node.setAttribute(name, value);
    else node[name] = value;
  }
  for (const child of children) node.append(child);
  return node;
}

function flash(text, { href = null, linkText = null, error = false } = {}) {
  const box = document.getElementById("flash");
  box.replaceChildren(document.createTextNode(text));
  if (href) box.append(" ", el("a", { href, text: linkText || href }));
  box.classList.toggle("error", error);
}

function flashAfterReload(text, href = null, linkText = null) {
  sessionStorage.setItem(FLASH, JSON.stringify({ text, href, linkText }));
}

const carried = sessionStorage.getItem(FLASH);
if (carried) {
  sessionStorage.removeItem(FLASH);
  try { const f = JSON.parse(carried); flash(f.text, { href: f.href, linkText: f.linkText }); } catch (e) { /* ignore */ }
}

// -- API key (asked only when the service has one; kept for this tab) ----------------------------

function askKey() {
  const box = document.getElementById("key-box");
  const input = document.getElementById("key-input");
  box.hidden = false;
  input.value = "";
  input.focus();
  return new Promise((resolve) => {
    const done = (value) => { box.hidden = true; box.onsubmit = null; document.getElementById("key-cancel").onclick = null; resolve(value); };
    box.onsubmit = (event) => { event.preventDefault(); sessionStorage.setItem(KEY, input.value); done(input.value); };
    document.getElementById("key-cancel").onclick = () => done(null);
  });
}

async function api(method, url, body = undefined, { write = false } = {}) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (write && needsKey) {
      let key = sessionStorage.getItem(KEY);
      if (!key) key = await askKey();
      if (!key) throw new Error("no API key given; nothing was changed");
      headers["X-API-Key"] = key;
    }
    const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if ((response.status === 401 || response.status === 403) && write && attempt === 0) {
      sessionStorage.removeItem(KEY);
      flash("The API key was refused; enter it again.", { error: true });
      continue;
    }
    const data = await response.json().catch(() => null);
    if (!response.ok) throw new Error((data && data.error && data.error.message) || `${response.status} ${response.statusText}`);
    return data;
  }
  throw new Error("the API key was refused");
}

// Show what will happen, then run `action` only when the person confirms.
function preview(box, lines, confirmText, action, { danger = false } = {}) {
  box.replaceChildren();
  for (const line of lines) box.append(el("p", { text: line }));
  const confirm = el("button", { type: "button", class: danger ? "confirm danger" : "confirm", text: confirmText });
  const cancel = el("button", { type: "button", text: "Cancel" });
  const status = el("span", { role: "status" });
  box.append(confirm, cancel, status);
  box.hidden = false;
  confirm.focus();
  cancel.onclick = () => { box.hidden = true; box.replaceChildren(); };
  confirm.onclick = async () => {
    confirm.disabled = true;
    status.textContent = "working…";
    try { await action(); } catch (error) { status.textContent = ""; confirm.disabled = false; flash(`Nothing changed: ${error.message}`, { error: true }); }
  };
}

// -- type toggles --------------------------------------------------------------------------------

function applyToggles() {
  const off = new Set();
  for (const box of document.querySelectorAll("#toggles input[type=checkbox]")) if (!box.checked) off.add(box.dataset.label);
  for (const span of document.querySelectorAll(".ent[data-label]")) span.classList.toggle("off", off.has(span.dataset.label));
}
for (const box of document.querySelectorAll("#toggles input[type=checkbox]")) box.addEventListener("change", applyToggles);

// -- Try it --------------------------------------------------------------------------------------

const colours = {};
for (const box of document.querySelectorAll("#toggles input[data-colour]")) colours[box.dataset.label] = box.dataset.colour;

function labelColour(label) {
  if (colours[label]) return colours[label];
  let hash = 0;
  for (const ch of label) hash = (hash * 31 + ch.codePointAt(0)) % 360;
  return `hsl(${hash} 70% 82%)`;
}

// Offsets from the API count Unicode code points (Python str); JavaScript strings count UTF-16 units,
// so the text is sliced as an array of code points.
function renderHighlights(target, text, mentions) {
  const chars = Array.from(text);
  const parts = [];
  let at = 0;
  mentions.forEach((m, i) => {
    if (m.start < at) return;
    if (m.start > at) parts.push(document.createTextNode(chars.slice(at, m.start).join("")));
    const tipId = `tip-${i}`;
    const link = m.entity ? `links to ${m.entity.name} (${m.entity.label}, entity ${m.entity.id}) · link score ${m.link_score.toFixed(2)}` : "links to no stored entity: it would found a new one";
    const type = m.label_group && m.label_group !== m.label ? `${m.label} (${m.label_group})` : m.label;  // fine type (its group)
    const tip = el("span", { class: "tip", role: "tooltip", id: tipId, text: `${type} · score ${m.score.toFixed(2)} · ${link}` });
    const span = el("mark", { class: "ent", tabindex: "0", "data-label": m.label, "data-start": String(m.start), "data-end": String(m.end), "aria-describedby": tipId, style: `--c: ${labelColour(m.label)}` },
      chars.slice(m.start, m.end).join(""), el("span", { class: "ent-label", "aria-hidden": "true", text: m.label }), tip);
    if (m.entity) span.dataset.entityId = String(m.entity.id);
    parts.push(span);
    at = m.end;
  });
  if (at < chars.length) parts.push(document.createTextNode(chars.slice(at).join("")));
  target.replaceChildren(...parts);
  applyToggles();
}

const tryForm = document.getElementById("try-form");
if (tryForm) {
  const text = document.getElementById("try-text");
  const status = document.getElementById("try-status");
  const result = document.getElementById("try-result");
  const ingest = document.getElementById("ingest-form");
  tryForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.textContent = "finding entities…";
    try {
      const found = await api("POST", "/v1/link", { text: text.value });
      renderHighlights(result, text.value, found.mentions);
      status.textContent = `${found.mentions.length} entities found`;
      ingest.hidden = false;
    } catch (error) {
      status.textContent = "";
      flash(`Could not analyse the text: ${error.message}`, { error: true });
    }
  });
  ingest.addEventListener("submit", async (event) => {
    event.preventDefault();
    const doc = { text: text.value };
    const id = document.getElementById("ingest-id").value.trim();
    const source = document.getElementById("ingest-source").value.trim();
    if (id) doc.id = id;
    if (source) doc.metadata = { source };
    const out = document.getElementById("ingest-status");
    out.textContent = "ingesting…";
    try {
      const stored = await api("POST", "/v1/documents", { documents: [doc] }, { write: true });
      const docId = stored.documents[0].id;
      flashAfterReload(`Stored document ${docId} with ${stored.documents[0].mentions.length} mentions.`);
      location.href = `/documents/${encodeURIComponent(docId).replace(/%2F/g, "/")}`;
    } catch (error) {
      out.textContent = "";
      flash(`Nothing stored: ${error.message}`, { error: true });
    }
  });
}

// -- document page -------------------------------------------------------------------------------

for (const button of document.querySelectorAll("[data-action=delete-document]")) {
  button.addEventListener("click", () => {
    const id = button.dataset.id;
    const box = button.parentElement.querySelector(".preview-box");
    preview(box, [`Delete document “${id}” and its mentions? Entities mentioned only here are deleted too. This cannot be undone.`], "Delete document", async () => {
      const done = await api("DELETE", `/v1/documents/${encodeURIComponent(id).replace(/%2F/g, "/")}`, undefined, { write: true });
      const gone = done.removed_entity_ids.length;
      flashAfterReload(`Deleted document ${id}${gone ? ` and ${gone} entities that had no other mention` : ""}.`);
      location.href = "/documents";
    }, { danger: true });
  });
}

// -- entity page: corrections --------------------------------------------------------------------

const entityBox = document.getElementById("entity");
if (entityBox) {
  const me = { id: Number(entityBox.dataset.id), name: entityBox.dataset.name, label: entityBox.dataset.label, mentions: Number(entityBox.dataset.mentions), documents: Number(entityBox.dataset.documents) };
  const box = document.getElementById("preview");
  const form = (action) => document.querySelector(`#corrections form[data-action="${action}"]`);
  const reloadWith = (text, href = null, linkText = null) => { flashAfterReload(text, href, linkText); location.reload(); };

  form("rename").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = form("rename").elements.name.value.trim();
    if (!name || name === me.name) { flash("Type a new name first.", { error: true }); return; }
    preview(box, [`Rename “${me.name}” to “${name}”.`, "Its aliases stay, so it is still found by the old name; the new name becomes an alias too."], "Rename", async () => {
      await api("PATCH", `/v1/entities/${me.id}`, { name }, { write: true });
      reloadWith(`Renamed “${me.name}” to “${name}”.`);
    });
  });

  form("retype").addEventListener("submit", (event) => {
    event.preventDefault();
    const label = form("retype").elements.label.value;
    if (label === me.label) { flash("Pick another type first.", { error: true }); return; }
    preview(box, [`Change the type of “${me.name}” from ${me.label} to ${label}.`, "Its mentions keep the type the model gave them."], "Change type", async () => {
      await api("PATCH", `/v1/entities/${me.id}`, { label }, { write: true });
      reloadWith(`“${me.name}” is now ${label}.`);
    });
  });

  form("merge-search").addEventListener("submit", async (event) => {
    event.preventDefault();
    const q = form("merge-search").elements.q.value.trim();
    const list = form("merge-search").querySelector(".merge-hits");
    if (!q) return;
    try {
      const found = await api("GET", `/v1/entities?${new URLSearchParams({ q, limit: "10" })}`);
      const others = found.data.filter((e) => e.id !== me.id);
      list.replaceChildren(...others.map((other) => {
        const pick = el("button", { type: "button", text: `Merge ${other.name} (${other.label}, ${other.mention_count} mentions, entity ${other.id}) into this…` });
        pick.addEventListener("click", () => {
          preview(box, [
            `Merge “${other.name}” (${other.label}, entity ${other.id}, ${other.mention_count} mentions) into “${me.name}” (${me.label}, entity ${me.id}, ${me.mentions} mentions).`,
            `“${me.name}” will have ${me.mentions + other.mention_count} mentions and the other's aliases; entity ${other.id} disappears.`,
          ], "Merge", async () => {
            const merged = await api("POST", `/v1/entities/${me.id}/merge`, { other: other.id }, { write: true });
            reloadWith(`Merged “${other.name}” into “${merged.name}”: ${merged.mention_count} mentions now.`);
          });
        });
        return el("li", {}, pick);
      }));
      if (!others.length) list.replaceChildren(el("li", { text: "No other entity matches." }));
    } catch (error) {
      flash(`Search failed: ${error.message}`, { error: true });
    }
  });

  form("split").addEventListener("submit", (event) => {
    event.preventDefault();
    const ids = Array.from(document.querySelectorAll(".split-pick:checked")).map((b) => Number(b.value));
    if (!ids.length) { flash("Tick the mentions to split off first (Mentions in context).", { error: true }); return; }
    const name = form("split").elements.name.value.trim();
    const label = form("split").elements.label.value;
    const first = document.querySelector(".split-pick:checked").closest("li").querySelector("mark").textContent;
    preview(box, [
      `Move ${ids.length} ticked mention${ids.length > 1 ? "s" : ""} to a new ${label} entity named “${name || first}”.`,
      `“${me.name}” keeps ${me.mentions - ids.length} mentions.`,
    ], "Split", async () => {
      const body = { mention_ids: ids, label };
      if (name) body.name = name;
      const created = await api("POST", `/v1/entities/${me.id}/split`, body, { write: true });
      reloadWith(`Split ${ids.length} mentions into new entity “${created.name}”:`, `/entities/${created.id}`, `entity ${created.id}`);
    });
  });

  form("delete-entity").addEventListener("submit", (event) => {
    event.preventDefault();
    preview(box, [`Delete “${me.name}” (entity ${me.id}) and its ${me.mentions} mentions in ${me.documents} documents?`, "The documents stay; these spans stop being an entity. This cannot be undone."], "Delete entity", async () => {
      const done = await api("DELETE", `/v1/entities/${me.id}`, undefined, { write: true });
      flashAfterReload(`Deleted “${me.name}” and ${done.removed_mentions} mentions.`);
      location.href = "/entities";
    }, { danger: true });
  });
}
