// The judgements page: sign in with a key, send videos, follow each to its verdict. No build, no CDN.
"use strict";
const state = { key: sessionStorage.getItem("apiKey") || "", rows: new Map(), polling: new Set() };
const $ = (id) => document.getElementById(id);

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.key) headers["Authorization"] = "Bearer " + state.key;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    const error = new Error(message); error.status = response.status; throw error;
  }
  return response;
}

async function signIn(key) {
  state.key = key;
  try {
    const list = await (await api("/v1/judgements?limit=50")).json();
    sessionStorage.setItem("apiKey", key);
    $("signin").hidden = true; $("app").hidden = false; $("signin-error").textContent = "";
    list.judgements.reverse().forEach(show);
  } catch (error) {
    $("signin-error").textContent = error.message;
  }
}

function show(j) {
  state.rows.set(j.id, j);
  let row = document.querySelector(`tr[data-id="${j.id}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.id = j.id;
    row.addEventListener("click", () => detail(j.id));
    $("judgements").tBodies[0].prepend(row);
  }
  const verdict = j.verdict ? `<span class="${j.verdict}">${j.verdict.toUpperCase()}</span>` : (j.status === "no_face" ? "no face" : "");
  const p = j.fake_probability === null || j.fake_probability === undefined ? "" : j.fake_probability.toFixed(3);
  row.dataset.status = j.status;
  row.innerHTML = `<td></td><td class="status">${j.status}</td><td class="verdict">${verdict}</td><td>${p}</td><td>${(j.created_at || "").slice(0, 19).replace("T", " ")}</td>`;
  row.cells[0].textContent = j.file_name || j.id;
  if (j.status === "failed") row.cells[1].title = j.error || "";
  if (j.status === "queued" || j.status === "running") follow(j.id);
}

async function follow(id) {
  if (state.polling.has(id)) return;  // one loop per judgement
  state.polling.add(id);
  let pause = 1000;
  try {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, pause));
      let j;
      try {
        j = await (await api(`/v1/judgements/${id}`)).json();
      } catch (error) {
        if (error.status === 401 || error.status === 404) return;
        pause = Math.min(pause * 2, 10000);  // 429 or a network blip: back off and ask again
        continue;
      }
      pause = 1000;
      show(j);
      if (j.status !== "queued" && j.status !== "running") {
        document.body.dataset.lastVerdict = j.id;
        return;
      }
    }
  } finally { state.polling.delete(id); }
}

async function send(files) {
  for (const file of files) {
    const body = new FormData();
    body.append("video", file, file.name);
    const row = { id: "upload-" + Math.random().toString(16).slice(2), file_name: file.name, status: "uploading" };
    try {
      const j = await (await api(`/v1/judgements?explain=${$("explain").checked}`, { method: "POST", body })).json();
      show(j);
    } catch (error) {
      show(Object.assign(row, { status: "failed", error: error.message }));
    }
  }
}

function plot(scores, threshold) {
  const svg = $("plot"), w = 600, h = 220, pad = 30;
  const tmax = Math.max(1, ...scores.map((s) => s.t));
  const x = (t) => pad + (w - 2 * pad) * t / tmax, y = (p) => h - pad - (h - 2 * pad) * p;
  let html = `<line x1="${pad}" y1="${y(threshold)}" x2="${w - pad}" y2="${y(threshold)}" stroke="#b00020" stroke-dasharray="4"/>`;
  html += `<line x1="${pad}" y1="${y(0)}" x2="${w - pad}" y2="${y(0)}" stroke="#888"/><text x="2" y="${y(1) + 4}" font-size="10">1.0</text><text x="2" y="${y(0) + 4}" font-size="10">0.0</text>`;
  html += `<text x="${w - pad}" y="${h - 8}" font-size="10" text-anchor="end">${tmax.toFixed(1)} s</text>`;
  for (const s of scores) html += `<circle cx="${x(s.t)}" cy="${y(s.p)}" r="4" fill="#1a4fa0"><title>t=${s.t}s face ${s.face}: ${s.p}</title></circle>`;
  svg.innerHTML = html;
}

async function detail(id) {
  const j = await (await api(`/v1/judgements/${id}`)).json();
  $("detail").hidden = false;
  $("detail-title").textContent = j.file_name || j.id;
  $("detail-summary").textContent = j.verdict
    ? `${j.verdict.toUpperCase()}: fake probability ${j.fake_probability.toFixed(3)} (threshold ${j.threshold.toFixed(3)}, ${j.faces} faces, run ${j.model.run_id})`
    : `${j.status}${j.error ? ": " + j.error : ""}`;
  plot(j.scores || [], j.threshold);
  const img = $("sheet");
  img.hidden = true;
  if (j.explanation_url) {
    const blob = await (await api(j.explanation_url)).blob();
    img.src = URL.createObjectURL(blob); img.hidden = false;
  }
}

$("signin-form").addEventListener("submit", (event) => { event.preventDefault(); signIn($("key").value.trim()); });
$("files").addEventListener("change", (event) => send(event.target.files));
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => { event.preventDefault(); drop.classList.remove("over"); send(event.dataTransfer.files); });
if (state.key) signIn(state.key);
