// The live ticket queue: ticking SLA countdowns, rows refreshed from the server on socket events,
// and an announcement when a ticket becomes at risk or breaches. No framework, like the inbox.
(function () {
  "use strict";
  const cfg = window.QUEUE_CONFIG;
  const L = cfg.labels;
  const $ = (id) => document.getElementById(id);
  let refreshTimer = null;

  function duration(seconds) {
    const s = Math.max(0, Math.floor(Math.abs(seconds)));
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d > 0) return d + " " + L.units.d + " " + h + " " + L.units.h;
    if (h > 0) return h + " " + L.units.h + " " + String(m).padStart(2, "0") + " " + L.units.min;
    if (m > 0) return m + " " + L.units.min + " " + String(s % 60).padStart(2, "0") + " " + L.units.s;
    return (s % 60) + " " + L.units.s;
  }

  function tick() {
    const now = Date.now();
    document.querySelectorAll("#queue .countdown[data-due]").forEach((el) => {
      const left = (Date.parse(el.dataset.due) - now) / 1000;
      const overdue = left <= 0;
      const text = overdue ? L.overdue + " " + duration(left) : L.dueIn + " " + duration(left);
      if (el.textContent !== text) el.textContent = text;
      el.classList.toggle("overdue", overdue);
      el.classList.toggle("soon", !overdue && left <= 30 * 60);
    });
  }

  function describePaused(root) {
    root.querySelectorAll(".left-at-pause[data-seconds]").forEach((el) => {
      const seconds = Number(el.dataset.seconds);
      el.textContent = "(" + duration(seconds) + " " + (seconds >= 0 ? L.leftAtPause : L.overdueAtPause) + ")";
    });
  }

  function query() {
    const params = new URLSearchParams(new FormData($("queue-filters")));
    for (const [key, value] of [...params.entries()]) if (!value) params.delete(key);
    return params.toString();
  }

  async function refresh() {
    const focused = document.activeElement && document.activeElement.closest("#queue tr[data-ticket]");
    const focusedId = focused ? focused.dataset.ticket : null;
    const qs = query();
    const response = await fetch(cfg.rows + (qs ? "?" + qs : ""), {credentials: "same-origin", headers: {Accept: "text/html"}});
    if (!response.ok) return;
    $("queue").innerHTML = await response.text();
    describePaused($("queue"));
    tick();
    if (focusedId) {
      const row = document.querySelector('#queue tr[data-ticket="' + focusedId + '"]');
      if (row) row.focus();
    }
  }

  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, 150);
  }

  function announce(kind, data) {
    const row = document.querySelector('#queue tr[data-ticket="' + data.ticket + '"]');
    const title = row ? row.dataset.title : "";
    const metric = L.metrics[data.metric] || data.metric;
    const item = document.createElement("p");
    item.className = "announcement " + (kind === "breached" ? "breach" : "risk");
    item.textContent = (kind === "breached" ? L.breached : L.atRisk) + " · " + L.ticket + " #" + data.ticket +
      (title ? " «" + title + "»" : "") + " · " + metric + " · " + new Date().toLocaleTimeString();
    const box = $("announcements");
    box.prepend(item);
    while (box.children.length > 5) box.lastElementChild.remove();
    if (row) {
      row.classList.add("flash");
      setTimeout(() => row.classList.remove("flash"), 4000);
    }
  }

  function onEvent(message) {
    const data = message.data || {};
    switch (message.type) {
      case "hello":
        $("connection").textContent = L.connected;
        $("connection").className = "connection live";
        scheduleRefresh(); // whatever changed while the socket was down
        break;
      case "ticket.sla_breached":
      case "ticket.sla_at_risk":
        if (!message.replayed) announce(message.type === "ticket.sla_breached" ? "breached" : "at_risk", data);
        scheduleRefresh();
        break;
      case "ticket.updated":
      case "ticket.risk":
        scheduleRefresh();
        break;
      default:
        break;
    }
  }

  // Keyboard: arrows move between tickets, Enter opens the focused one.
  $("queue").addEventListener("keydown", (event) => {
    const row = event.target.closest("tr[data-ticket]");
    if (!row) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      const next = event.key === "ArrowDown" ? row.nextElementSibling : row.previousElementSibling;
      if (next && next.dataset.ticket) { next.focus(); event.preventDefault(); }
    } else if (event.key === "Enter" && event.target === row) {
      const link = row.querySelector("a");
      if (link) link.click();
    }
  });

  $("queue-filters").addEventListener("change", () => {
    const qs = query();
    history.replaceState(null, "", location.pathname + (qs ? "?" + qs : ""));
    refresh();
  });

  setInterval(tick, 1000);
  // Risk and wording also move with time alone: reload the rows now and then even when all is quiet.
  setInterval(scheduleRefresh, 60000);
  describePaused(document);
  tick();
  window.imaradeskLive(cfg.socket, onEvent, L.reconnecting);
})();
