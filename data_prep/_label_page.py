"""The labeller's single web page (HTML, CSS and JavaScript, no framework)."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>hybridvision labeller</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 16px; background: #f4f4f4; color: #222; }
  #views { display: flex; gap: 12px; margin: 12px 0; }
  #views figure { margin: 0; text-align: center; }
  #views img { height: 360px; background: #ddd; border: 1px solid #999; }
  #views figcaption { font-size: 13px; color: #555; }
  #bar { display: flex; gap: 24px; align-items: baseline; }
  #file { font-family: monospace; font-size: 16px; }
  #proposal { font-weight: bold; }
  #message { min-height: 1.4em; }
  #error { color: #fff; background: #b00; padding: 6px 10px; display: none; }
  #done { font-size: 20px; display: none; }
  kbd { border: 1px solid #888; border-radius: 3px; padding: 1px 5px; background: #fff; }
  #legend span { margin-right: 18px; }
</style>
</head>
<body>
<div id="bar">
  <div>image <span id="file" data-file=""></span></div>
  <div>proposal: <span id="proposal">-</span> <span id="confidence"></span></div>
  <div id="progress"></div>
</div>
<div id="error"></div>
<div id="done"></div>
<div id="views">
  <figure><img id="original" alt="original"><figcaption>original</figcaption></figure>
  <figure><img id="hsv" alt="HSV">
    <figcaption>HSV (red = hue, green = saturation, blue = value)</figcaption></figure>
  <figure><img id="mask" alt="threshold">
    <figcaption id="mask-caption">threshold</figcaption></figure>
</div>
<div id="message"></div>
<div id="legend"></div>
<div id="measured" style="font-size: 13px; color: #555;"></div>
<script>
"use strict";
let state = null;
const queue = [];
let busy = false;
window.__prefetched = [];
const keep = {};

function esc(text) {
  const span = document.createElement("span");
  span.textContent = text;
  return span.innerHTML;
}

function showError(text) {
  const box = document.getElementById("error");
  box.textContent = text;
  box.style.display = text ? "block" : "none";
}

function prefetch(items) {
  const urls = [];
  for (const item of items) {
    for (const url of [item.original, item.hsv, item.mask]) {
      urls.push(url);
      if (!keep[url]) { const im = new Image(); im.src = url; keep[url] = im; }
    }
  }
  window.__prefetched = urls;
}

function render(s) {
  state = s;
  const cur = s.current;
  const file = document.getElementById("file");
  file.textContent = cur ? cur.file : "";
  file.dataset.file = cur ? cur.file : "";
  document.getElementById("views").style.display = cur ? "flex" : "none";
  const done = document.getElementById("done");
  done.style.display = cur ? "none" : "block";
  done.textContent = cur ? "" : "All " + s.total + " images done (" + s.labelled +
      " labelled). Export: hybridvision label export --journal " + s.journal +
      " --to-folders DIR";
  if (cur) {
    for (const k of ["original", "hsv", "mask"]) document.getElementById(k).src = cur[k];
    document.getElementById("proposal").textContent = cur.proposal || "-";
    document.getElementById("confidence").textContent =
        cur.confidence === null ? "" : "(confidence " + cur.confidence.toFixed(2) + ")";
    document.getElementById("measured").textContent = Object.entries(cur.measured)
        .map(([k, v]) => k + " = " + v).join("   ");
  }
  document.getElementById("mask-caption").textContent = s.mask_caption;
  document.getElementById("progress").textContent =
      s.done + " / " + s.total + " done, " + s.labelled + " labelled";
  document.getElementById("message").textContent = s.message || "";
  document.getElementById("legend").innerHTML = s.legend
      .map(([keys, what]) => "<span>" + keys.map(k => "<kbd>" + esc(k) + "</kbd>").join(" ") +
           " " + esc(what) + "</span>").join("");
  document.body.dataset.seq = s.seq;
  prefetch(s.upcoming);
}

async function call(url, body) {
  const response = await fetch(url, body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  const data = await response.json();
  if (!response.ok && !data.state) throw new Error(data.error || response.statusText);
  if (data.error) showError(data.error); else showError("");
  return data.state;
}

async function pump() {
  if (busy) return;
  busy = true;
  try {
    while (queue.length) {
      const action = queue.shift();
      const cur = state && state.current;
      if (action.op !== "undo" && !cur) continue;
      const body = {op: action.op, file: cur ? cur.file : null};
      if (action.op === "label") body.label = action.label;
      if (action.op === "accept") {
        if (!cur.proposal) continue;
        body.op = "label"; body.label = cur.proposal;
      }
      render(await call("/api/action", body));
    }
  } catch (err) {
    queue.length = 0;
    showError("The labeller is not reachable (" + err.message + "). Every label shown as done " +
              "is saved; restart the labeller and reload this page.");
  } finally {
    busy = false;
  }
}

document.addEventListener("keydown", (e) => {
  if (!state || e.ctrlKey || e.metaKey || e.altKey) return;
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  const action = state.keys[key];
  if (!action) return;
  e.preventDefault();
  queue.push(action);
  pump();
});

call("/api/state").then(render).catch((err) => showError("cannot load state: " + err.message));
</script>
</body>
</html>
"""
