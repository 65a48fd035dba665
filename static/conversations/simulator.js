(function () {
  "use strict";
  const cfg = window.SIMULATOR;
  const thread = document.getElementById("thread");
  const form = document.getElementById("composer");
  const input = document.getElementById("text");
  const status = document.getElementById("status");
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const waId = () => document.getElementById("wa-id").value.trim();
  const name = () => document.getElementById("name").value.trim() || "Test customer";
  let lastRendered = "";

  async function send(payload) {
    status.textContent = "";
    const response = await fetch(cfg.send, {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
      body: JSON.stringify(Object.assign({wa_id: waId(), name: name()}, payload)),
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      status.textContent = cfg.labels.error + ": " + (body.message || response.status);
      return;
    }
    refresh();
  }

  function tick(state) {
    if (!state) return "";
    const marks = {pending: "🕓", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "⚠"};
    return '<span class="ticks ' + state + '" title="' + state + '">' + (marks[state] || "") + "</span>";
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function choice(label, description, onTap) {
    const button = el("button", "", label);
    button.type = "button";
    if (description) button.appendChild(el("span", "row-description", description));
    button.addEventListener("click", onTap);
    return button;
  }

  function render(messages) {
    const key = JSON.stringify(messages);
    if (key === lastRendered) return;
    lastRendered = key;
    thread.replaceChildren();
    for (const m of messages) {
      const item = el("li", "msg " + (m.from_customer ? "customer" : "business"));
      if (m.header) item.appendChild(el("span", "header", m.header));
      item.appendChild(document.createTextNode(m.text || "[" + m.type + "]"));
      if (m.footer) item.appendChild(el("span", "footer", m.footer));
      if (m.buttons && m.buttons.length) {
        const box = el("div", "choices");
        for (const b of m.buttons) box.appendChild(choice(b.title, "", () => send({reply_kind: "button_reply", reply_id: b.id, reply_title: b.title})));
        item.appendChild(box);
      }
      if (m.list) {
        const box = el("div", "choices");
        const rows = el("div", "choices");
        rows.hidden = true;
        box.appendChild(choice("☰ " + (m.list.button || cfg.labels.menu), "", () => { rows.hidden = !rows.hidden; }));
        for (const section of m.list.sections || []) {
          if (section.title) rows.appendChild(el("strong", "", section.title));
          for (const r of section.rows || []) rows.appendChild(choice(r.title, r.description || "", () => send({reply_kind: "list_reply", reply_id: r.id, reply_title: r.title})));
        }
        box.appendChild(rows);
        item.appendChild(box);
      }
      const meta = el("span", "meta");
      meta.innerHTML = new Date(m.time).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"}) + " " + tick(m.ticks);
      if (m.error) meta.title = cfg.labels.failed + ": " + m.error;
      item.appendChild(meta);
      thread.appendChild(item);
    }
    thread.scrollTop = thread.scrollHeight;
  }

  async function refresh() {
    if (!/^\d{6,15}$/.test(waId())) return;
    const response = await fetch(cfg.thread + "?wa_id=" + encodeURIComponent(waId()));
    if (response.ok) render((await response.json()).messages);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text.trim()) return;
    input.value = "";
    send({text: text});
  });
  document.getElementById("wa-id").addEventListener("change", () => { lastRendered = ""; refresh(); });
  refresh();
  setInterval(refresh, 1000);
})();
