// steerlab console: the loaded artifacts as knobs; base and steered text side by side, streamed.
// Plain JS, no build step, nothing fetched from outside this server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { model: null, artifacts: [], knobs: {}, runs: { base: null, steered: null }, timer: null };

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("apikey").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function status(text, isError) {
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "error" : "dim";
}

async function api(path, init) {
  const r = await fetch(path, Object.assign({ headers: headers() }, init || {}));
  if (!r.ok) {
    let msg = r.status + " " + r.statusText;
    try { msg = (await r.json()).error.message; } catch (e) { /* not JSON */ }
    throw new Error(msg);
  }
  return r;
}

function steering() {
  const out = [];
  let attributes = null;
  for (const a of state.artifacts) {
    const k = state.knobs[a.id];
    if (!k || !k.on) continue;
    const steer = Object.assign({ artifact: a.id, strength: k.strength }, (a.recommended || {}).options || {});
    out.push(steer);
    const names = Object.keys(k.attributes || {});
    if (names.length) {
      attributes = attributes || {};
      for (const n of names) attributes[n] = k.attributes[n];
    }
  }
  return { steering: out, attributes };
}

function body(steered) {
  const prompt = $("prompt").value;
  const chat = $("chat").checked;
  const b = {
    model: state.model,
    max_tokens: Number($("max_tokens").value) || 32,
    temperature: Number($("temperature").value) || 0,
    seed: Number($("seed").value) || 0,
    stream: true,
  };
  if (chat) b.messages = [{ role: "user", content: prompt }];
  else b.prompt = prompt;
  if (steered) {
    const s = steering();
    b.steering = s.steering;
    if (s.attributes) b.attributes = s.attributes;
  } else {
    b.steering = null;
  }
  return b;
}

async function stream(which, steered) {
  if (state.runs[which]) state.runs[which].abort();
  const ctl = new AbortController();
  state.runs[which] = ctl;
  const pane = $(which);
  pane.textContent = "";
  pane.classList.remove("error");
  const b = body(steered);
  const path = b.messages ? "/v1/chat/completions" : "/v1/completions";
  try {
    const r = await api(path, { method: "POST", body: JSON.stringify(b), signal: ctl.signal });
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const line = buf.slice(0, cut).trim();
        buf = buf.slice(cut + 2);
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") continue;
        const doc = JSON.parse(data);
        if (doc.error) throw new Error(doc.error.message);
        for (const c of doc.choices || []) {
          pane.textContent += c.text !== undefined ? c.text : ((c.delta || {}).content || "");
        }
      }
    }
    pane.dataset.done = String(Date.now());
    if (steered) explain(pane.textContent);
  } catch (e) {
    if (e.name === "AbortError") return;
    pane.textContent = e.message;
    pane.classList.add("error");
  }
  snippets();
}

async function explain(text) {
  // Highlight the steered text by the first enabled artifact whose method explains text (LM-Steer).
  const box = $("explain");
  box.textContent = "";
  $("explain-title").hidden = true;
  const a = state.artifacts.find((x) => (x.controls || {}).explain && (state.knobs[x.id] || {}).on);
  if (!a || !text.trim()) return;
  const k = state.knobs[a.id];
  const steer = Object.assign({ artifact: a.id, strength: k.strength }, (a.recommended || {}).options || {});
  try {
    const doc = await (await api("/v1/steering/explain", { method: "POST", body: JSON.stringify({ steer, text }) })).json();
    const top = Math.max(1e-6, ...doc.scores.map(Math.abs));
    doc.tokens.forEach((tok, i) => {
      const s = doc.scores[i];
      const span = document.createElement("span");
      span.textContent = tok;
      span.title = (s >= 0 ? "+" : "") + s.toFixed(3);
      const alpha = Math.min(1, Math.abs(s) / top);
      span.style.background = (s > 0 ? "rgba(40,160,60," : "rgba(200,40,40,") + alpha.toFixed(2) + ")";
      box.append(span);
    });
    $("explain-title").hidden = false;
  } catch (e) {
    box.textContent = e.message;
  }
}

function snippets() {
  const b = body(true);
  b.stream = false;
  const path = b.messages ? "/v1/chat/completions" : "/v1/completions";
  const url = location.origin + path;
  $("curl").textContent = "curl " + url + " \\\n  -H 'Content-Type: application/json'" +
    ($("apikey").value ? " \\\n  -H 'Authorization: Bearer $STEERLAB_API_KEY'" : "") +
    " \\\n  -d '" + JSON.stringify(b) + "'";
  const extra = { steering: b.steering };
  if (b.attributes) extra.attributes = b.attributes;
  const call = b.messages
    ? "client.chat.completions.create(model=" + JSON.stringify(b.model) + ", messages=" + JSON.stringify(b.messages)
    : "client.completions.create(model=" + JSON.stringify(b.model) + ", prompt=" + JSON.stringify(b.prompt);
  $("python").textContent = "from openai import OpenAI\nclient = OpenAI(base_url=" +
    JSON.stringify(location.origin + "/v1") + ", api_key=\"...\")\nout = " + call +
    ",\n    max_tokens=" + b.max_tokens + ", temperature=" + b.temperature + ", seed=" + b.seed +
    ",\n    extra_body=" + JSON.stringify(extra).replace(/null/g, "None").replace(/true/g, "True").replace(/false/g, "False") + ")";
}

function regenerateSteered() {
  clearTimeout(state.timer);
  state.timer = setTimeout(() => stream("steered", true), 300);
}

function regenerateBoth() {
  stream("base", false);
  stream("steered", true);
}

function knobRow(label, min, max, step, value, onInput, id) {
  const row = document.createElement("div");
  row.className = "knob";
  const name = document.createElement("span");
  name.textContent = label;
  const input = document.createElement("input");
  input.type = "range";
  input.min = min; input.max = max; input.step = step; input.value = value;
  if (id) input.id = id;
  input.setAttribute("aria-label", label);
  const shown = document.createElement("span");
  shown.textContent = value;
  input.addEventListener("input", () => { shown.textContent = input.value; onInput(Number(input.value)); });
  row.append(name, input, shown);
  return row;
}

function drawArtifacts() {
  const box = $("artifacts");
  box.textContent = "";
  for (const a of state.artifacts) {
    const rec = a.recommended || {};
    const start = rec.strength !== undefined ? rec.strength : 1;
    const span = Math.max(10, Math.ceil(Math.abs(start) * 2));
    const k = state.knobs[a.id] = { on: false, strength: start, attributes: {} };
    const div = document.createElement("div");
    div.className = "artifact";
    div.dataset.artifact = a.id;
    const head = document.createElement("label");
    head.className = "head";
    const on = document.createElement("input");
    on.type = "checkbox";
    on.id = "on-" + a.id;
    on.addEventListener("change", () => { k.on = on.checked; regenerateSteered(); });
    const title = document.createElement("strong");
    title.textContent = a.id;
    const method = document.createElement("span");
    method.className = "dim";
    method.textContent = a.method;
    head.append(on, title, method);
    const desc = document.createElement("div");
    desc.className = "desc";
    desc.textContent = (a.description || "") + ((a.eval_card || {}).summary ? " — " + a.eval_card.summary : "");
    div.append(head, desc);
    div.append(knobRow("strength", -span, span, 0.5, start, (v) => { k.strength = v; k.on = on.checked = true; regenerateSteered(); },
      "strength-" + a.id));
    const attrs = (a.controls || {}).attributes || {};
    for (const [name, spec] of Object.entries(attrs)) {
      div.append(knobRow(name, spec.low, spec.high, 1, spec.default, (v) => {
        k.attributes[name] = v; k.on = on.checked = true; regenerateSteered();
      }, "attr-" + a.id + "-" + name));
    }
    box.append(div);
  }
}

async function init() {
  $("apikey").value = localStorage.getItem("steerlab-key") || "";
  $("apikey").addEventListener("change", () => { localStorage.setItem("steerlab-key", $("apikey").value); load(); });
  $("run").addEventListener("click", regenerateBoth);
  for (const id of ["chat", "max_tokens", "temperature", "seed"]) $(id).addEventListener("change", regenerateBoth);
  $("copy-curl").addEventListener("click", () => navigator.clipboard.writeText($("curl").textContent));
  $("copy-py").addEventListener("click", () => navigator.clipboard.writeText($("python").textContent));
  await load();
}

async function load() {
  try {
    const models = await (await api("/v1/models")).json();
    state.model = models.data[0].id;
    $("model").textContent = "model: " + state.model;
    state.artifacts = (await (await api("/v1/steering/artifacts")).json()).data;
    drawArtifacts();
    status("ready: " + state.artifacts.length + " artifacts loaded");
    document.body.dataset.ready = "1";
    regenerateBoth();
  } catch (e) {
    status(e.message, true);
  }
}

init();
