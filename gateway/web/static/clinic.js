// Clinic view: replace the table body with each server-rendered snapshot pushed over SSE,
// and acknowledge alerts without leaving the page (the form still works without JS).
"use strict";
(() => {
  const table = document.querySelector("table.clinic");
  const body = document.getElementById("patients");
  const live = document.getElementById("live");
  const units = table.dataset.units === "mmol/L" ? "mmol" : "mg";
  const setLive = (state, text) => { live.dataset.state = state; live.textContent = text; };

  const events = new EventSource("/events?units=" + units);
  events.addEventListener("open", () => setLive("live", "live"));
  events.addEventListener("error", () => setLive("reconnecting", "reconnecting…"));
  events.addEventListener("clinic", (ev) => {
    const snap = JSON.parse(ev.data);
    body.innerHTML = snap.rows;
    setLive("live", "live · updated " + new Date(snap.at).toLocaleTimeString());
  });
  window.addEventListener("pagehide", () => events.close());

  document.addEventListener("submit", async (ev) => {
    const form = ev.target;
    if (!form.matches("form.ack")) return;
    ev.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    button.textContent = "Acknowledging…";
    try {
      const r = await fetch(form.action, { method: "POST", headers: { Accept: "application/json" } });
      if (!r.ok) throw new Error("HTTP " + r.status);
      button.textContent = "Acknowledged";  // the next snapshot shows who and when
    } catch (err) {
      button.disabled = false;
      button.textContent = "Retry acknowledge";
      setLive("error", "acknowledge failed: " + err.message);
    }
  });
})();
