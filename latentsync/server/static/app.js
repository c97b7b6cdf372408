// The page is a client of the server's public API: upload, find faces, submit, poll, play the result.
"use strict";

const API = "api/v3";
const POLL_MS = 1000;
const KEPT_JOBS = 10; // jobs shown again after a reload
const $ = (id) => document.getElementById(id);

const keyInput = $("api-key");
keyInput.value = localStorage.getItem("latentsync-api-key") || "";
keyInput.addEventListener("change", () => localStorage.setItem("latentsync-api-key", keyInput.value.trim()));

function withKey(headers = {}) {
  const key = keyInput.value.trim();
  return key ? { ...headers, Authorization: `Bearer ${key}` } : headers;
}

// One API call; resolves to the envelope's `data`, throws its `message`.
async function call(path, options = {}) {
  const response = await fetch(path, { ...options, headers: withKey(options.headers) });
  let body;
  try {
    body = await response.json();
  } catch {
    throw new Error(`the server answered ${response.status} ${response.statusText}`);
  }
  if (!response.ok || body.code !== 200) throw new Error(body.message || `HTTP ${response.status}`);
  return body.data;
}

// A chosen file is uploaded once (the face finder and the job share the upload); otherwise the URL is the input.
const uploads = new Map();
async function inputUrl(kind) {
  const file = $(`${kind}-file`).files[0];
  if (file) {
    if (!uploads.has(file)) {
      const form = new FormData();
      form.append("file", file);
      uploads.set(file, call(`${API}/media/upload/binary`, { method: "POST", body: form }).then((d) => d.download_url));
    }
    try {
      return await uploads.get(file);
    } catch (error) {
      uploads.delete(file);
      throw error;
    }
  }
  const url = $(`${kind}-url`).value.trim();
  if (!url) throw new Error(`choose a ${kind} file or paste its URL`);
  return url;
}

function inputName(kind) {
  const file = $(`${kind}-file`).files[0];
  return file ? file.name : $(`${kind}-url`).value.trim();
}

// The settings start at the server's own defaults, read from its API description (one place for them).
const KNOBS = { steps: "steps", guidance_scale: "guidance-scale", seed: "seed", sync_mode: "sync-mode" };
fetch("openapi.json")
  .then((response) => response.json())
  .then((schema) => {
    const fields = schema.components.schemas.LipsyncRequest.properties;
    for (const [field, id] of Object.entries(KNOBS)) if (!$(id).value || id === "sync-mode") $(id).value = fields[field].default;
  })
  .catch(() => {}); // left empty, the server's defaults apply

// --- choosing the face: the first frame with faces, boxed; a click picks one (the job's `face_at`) ---------------
let faces = null; // {width, height, faces, image} of the current video
let faceAt = null; // [x, y] in video pixels, or null for the default (the largest face)

function drawFaces() {
  const canvas = $("face-canvas");
  const image = new Image();
  image.onload = () => {
    canvas.width = image.width;
    canvas.height = image.height;
    const scale = image.width / faces.width;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(image, 0, 0);
    ctx.lineWidth = Math.max(2, image.width / 200);
    for (const face of faces.faces) {
      const [x1, y1, x2, y2] = face.box.map((v) => v * scale);
      const chosen = faceAt && x1 <= faceAt[0] * scale && faceAt[0] * scale <= x2 && y1 <= faceAt[1] * scale && faceAt[1] * scale <= y2;
      ctx.strokeStyle = chosen ? "#00e676" : "#ffeb3b";
      ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    }
    canvas.dataset.faces = String(faces.faces.length);
    canvas.dataset.ready = "1";
  };
  image.src = faces.image;
}

function describeFace() {
  if (!faces) return "";
  if (!faces.faces.length) return "No face found at the start of this video; the job looks further.";
  if (faceAt) return `Lip-syncing the face you clicked (at ${faceAt.map(Math.round).join(", ")}). Click another to change.`;
  return faces.faces.length > 1
    ? `${faces.faces.length} faces: click the one to lip-sync (default: the largest).`
    : "1 face found; it is the one lip-synced.";
}

async function findFaces() {
  const picker = $("face-picker");
  faces = null;
  faceAt = null;
  delete $("face-canvas").dataset.ready;
  if (!$("video-file").files[0] && !$("video-url").value.trim()) {
    picker.hidden = true;
    return;
  }
  picker.hidden = false;
  $("face-hint").textContent = "Looking for faces…";
  try {
    faces = await call(`${API}/faces`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ video: await inputUrl("video") }),
    });
    $("face-hint").textContent = describeFace();
    drawFaces();
  } catch (error) {
    $("face-hint").textContent = `Faces could not be shown: ${error.message}`;
  }
}

$("face-canvas").addEventListener("click", (event) => {
  if (!faces || !faces.faces.length) return;
  const canvas = event.currentTarget;
  const rect = canvas.getBoundingClientRect();
  const x = ((event.clientX - rect.left) / rect.width) * faces.width;
  const y = ((event.clientY - rect.top) / rect.height) * faces.height;
  const hit = faces.faces.find((f) => f.box[0] <= x && x <= f.box[2] && f.box[1] <= y && y <= f.box[3]);
  faceAt = hit ? hit.center : [x, y];
  $("face-hint").textContent = describeFace();
  drawFaces();
});
$("video-file").addEventListener("change", findFaces);
$("video-url").addEventListener("change", findFaces);

// --- job cards ----------------------------------------------------------------------------------------------------
function rememberJob(job) {
  const jobs = JSON.parse(localStorage.getItem("latentsync-jobs") || "[]").filter((j) => j.id !== job.id);
  localStorage.setItem("latentsync-jobs", JSON.stringify([job, ...jobs].slice(0, KEPT_JOBS)));
}

function addCard(job) {
  const card = $("job-template").content.firstElementChild.cloneNode(true);
  card.dataset.id = job.id;
  card.querySelector(".job-title").textContent = `Job ${job.id.slice(0, 8)}`;
  const s = job.settings || {};
  const face = s.face_at ? `face at ${s.face_at.map(Math.round).join(", ")}` : "largest face";
  card.querySelector(".job-inputs").textContent = job.video
    ? `${job.video} + ${job.audio} · ${s.sync_mode}, ${s.steps} steps, guidance ${s.guidance_scale}, seed ${s.seed}, ${face}`
    : "";
  if (job.before) {
    const before = card.querySelector(".job-before");
    before.querySelector("video").src = job.before;
    before.hidden = false;
  }
  $("jobs").prepend(card);
  return card;
}

function describe(job) {
  switch (job.status) {
    case "created":
      return job.jobs_ahead ? `waiting: ${job.jobs_ahead} job(s) ahead` : "waiting: next in line";
    case "processing":
      return job.progress > 0 ? `lip-syncing: ${Math.round(job.progress * 100)}%` : "lip-syncing…";
    case "completed":
      return `completed in ${(job.timings.inference / 1000).toFixed(1)} s`;
    default:
      return "failed";
  }
}

function render(card, job) {
  card.dataset.status = job.status;
  card.querySelector(".job-status").textContent = describe(job);
  card.querySelector(".job-error").textContent = job.error;
  const bar = card.querySelector(".job-progress");
  bar.hidden = job.status === "completed" || job.status === "failed";
  if (job.status === "processing" && job.progress > 0) bar.value = job.progress;
  else bar.removeAttribute("value"); // indeterminate while waiting or without progress reports
}

// The result's signed URL needs no key, so the player streams and seeks it directly.
function showResult(card, job) {
  const after = card.querySelector(".job-after");
  after.querySelector("video").src = job.outputs[0];
  after.hidden = false;
  const link = card.querySelector(".job-download");
  link.href = job.outputs[0];
  link.download = `lipsync-${job.id}.mp4`;
  link.hidden = false;
}

async function follow(card, id) {
  for (;;) {
    let job;
    try {
      job = await call(`${API}/predictions/${id}/result`);
    } catch (error) {
      card.querySelector(".job-error").textContent = error.message;
      if (/no prediction/.test(error.message)) return; // forgotten by the server: stop asking
      await new Promise((done) => setTimeout(done, 5 * POLL_MS));
      continue;
    }
    render(card, job);
    if (job.status === "completed") return showResult(card, job);
    if (job.status === "failed") return;
    await new Promise((done) => setTimeout(done, POLL_MS));
  }
}

// On a phone the card or the error appears below the fold: bring it into view.
const reveal = (element) => element.scrollIntoView({ behavior: "smooth", block: "nearest" });

$("job-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = $("submit");
  const problem = $("form-error");
  button.disabled = true;
  problem.textContent = "";
  try {
    const settings = {};
    for (const [field, id] of Object.entries(KNOBS)) {
      const value = $(id).value.trim();
      if (value) settings[field] = field === "sync_mode" ? value : Number(value);
    }
    if (faceAt) settings.face_at = faceAt;
    const body = { video: await inputUrl("video"), audio: await inputUrl("audio"), ...settings };
    const job = await call(`${API}/bytedance/latentsync`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const file = $("video-file").files[0];
    const remembered = { id: job.id, video: inputName("video"), audio: inputName("audio"), settings };
    if (!file) remembered.before = body.video; // a file's preview lives only as long as this page
    rememberJob(remembered);
    uploads.clear(); // an upload is deleted when its jobs end: a later job uploads the file again
    const card = addCard({ ...remembered, before: file ? URL.createObjectURL(file) : body.video });
    render(card, job);
    reveal(card);
    follow(card, job.id);
  } catch (error) {
    problem.textContent = error.message;
    reveal(problem);
  } finally {
    button.disabled = false;
  }
});

for (const job of JSON.parse(localStorage.getItem("latentsync-jobs") || "[]").reverse()) {
  const remembered = typeof job === "string" ? { id: job } : job; // older pages kept only the ids
  follow(addCard(remembered), remembered.id);
}
