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

function render(state) {
  const todos = todosOf(state);
  const editing = list.querySelector("li.editing")?.dataset.id;
  list.replaceChildren(
    ...todos.map((t) => {
      const li = document.createElement("li");
      li.className = "todo" + (t.done ? " done" : "") + (t.id === editing ? " editing" : "");
      li.dataset.id = t.id;
      const box = document.createElement("input");
      box.type = "checkbox";
      box.className = "toggle";
      box.checked = t.done;
      box.setAttribute("aria-label", `Done: ${t.title}`);
      box.addEventListener("change", () => sync.mutate("put", { key: `todo/${t.id}/done`, value: box.checked }));
      const title = document.createElement("span");
      title.className = "title";
      title.textContent = t.title;
      title.title = "Double-click to rename";
      title.addEventListener("dblclick", () => startEdit(li, t));
      const edit = document.createElement("button");
      edit.className = "rename";
      edit.type = "button";
      edit.textContent = "Rename";
      edit.addEventListener("click", () => startEdit(li, t));
      const del = document.createElement("button");
      del.className = "delete";
      del.type = "button";
      del.textContent = "×";
      del.setAttribute("aria-label", `Delete ${t.title}`);
      del.addEventListener("click", () => removeTodo(t.id));
      li.append(box, title, edit, del);
      return li;
    }),
  );
  $("empty").hidden = todos.length > 0;
  const open = todos.filter((t) => !t.done).length;
  $("count").textContent = `${open} open · ${todos.length - open} done`;
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
    input.remove();
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
  li.querySelector(".title").replaceWith(input);
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
