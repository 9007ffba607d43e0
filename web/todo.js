// The todo demo on the built-in key-value app.
//
// Data model: one key per field, so concurrent edits of different fields of
// one todo both survive: `todo/<id>/title` (string; a todo exists while its
// title does) and `todo/<id>/done` (boolean, absent = false). Ids sort by
// creation time. Scope `shared` unless the page URL says `?scope=`; a token
// in `?token=` is passed to the server.
import { LiveClient, SyncClient } from "./live-sync.js";

const params = new URLSearchParams(location.search);
const scope = params.get("scope") || "shared";
const token = params.get("token") || undefined;

const $ = (id) => document.getElementById(id);
const list = $("todos");
const connection = $("connection");
const pendingBadge = $("pending");

const live = new LiveClient({ token });
const sync = await SyncClient.open({ scope, live, token });
// For tests and the console.
window.todoApp = { live, sync };

function newId() {
  const rand = Math.floor(Math.random() * 36 ** 6).toString(36).padStart(6, "0");
  return Date.now().toString(36).padStart(9, "0") + "-" + rand;
}

/** @param {Record<string, unknown>} state */
function todosOf(state) {
  const todos = [];
  for (const [key, title] of Object.entries(state)) {
    const m = /^todo\/([^/]+)\/title$/.exec(key);
    if (!m || typeof title !== "string") continue;
    todos.push({ id: m[1], title, done: state[`todo/${m[1]}/done`] === true });
  }
  todos.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return todos;
}

// Rows are kept and updated in place, and a row already in its place is
// never taken out of the list: a click that lands while another change
// re-renders the list (a tab's own mutation, another tab's poke) still
// reaches its checkbox or button.
function render(state) {
  const todos = todosOf(state);
  const editing = list.querySelector("li.editing")?.dataset.id;
  const rows = new Map([...list.children].map((li) => [li.dataset.id, li]));
  todos.forEach((t, i) => {
    const li = rows.get(t.id) ?? newRow(t.id);
    fillRow(li, t, t.id === editing);
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] ?? null);
  });
  while (list.children.length > todos.length) list.lastElementChild.remove();
  $("empty").hidden = todos.length > 0;
  const open = todos.filter((t) => !t.done).length;
  $("count").textContent = `${open} open · ${todos.length - open} done`;
}

/** A row for todo `id`; its handlers read the todo it shows now (`li.todo`). */
function newRow(id) {
  const li = document.createElement("li");
  li.dataset.id = id;
  const box = document.createElement("input");
  box.type = "checkbox";
  box.className = "toggle";
  box.addEventListener("change", () => sync.mutate("put", { key: `todo/${id}/done`, value: box.checked }));
  const title = document.createElement("span");
  title.className = "title";
  title.title = "Double-click to rename";
  title.addEventListener("dblclick", () => startEdit(li, li.todo));
  const edit = document.createElement("button");
  edit.className = "rename";
  edit.type = "button";
  edit.textContent = "Rename";
  edit.addEventListener("click", () => startEdit(li, li.todo));
  const del = document.createElement("button");
  del.className = "delete";
  del.type = "button";
  del.textContent = "×";
  del.addEventListener("click", () => removeTodo(id));
  li.append(box, title, edit, del);
  return li;
}

/** Shows todo `t` in row `li`, touching only what changed. */
function fillRow(li, t, editing) {
  li.todo = t;
  const className = "todo" + (t.done ? " done" : "") + (editing ? " editing" : "");
  if (li.className !== className) li.className = className;
  const box = li.querySelector("input.toggle");
  if (box.checked !== t.done) box.checked = t.done;
  box.setAttribute("aria-label", `Done: ${t.title}`);
  const title = li.querySelector(".title");
  if (title && title.textContent !== t.title) title.textContent = t.title;
  li.querySelector("button.delete").setAttribute("aria-label", `Delete ${t.title}`);
}

function startEdit(li, todo) {
  if (li.querySelector("input.edit")) return;
  li.classList.add("editing");
  const input = document.createElement("input");
  input.className = "edit";
  input.value = todo.title;
  input.setAttribute("aria-label", "Rename todo");
  let finished = false;
  const finish = (save) => {
    if (finished) return;
    finished = true;
    li.classList.remove("editing");
    const title = input.value.trim();
    // Leave edit mode first: renders are held back while an edit is open.
    input.replaceWith(shown);
    if (save && title && title !== todo.title) {
      sync.mutate("put", { key: `todo/${todo.id}/title`, value: title });
    }
    render(sync.state);
  };
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") finish(true);
    if (e.key === "Escape") finish(false);
  });
  input.addEventListener("blur", () => finish(true));
  const shown = li.querySelector(".title");
  shown.replaceWith(input);
  input.focus();
  input.select();
}

function removeTodo(id) {
  sync.mutate("delete", { key: `todo/${id}/title` });
  if (`todo/${id}/done` in sync.state) sync.mutate("delete", { key: `todo/${id}/done` });
}

$("new-todo").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $("new-title");
  const title = input.value.trim();
  if (!title) return;
  sync.mutate("put", { key: `todo/${newId()}/title`, value: title });
  input.value = "";
});

function showStatus() {
  const state = live.state === "open" ? "online" : live.state === "reconnecting" ? "offline" : live.state;
  connection.dataset.state = state;
  connection.textContent = state === "online" ? "live" : state === "offline" ? "offline · retrying" : state;
  const n = sync.pendingCount;
  pendingBadge.dataset.count = String(n);
  pendingBadge.textContent = n === 0 ? "synced" : `${n} pending`;
  pendingBadge.title = sync.status.lastError ? `Last error: ${sync.status.lastError}` : "Changes not yet confirmed by the server";
}

$("scope").textContent = scope;
sync.subscribe((state) => {
  if (!list.querySelector("input.edit")) render(state);
});
sync.on("status", showStatus);
live.on("state", showStatus);
sync.on("rejected", ({ mutation, result }) => console.warn("rejected by the server", mutation, result));
showStatus();
document.body.dataset.ready = "true";
