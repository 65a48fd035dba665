// The agents' inbox: data from /api/v1/, live events from /ws/inbox/ (with catch-up after a drop).
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("inbox-config").textContent);
  const L = window.INBOX_LABELS;
  const $ = (id) => document.getElementById(id);
  const csrf = (document.cookie.match(/(?:^|; )csrftoken=([^;]+)/) || [])[1] || "";
  let openId = null;
  let openConversation = null;
  let lastEventId = sessionStorage.getItem("inbox.lastEventId") || "";
  let live = null;
  let refreshTimer = null;
  let threadTimer = null;
  let windowTimer = null;
  let shownSuggestions = [];
  let cannedTimer = null;
  let cannedFirst = null;
  let chosenSuggestion = null;
  let attachment = null;  // the File chosen in the composer, sent with the reply as its caption
  let templates = [];  // the approved templates of the open conversation (outside the window)
  let templatesFor = null;
  let sending = false;

  // JSON by default; a FormData body (an attachment) goes as multipart, its boundary set by the browser.
  async function api(path, options) {
    const multipart = options && options.body instanceof FormData;
    const headers = {"X-CSRFToken": decodeURIComponent(csrf)};
    if (!multipart) headers["Content-Type"] = "application/json";
    const response = await fetch(cfg.api + path, Object.assign({headers: headers, credentials: "same-origin"}, options || {}));
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.message || ("HTTP " + response.status));
    return body;
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function showError(message) {
    const box = $("error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  // --- the list ---------------------------------------------------------------------------
  function listQuery() {
    const params = new URLSearchParams();
    const scope = $("scope").value;
    if (scope) params.set(scope, "true");
    for (const name of ["status", "sentiment", "language"]) if ($(name).value.trim()) params.set(name, $(name).value.trim());
    if ($("search").value.trim()) params.set("q", $("search").value.trim());
    return "conversations/?" + params.toString();
  }

  async function loadList() {
    const data = await api(listQuery());
    const list = $("conversations");
    list.replaceChildren();
    for (const c of data.results) {
      const item = el("li", "conversation" + (c.id === openId ? " open" : ""));
      item.tabIndex = 0;
      item.dataset.id = c.id;
      const top = el("div", "row");
      top.appendChild(el("strong", "", c.contact.profile_name || "+" + c.contact.wa_id));
      if (c.unread_count) top.appendChild(el("span", "badge", String(c.unread_count)));
      item.appendChild(top);
      item.appendChild(el("div", "preview", c.last_message_preview));
      const meta = el("div", "row muted");
      meta.appendChild(el("span", "chip status-" + c.status, c.status));
      if (c.language) meta.appendChild(el("span", "chip", c.language));
      if (c.priority !== "normal") meta.appendChild(el("span", "chip priority-" + c.priority, c.priority));
      meta.appendChild(el("span", "", agentName(c.assigned_agent)));
      item.appendChild(meta);
      item.addEventListener("click", () => open(c.id));
      item.addEventListener("keydown", (event) => { if (event.key === "Enter") open(c.id); });
      list.appendChild(item);
    }
    $("list-empty").hidden = data.results.length > 0;
  }

  function agentName(id) {
    if (!id) return L.unassigned;
    if (id === cfg.user.id) return L.you;
    const agent = cfg.agents.find((a) => a.id === id);
    return agent ? agent.name : "#" + id;
  }

  // --- one conversation ---------------------------------------------------------------------
  async function open(id) {
    if (id !== openId) clearAttachment();
    openId = id;
    watch();
    document.body.classList.add("reading");
    showError("");
    await Promise.all([loadThread(), loadList()]);
  }

  async function loadThread() {
    if (!openId) return;
    let c;
    try {
      c = await api("conversations/" + openId + "/");
    } catch (error) {
      openId = null;
      watch();
      $("thread-view").hidden = true;
      $("thread-empty").hidden = false;
      return;
    }
    openConversation = c;
    $("thread-empty").hidden = true;
    $("thread-view").hidden = false;
    $("contact-name").textContent = c.contact.profile_name || "+" + c.contact.wa_id;
    $("contact-number").textContent = "+" + c.contact.wa_id;
    $("conversation-status").textContent = c.status + " · " + agentName(c.assigned_agent);
    $("takeover").hidden = c.status === "assigned" && c.assigned_agent === cfg.user.id;
    $("return-to-bot").hidden = !["waiting", "assigned"].includes(c.status);
    $("resolve").hidden = !["bot", "waiting", "assigned"].includes(c.status);
    if ($("assign")) $("assign").value = c.assigned_agent || "";
    renderMessages(c.messages);
    renderWindow();
    loadSide(c);
  }

  function mediaNode(media) {
    if (!media.url) {
      // Why it could not be fetched, in the agent's words; the technical reason on hover.
      if (!media.error) return el("p", "muted", "[" + media.kind + " · " + media.status + "]");
      const problem = el("p", "muted media-problem", "[" + media.kind + "] " + media.error);
      if (media.detail) problem.title = media.detail;
      return problem;
    }
    let node;
    if (media.kind === "image" || media.kind === "sticker") {
      node = document.createElement("img");
      node.alt = media.filename || media.kind;
      node.loading = "lazy";
    } else if (media.kind === "audio" || media.kind === "video") {
      node = document.createElement(media.kind);
      node.controls = true;
      node.preload = "none";
    } else {
      node = el("a", "", "📄 " + (media.filename || media.kind));
      node.href = media.url;
      return node;
    }
    node.src = media.url;
    node.className = "media";
    return node;
  }

  function renderMessages(messages) {
    const list = $("messages");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.replaceChildren();
    for (const m of messages) {
      const who = m.type === "note" ? "note" : (m.direction === "in" ? "customer" : m.author_kind);
      const item = el("li", "message " + who);
      item.dataset.id = m.id;
      if (m.type === "note") item.appendChild(el("span", "label", L.note));
      const original = m.content && m.content.original;
      if (m.translation) {
        const pair = el("div", "pair");
        pair.appendChild(el("p", "original", m.text));
        pair.appendChild(el("p", "translation", m.translation));
        item.appendChild(pair);
      } else if (original) {
        const pair = el("div", "pair");
        pair.appendChild(el("p", "original", original));
        pair.appendChild(el("p", "translation", m.text));
        item.appendChild(pair);
      } else if (!m.media) {
        item.appendChild(el("p", "text", m.text || "[" + m.type + "]"));
      }
      if (m.media) {
        item.appendChild(mediaNode(m.media));
        if (m.text && !m.translation && !original) item.appendChild(el("p", "text", m.text));
      }
      const meta = el("div", "meta");
      if (m.direction === "in") {
        if (m.language) meta.appendChild(el("span", "chip", m.language));
        if (m.intent) meta.appendChild(el("span", "chip", m.intent + (m.intent_confidence ? " " + Math.round(m.intent_confidence * 100) + "%" : "")));
        if (m.sentiment !== null && m.sentiment !== undefined) {
          const mood = m.sentiment < -0.25 ? "negative" : m.sentiment > 0.25 ? "positive" : "neutral";
          meta.appendChild(el("span", "chip mood-" + mood, (m.sentiment > 0 ? "+" : "") + m.sentiment.toFixed(2)));
        }
      }
      meta.appendChild(el("time", "", new Date(m.sent_at).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"})));
      if (m.delivery) {
        const marks = {pending: "🕓", sending: "🕓", held: "⏸", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "⚠"};
        const tick = el("span", "ticks " + m.delivery.status, marks[m.delivery.status] || m.delivery.status);
        tick.title = m.delivery.status + (m.delivery.error ? ": " + m.delivery.error : "");
        meta.appendChild(tick);
        if (m.delivery.status === "failed") meta.appendChild(el("span", "failed", L.failed + ": " + (m.delivery.error || "")));
        if (m.delivery.status === "held") meta.appendChild(el("span", "failed", m.delivery.error || ""));
      }
      item.appendChild(meta);
      if (m.reaction) item.appendChild(el("span", "reaction", m.reaction));
      list.appendChild(item);
    }
    if (atBottom || list.dataset.openId !== String(openId)) list.scrollTop = list.scrollHeight;
    list.dataset.openId = String(openId);
  }

  // --- the composer: the 24-hour window, templates, attachments ---------------------------
  function windowLeft() {
    const c = openConversation;
    return c && c.window_expires_at ? new Date(c.window_expires_at) - Date.now() : -1;
  }

  function countdownText(left) {
    const hours = Math.floor(left / 3600000);
    const minutes = Math.floor((left % 3600000) / 60000);
    const seconds = Math.floor((left % 60000) / 1000);
    const pad = (n) => String(n).padStart(2, "0");
    return hours ? hours + "h " + pad(minutes) + "m" : minutes + "m " + pad(seconds) + "s";
  }

  // Open window: free text and attachments, with the time left. Closed: the template picker
  // (notes are never sent, so they stay free text).
  function renderWindow() {
    clearInterval(windowTimer);
    const update = () => {
      const left = windowLeft();
      const closed = left <= 0;
      const picking = closed && !$("note").checked;
      $("window").textContent = closed ? L.windowClosed : L.windowOpen + " " + countdownText(left);
      const countdown = $("window-countdown");
      countdown.hidden = closed;
      countdown.textContent = closed ? "" : L.windowOpen + " " + countdownText(left);
      countdown.classList.toggle("soon", !closed && left < 3600000);
      $("window-closed").hidden = !picking;
      $("free-form").hidden = picking;
      $("attach-label").hidden = closed || $("note").checked;
      $("template-picker").hidden = !picking;
      $("send").textContent = picking ? L.sendTemplate : $("send").dataset.label;
      if (picking && templatesFor !== openId) loadTemplates();
      if (picking) renderTemplate();
      else $("send").disabled = sending;
      if (closed) clearInterval(windowTimer);
    };
    update();
    windowTimer = setInterval(update, 1000);
  }

  async function loadTemplates() {
    templatesFor = openId;
    templates = [];
    try {
      templates = await api("conversations/" + openId + "/templates/");
    } catch (error) {
      showError(error.message);
    }
    const select = $("template");
    select.replaceChildren(new Option(L.chooseTemplate, ""));
    for (const t of templates) select.appendChild(new Option(t.name + " · " + t.language, String(t.id)));
    $("template-none").hidden = templates.length > 0;
    if (templates.length) select.value = String(templates[0].id);  // the customer's language comes first
    renderVariables();
  }

  function chosenTemplate() {
    return templates.find((t) => String(t.id) === $("template").value) || null;
  }

  function renderVariables() {
    const box = $("template-variables");
    box.replaceChildren();
    const t = chosenTemplate();
    for (let i = 1; t && i <= t.variable_count; i++) {
      const input = el("input", "template-variable");
      input.dataset.index = String(i);
      input.placeholder = "{{" + i + "}}";
      input.setAttribute("aria-label", L.variable + " " + i);
      input.maxLength = 1024;
      input.addEventListener("input", renderTemplate);
      box.appendChild(input);
    }
    renderTemplate();
  }

  function templateVariables() {
    return Array.from($("template-variables").querySelectorAll("input")).map((input) => input.value.trim());
  }

  function renderTemplate() {
    const t = chosenTemplate();
    const values = templateVariables();
    const body = t ? t.body_text.replace(/\{\{\s*(\d+)\s*\}\}/g, (match, n) => values[n - 1] || "[" + n + "]") : "";
    $("template-preview").textContent = t ? [t.header_text, body, t.footer_text].filter(Boolean).join("\n") : "";
    $("send").disabled = sending || !t || values.some((value) => !value);
  }

  function chooseAttachment(file) {
    attachment = file || null;
    $("attachment-chosen").hidden = !attachment;
    $("attachment-name").textContent = attachment ? "📎 " + attachment.name + " (" + Math.max(1, Math.round(attachment.size / 1024)) + " KB)" : "";
  }

  function clearAttachment() {
    $("attachment").value = "";
    chooseAttachment(null);
  }

  function due(label, iso) {
    if (!iso) return null;
    const minutes = Math.round((new Date(iso) - Date.now()) / 60000);
    return el("p", minutes < 0 ? "due overdue" : "due", label + ": " + (minutes < 0 ? minutes + " min" : "in " + minutes + " min"));
  }

  async function loadTicket(c) {
    const box = $("ticket");
    let tickets = [];
    try {
      tickets = (await api("tickets/?conversation=" + c.id)).results || [];
    } catch (error) { /* tickets are a convenience here */ }
    box.replaceChildren();
    $("ticket-open").hidden = tickets.length > 0;
    if (!tickets.length) { box.appendChild(el("p", "muted", L.noTicket)); return; }
    const t = tickets[0];
    box.appendChild(el("strong", "", "#" + t.id + " " + t.title));
    const chips = el("p", "");
    chips.appendChild(el("span", "chip", t.status));
    chips.appendChild(el("span", "chip priority-" + t.priority, t.priority));
    if (t.sla_breached) chips.appendChild(el("span", "chip priority-urgent", L.breached));
    box.appendChild(chips);
    for (const item of [due(L.firstResponse, !t.first_responded_at && t.first_response_due_at), due(L.resolution, t.resolution_due_at)]) {
      if (item) box.appendChild(item);
    }
    box.appendChild(el("p", "risk", L.risk + ": " + t.risk_score + "/100"));
    const reasons = el("ul", "reasons");
    for (const factor of t.risk_factors || []) reasons.appendChild(el("li", "", factor.reason));
    box.appendChild(reasons);
  }

  async function loadSide(c) {
    $("side-pane").hidden = false;
    const details = $("contact-details");
    details.replaceChildren();
    for (const [label, value] of [["WhatsApp", "+" + c.contact.wa_id], ["Language", c.language || "—"], ["Tags", (c.tags || []).join(", ") || "—"]]) {
      details.appendChild(el("dt", "", label));
      details.appendChild(el("dd", "", value));
    }
    try {
      const history = await api("customers/" + c.contact.id + "/history/");
      const list = $("history");
      list.replaceChildren();
      for (const h of history) {
        if (h.id === c.id) continue;
        list.appendChild(el("li", "", (h.last_message_at || "").slice(0, 10) + " · " + h.status + " · " + h.last_message_preview));
      }
    } catch (error) { /* history is a convenience */ }
    loadTicket(c);
  }

  async function act(path, body) {
    if (!openId) return;
    showError("");
    try {
      await api("conversations/" + openId + "/" + path, {method: "POST", body: JSON.stringify(body || {})});
      await Promise.all([loadThread(), loadList()]);
    } catch (error) {
      showError(error.message);
    }
  }

  async function suggest() {
    if (!openId) return;
    const box = $("suggestions");
    box.replaceChildren();
    try {
      const suggestions = await api("conversations/" + openId + "/suggestions/", {method: "POST", body: "{}"});
      shownSuggestions = suggestions.map((s) => s.id);
      if (!suggestions.length) box.appendChild(el("p", "muted", L.noSuggestion));
      for (const s of suggestions) {
        const button = el("button", "suggestion");
        button.type = "button";
        button.appendChild(el("span", "label", s.origin === "knowledge" ? L.fromKnowledge : L.fromProvider));
        button.appendChild(el("span", "", s.text));
        if (s.citations && s.citations.length) button.appendChild(el("span", "muted", "📄 " + s.citations[0].title));
        button.addEventListener("click", () => { $("reply").value = s.text; chosenSuggestion = s.id; $("reply").focus(); });
        box.appendChild(button);
      }
    } catch (error) {
      showError(error.message);
    }
  }

  async function recordOutcomes(replyId) {
    for (const id of shownSuggestions) {
      const outcome = id === chosenSuggestion ? "accepted" : "ignored";
      const body = id === chosenSuggestion && replyId ? {outcome: outcome, reply: replyId} : {outcome: outcome};
      api("copilot/suggestions/" + id + "/outcome/", {method: "POST", body: JSON.stringify(body)}).catch(() => {});
    }
    shownSuggestions = [];
    chosenSuggestion = null;
    $("suggestions").replaceChildren();
  }

  function clientId() {
    return "web-" + Date.now() + "-" + Math.random().toString(36).slice(2, 8);
  }

  // What the composer sends now: a note, a template (window closed), an attachment, or text.
  function outgoing() {
    const note = $("note").checked;
    if (!note && windowLeft() <= 0) {
      const t = chosenTemplate();
      return t ? JSON.stringify({template: {id: t.id, variables: templateVariables()}, client_id: clientId()}) : null;
    }
    const text = $("reply").value;
    if (attachment && !note) {
      const form = new FormData();
      form.append("file", attachment, attachment.name);
      form.append("text", text);
      form.append("client_id", clientId());
      return form;
    }
    return text.trim() ? JSON.stringify({text: text, note: note, client_id: clientId()}) : null;
  }

  async function send(event) {
    event.preventDefault();
    const body = openId ? outgoing() : null;
    if (!body) return;
    const note = $("note").checked;
    sending = true;
    $("send").disabled = true;
    try {
      const sent = await api("conversations/" + openId + "/messages/", {method: "POST", body: body});
      $("reply").value = "";
      clearAttachment();
      for (const input of $("template-variables").querySelectorAll("input")) input.value = "";
      showError("");
      if (!note) recordOutcomes(sent.id);
      await Promise.all([loadThread(), loadList()]);
    } catch (error) {
      showError(error.message);  // the text and the file stay in the composer: nothing is lost
    } finally {
      sending = false;
      $("send").disabled = false;
      renderWindow();
    }
  }

  // --- live -------------------------------------------------------------------------------
  // The server sends ticks and ticket changes only for the conversation this page has open.
  function watch() {
    if (live) live.send({type: "watch", conversation: openId});
  }

  function scheduleThreadRefresh() {
    clearTimeout(threadTimer);
    threadTimer = setTimeout(loadThread, 120);
  }

  function scheduleRefresh(conversationId) {
    clearTimeout(refreshTimer);
    const thread = conversationId === undefined || conversationId === openId;
    refreshTimer = setTimeout(() => { loadList(); if (thread) loadThread(); }, 120);
  }

  function onEvent(message) {
    if (message.id) {
      lastEventId = message.id;
      sessionStorage.setItem("inbox.lastEventId", lastEventId);
    }
    const data = message.data || {};
    switch (message.type) {
      case "hello":
        $("connection").textContent = L.connected;
        $("connection").className = "connection live";
        watch();
        if (lastEventId) live.send({type: "catch_up", since: lastEventId});
        scheduleRefresh();
        break;
      case "message.created":
      case "message.analysed":
      case "conversation.updated":
        scheduleRefresh(data.conversation);
        break;
      case "ticket.updated":
      case "ticket.risk":
      case "ticket.sla_at_risk":
      case "ticket.sla_breached":
        if (openConversation && (data.conversations || []).includes(openConversation.id)) loadTicket(openConversation);
        break;
      case "message.status":
      case "message.reaction":
        if (data.conversation === openId) scheduleThreadRefresh();
        break;
      case "agent.typing":
        if (data.conversation === openId && data.agent !== cfg.user.id) {
          const typing = $("typing");
          typing.textContent = data.name + " " + L.typing;
          typing.hidden = false;
          clearTimeout(typing._timer);
          typing._timer = setTimeout(() => { typing.hidden = true; }, 4000);
        }
        break;
      case "conversation.assigned":
        scheduleRefresh(data.conversation);
        if (!message.replayed && window.Notification && Notification.permission === "granted" && document.hidden) {
          new Notification(L.newAssignment);
        }
        break;
      default:
        break;
    }
  }


  // --- wiring -----------------------------------------------------------------------------
  $("filters").addEventListener("input", () => loadList());
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); loadList(); });
  $("composer").addEventListener("submit", send);
  $("send").dataset.label = $("send").textContent;
  $("note").addEventListener("change", renderWindow);
  $("attachment").addEventListener("change", (event) => chooseAttachment(event.target.files[0]));
  $("attachment-remove").addEventListener("click", clearAttachment);
  $("template").addEventListener("change", renderVariables);
  $("reply").addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey) return;
    event.preventDefault();
    if (cannedFirst && /^\/[a-z0-9-]*$/.test($("reply").value)) {
      $("reply").value = cannedFirst.text;  // Enter on "/refund" inserts the saved reply, never sends "/refund"
      cannedFirst = null;
      $("suggestions").replaceChildren();
      return;
    }
    $("composer").requestSubmit();
  });
  // Canned responses: "/shortcut" at the start of the reply opens the menu; Tab or a click inserts.
  async function canned() {
    const box = $("suggestions");
    const match = $("reply").value.match(/^\/([a-z0-9-]*)$/);
    if (!match) { if (box.dataset.kind === "canned") { box.replaceChildren(); box.dataset.kind = ""; } cannedFirst = null; return; }
    const items = await api("canned-responses/?q=" + encodeURIComponent(match[1])).catch(() => []);
    box.replaceChildren();
    box.dataset.kind = "canned";
    cannedFirst = items.length ? items[0] : null;
    for (const item of items) {
      const button = el("button", "suggestion canned");
      button.type = "button";
      button.appendChild(el("span", "label", "/" + item.shortcut + " · " + item.title));
      button.appendChild(el("span", "", item.text));
      button.addEventListener("click", () => { $("reply").value = item.text; box.replaceChildren(); $("reply").focus(); });
      box.appendChild(button);
    }
  }
  $("reply").addEventListener("keydown", (event) => {
    if (event.key === "Tab" && cannedFirst) {
      event.preventDefault();
      $("reply").value = cannedFirst.text;
      cannedFirst = null;
      $("suggestions").replaceChildren();
    }
  });
  $("reply").addEventListener("input", () => {
    clearTimeout(cannedTimer);
    cannedTimer = setTimeout(canned, 120);
    if (live && openId) live.send({type: "typing", conversation: openId});
  });
  $("suggest").addEventListener("click", suggest);
  $("ticket-open").addEventListener("click", async () => {
    if (!openConversation) return;
    try {
      await api("tickets/from-conversation/", {method: "POST", body: JSON.stringify({conversation: openConversation.id})});
      loadTicket(openConversation);
    } catch (error) { showError(error.message); }
  });
  $("takeover").addEventListener("click", () => act("takeover/"));
  $("return-to-bot").addEventListener("click", () => act("return-to-bot/"));
  $("resolve").addEventListener("click", () => act("resolve/"));
  if ($("assign")) $("assign").addEventListener("change", (event) => { if (event.target.value) act("assign/", {agent: Number(event.target.value)}); });
  $("back").addEventListener("click", () => { document.body.classList.remove("reading"); });
  document.addEventListener("keydown", (event) => {
    if (event.key === "/" && document.activeElement.tagName !== "TEXTAREA" && document.activeElement.tagName !== "INPUT") {
      event.preventDefault();
      $("search").focus();
    }
  });
  if (window.Notification && Notification.permission === "default") {
    document.addEventListener("click", () => Notification.requestPermission(), {once: true});
  }
  loadList();
  live = window.imaradeskLive(cfg.socket, onEvent, L.reconnecting);
})();
