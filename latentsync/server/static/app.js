// The page is a client of the server's public API: upload, submit, poll, fetch the result.
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

// A chosen file is uploaded first; otherwise the pasted URL is the input.
async function inputUrl(kind) {
  const file = $(`${kind}-file`).files[0];
  if (file) {
    const form = new FormData();
    form.append("file", file);
    return (await call(`${API}/media/upload/binary`, { method: "POST", body: form })).download_url;
  }
  const url = $(`${kind}-url`).value.trim();
  if (!url) throw new Error(`choose a ${kind} file or paste its URL`);
  return url;
}

function rememberJob(id) {
  const ids = JSON.parse(localStorage.getItem("latentsync-jobs") || "[]").filter((j) => j !== id);
  localStorage.setItem("latentsync-jobs", JSON.stringify([id, ...ids].slice(0, KEPT_JOBS)));
}

function addCard(id) {
  const card = $("job-template").content.firstElementChild.cloneNode(true);
  card.dataset.id = id;
  card.querySelector(".job-title").textContent = `Job ${id.slice(0, 8)}`;
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

// The video is fetched with the key (a <video src> could not send it) and played from memory.
async function showResult(card, job) {
  const response = await fetch(`${API}/predictions/${job.id}/output.mp4`, { headers: withKey() });
  if (!response.ok) throw new Error(`the result video could not be fetched (HTTP ${response.status})`);
  const url = URL.createObjectURL(await response.blob());
  const video = card.querySelector(".job-video");
  video.src = url;
  video.hidden = false;
  const link = card.querySelector(".job-download");
  link.href = url;
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
    if (job.status === "completed") {
      try {
        await showResult(card, job);
      } catch (error) {
        card.querySelector(".job-error").textContent = error.message;
      }
      return;
    }
    if (job.status === "failed") return;
    await new Promise((done) => setTimeout(done, POLL_MS));
  }
}

const NUMBER_FIELDS = { steps: "steps", guidance_scale: "guidance-scale", seed: "seed" };

// The settings start at the server's inference defaults (one source for the CLI, the API and this page).
fetch("health")
  .then((response) => response.json())
  .then(({ defaults }) => {
    $("sync-mode").value = defaults.sync_mode;
    for (const [name, id] of Object.entries(NUMBER_FIELDS)) {
      if ($(id).value === "") $(id).value = defaults[name];
    }
  })
  .catch(() => {}); // the fields stay empty and the server applies its defaults

$("job-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = $("submit");
  const problem = $("form-error");
  button.disabled = true;
  problem.textContent = "";
  try {
    const body = {
      video: await inputUrl("video"),
      audio: await inputUrl("audio"),
      sync_mode: $("sync-mode").value,
    };
    // A field left empty takes the server's default.
    for (const [name, id] of Object.entries(NUMBER_FIELDS)) {
      if ($(id).value !== "") body[name] = Number($(id).value);
    }
    const job = await call(`${API}/bytedance/latentsync`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    rememberJob(job.id);
    const card = addCard(job.id);
    render(card, job);
    follow(card, job.id);
  } catch (error) {
    problem.textContent = error.message;
  } finally {
    button.disabled = false;
  }
});

for (const id of JSON.parse(localStorage.getItem("latentsync-jobs") || "[]").reverse()) {
  follow(addCard(id), id);
}
