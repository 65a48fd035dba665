/* The visual flow builder: a Drawflow canvas over the flows API (/api/v1/flows/<id>/...).
 *
 * The page keeps its own model of the graph ({id, type, config, next, position} per node,
 * the same JSON the engine runs) and redraws Drawflow from it; canvas events (connect,
 * disconnect, move, delete) update the model. Output dots are the node's branches, in the
 * order of the palette's "outputs" (Quick Replies: one per button, then "no valid answer").
 */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("builder-config").textContent);
  const T = config.text;
  const TYPES = {};
  config.palette.forEach(function (entry) { TYPES[entry.type] = entry; });
  const API = config.api;
  const csrf = decodeURIComponent((document.cookie.match(/(?:^|; )csrftoken=([^;]+)/) || [])[1] || "");

  const $ = function (id) { return document.getElementById(id); };
  const canvasEl = $("canvas");
  const editor = new Drawflow(canvasEl);
  editor.reroute = false;
  editor.force_first_input = true; // dropping a link anywhere on a step connects it
  editor.start();
  if (!config.canEdit) editor.editor_mode = "view";

  let flow = null;          // the API's view of the flow (name, updated, is_active, ...)
  let nodes = {};           // our node id -> {id, type, config, next, position}
  let dfOf = {};            // our node id -> Drawflow id
  let idOf = {};            // Drawflow id -> our node id
  let selected = null;      // our id of the node in the side panel
  let problems = [];
  let dirty = false;
  let rendering = false;
  let checkTimer = null;

  // --- talking to the API --------------------------------------------------------------

  async function call(method, path, body, form) {
    const init = {method: method, credentials: "same-origin", headers: {"X-CSRFToken": csrf, "Accept": "application/json"}};
    if (form) {
      init.body = form;
    } else if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(API + path, init);
    } catch (err) {
      return {ok: false, status: 0, data: {message: T.failed}};
    }
    let data = {};
    try { data = await response.json(); } catch (err) { data = {message: T.failed}; }
    return {ok: response.ok, status: response.status, data: data};
  }

  function say(text, kind) {
    const el = $("message");
    el.textContent = text || "";
    el.hidden = !text;
    el.className = "builder-message " + (kind || "error");
  }

  function errorText(data) {
    if (data && data.extra && data.extra.fields) {
      const parts = [];
      Object.keys(data.extra.fields).forEach(function (key) { parts.push(key + ": " + [].concat(data.extra.fields[key]).join(" ")); });
      return (data.message || "") + " " + parts.join("; ");
    }
    return (data && data.message) || T.failed;
  }

  // --- the model -------------------------------------------------------------------------

  function esc(text) {
    const div = document.createElement("div");
    div.textContent = text == null ? "" : String(text);
    return div.innerHTML;
  }

  function outputsOf(node) {
    const entry = TYPES[node.type];
    if (!entry) return [];
    if (entry.outputs === "options") {
      return (node.config.options || []).map(function (o) { return [String(o.id), o.title || String(o.id)]; })
        .concat(entry.extra_outputs || []);
    }
    return entry.outputs;
  }

  function summaryOf(node) {
    const c = node.config || {};
    switch (node.type) {
      case "trigger":
        if (c.kind === "keyword") return (c.keywords || []).join(", ");
        if (c.kind === "regex") return c.pattern || "";
        return (TYPES.trigger.fields[0].choices.find(function (ch) { return ch[0] === (c.kind || "catch_all"); }) || ["", ""])[1];
      case "send_message": case "quick_replies": case "human_handoff": return c.text || "";
      case "ai_response": return c.prompt || "";
      case "knowledge_base": return c.question || "";
      case "delay": return (c.seconds || 0) + " s";
      case "action": return (c.action || "") + (c.value ? ": " + c.value : "");
      case "api_call": return (c.method || "GET") + " " + (c.url || "");
      case "condition": return (c.rules || []).map(function (r) { return (r.field || "") + " " + (r.op || "") + " " + (r.value || ""); }).join(c.match === "any" ? " / " : " & ");
      case "smart_reply": return (c.replies || []).map(function (r) { return (r.keywords || []).join(", "); }).join(" | ");
      default: return "";
    }
  }

  function graph() {
    const list = Object.values(nodes).sort(function (a, b) { return (a.type === "trigger" ? 0 : 1) - (b.type === "trigger" ? 0 : 1); });
    return {nodes: list.map(function (n) {
      return {id: n.id, type: n.type, config: n.config, next: n.next, position: n.position};
    })};
  }

  function load(draft) {
    nodes = {};
    ((draft && draft.nodes) || []).forEach(function (raw, index) {
      const position = raw.position || {x: 60 + (index % 4) * 280, y: 60 + Math.floor(index / 4) * 200};
      nodes[raw.id] = {id: raw.id, type: raw.type, config: raw.config || {}, next: raw.next || {}, position: position};
    });
    selected = null;
    render();
    showSettings();
  }

  function markDirty() {
    dirty = true;
    state();
    scheduleCheck();
  }

  // --- the canvas --------------------------------------------------------------------------

  function nodeHtml(node) {
    const entry = TYPES[node.type] || {label: node.type};
    return '<div class="df-node" data-node="' + esc(node.id) + '" data-type="' + esc(node.type) + '">' +
      '<div class="df-title">' + esc(entry.label) + '</div>' +
      '<div class="df-summary">' + esc(summaryOf(node)).slice(0, 140) + '</div>' +
      '<div class="df-problem" hidden></div></div>';
  }

  function labelOutputs(node) {
    const el = document.querySelector("#node-" + dfOf[node.id] + " .outputs");
    if (!el) return;
    const outputs = outputsOf(node);
    el.querySelectorAll(".output").forEach(function (dot, index) {
      const out = outputs[index];
      if (!out) return;
      dot.setAttribute("data-branch", out[0]);
      dot.setAttribute("data-label", out[1]);
      dot.title = out[1];
    });
  }

  function render() {
    rendering = true;
    editor.clear();
    dfOf = {};
    idOf = {};
    Object.values(nodes).forEach(function (node) {
      const outputs = outputsOf(node).length;
      const inputs = node.type === "trigger" ? 0 : 1;
      const dfId = editor.addNode(node.type, inputs, outputs, node.position.x, node.position.y,
        "step step-" + node.type, {id: node.id}, nodeHtml(node));
      dfOf[node.id] = dfId;
      idOf[String(dfId)] = node.id;
    });
    Object.values(nodes).forEach(function (node) {
      const outputs = outputsOf(node).map(function (o) { return o[0]; });
      Object.keys(node.next).forEach(function (branch) {
        const index = outputs.indexOf(branch);
        const target = node.next[branch];
        if (index >= 0 && dfOf[target] !== undefined && nodes[target].type !== "trigger") {
          editor.addConnection(dfOf[node.id], dfOf[target], "output_" + (index + 1), "input_1");
        }
      });
      labelOutputs(node);
    });
    rendering = false;
    // The redraw removed the elements Drawflow remembered as selected: forget them, so its
    // Delete key never aims at a step that is gone.
    editor.node_selected = null;
    editor.connection_selected = null;
    showProblems();
  }

  function refreshNode(node) {
    const el = document.querySelector("#node-" + dfOf[node.id] + " .df-summary");
    if (el) el.textContent = summaryOf(node).slice(0, 140);
    labelOutputs(node);
  }

  editor.on("connectionCreated", function (c) {
    if (rendering) return;
    const source = nodes[idOf[String(c.output_id)]];
    const target = idOf[String(c.input_id)];
    if (!source || !target) return;
    const out = outputsOf(source)[parseInt(c.output_class.replace("output_", ""), 10) - 1];
    if (!out) return;
    const previous = source.next[out[0]];
    source.next[out[0]] = target;
    if (previous && previous !== target && dfOf[previous] !== undefined) {
      // One branch leads to one step: the new link replaces the old one.
      rendering = true;
      editor.removeSingleConnection(c.output_id, dfOf[previous], c.output_class, "input_1");
      rendering = false;
    }
    markDirty();
  });

  editor.on("connectionRemoved", function (c) {
    if (rendering) return;
    const source = nodes[idOf[String(c.output_id)]];
    const target = idOf[String(c.input_id)];
    if (!source) return;
    const out = outputsOf(source)[parseInt(c.output_class.replace("output_", ""), 10) - 1];
    if (out && source.next[out[0]] === target) {
      delete source.next[out[0]];
      markDirty();
    }
  });

  editor.on("nodeRemoved", function (dfId) {
    if (rendering) return;
    const id = idOf[String(dfId)];
    if (!id) return;
    delete nodes[id];
    Object.values(nodes).forEach(function (node) {
      Object.keys(node.next).forEach(function (branch) { if (node.next[branch] === id) delete node.next[branch]; });
    });
    if (selected === id) { selected = null; showSettings(); }
    markDirty();
  });

  editor.on("nodeMoved", function (dfId) {
    const node = nodes[idOf[String(dfId)]];
    if (!node) return;
    const data = editor.getNodeFromId(dfId);
    node.position = {x: Math.round(data.pos_x), y: Math.round(data.pos_y)};
    markDirty();
  });

  editor.on("nodeSelected", function (dfId) {
    selected = idOf[String(dfId)] || null;
    showSettings();
  });

  editor.on("nodeUnselected", function () {
    selected = null;
    showSettings();
  });

  // --- the palette: drag a step onto the canvas ----------------------------------------------

  function newId(type) {
    let n = 1;
    while (nodes[type + "_" + n]) n += 1;
    return type + "_" + n;
  }

  function addStep(type, clientX, clientY) {
    if (type === "trigger" && Object.values(nodes).some(function (n) { return n.type === "trigger"; })) {
      say(T.oneTrigger);
      return;
    }
    const rect = editor.precanvas.getBoundingClientRect();
    const x = Math.round((clientX - rect.x) / editor.zoom - 40);
    const y = Math.round((clientY - rect.y) / editor.zoom - 20);
    const id = newId(type);
    nodes[id] = {id: id, type: type, config: JSON.parse(JSON.stringify(TYPES[type].defaults)), next: {}, position: {x: x, y: y}};
    render();
    selected = id;
    showSettings();
    document.querySelector("#node-" + dfOf[id]).classList.add("selected");
    say("");
    markDirty();
  }

  function buildPalette() {
    const list = $("palette");
    config.palette.forEach(function (entry) {
      const item = document.createElement("li");
      item.className = "palette-item step-" + entry.type;
      item.dataset.type = entry.type;
      item.title = entry.help;
      item.innerHTML = "<strong>" + esc(entry.label) + "</strong><span>" + esc(entry.help) + "</span>";
      if (config.canEdit) {
        item.tabIndex = 0;
        item.setAttribute("role", "button");
        item.addEventListener("pointerdown", startDrag);
        // Without a mouse: Enter or Space puts the step in the middle of the canvas.
        item.addEventListener("keydown", function (e) {
          if (e.key !== "Enter" && e.key !== " ") return;
          e.preventDefault();
          const rect = canvasEl.getBoundingClientRect();
          addStep(entry.type, rect.left + rect.width / 2, rect.top + rect.height / 3);
        });
      }
      list.appendChild(item);
    });
  }

  function startDrag(event) {
    if (event.button !== 0) return;
    event.preventDefault();
    const type = event.currentTarget.dataset.type;
    const ghost = document.createElement("div");
    ghost.className = "palette-ghost";
    ghost.textContent = TYPES[type].label;
    document.body.appendChild(ghost);
    $("builder").classList.add("dragging");
    const move = function (e) {
      ghost.style.left = e.clientX + 8 + "px";
      ghost.style.top = e.clientY + 8 + "px";
    };
    const up = function (e) {
      document.removeEventListener("pointermove", move);
      document.removeEventListener("pointerup", up);
      ghost.remove();
      $("builder").classList.remove("dragging");
      const selection = window.getSelection();
      if (selection) selection.removeAllRanges();
      const rect = canvasEl.getBoundingClientRect();
      if (e.clientX >= rect.left && e.clientX <= rect.right && e.clientY >= rect.top && e.clientY <= rect.bottom) {
        addStep(type, e.clientX, e.clientY);
      }
    };
    move(event);
    document.addEventListener("pointermove", move);
    document.addEventListener("pointerup", up);
  }

  // --- the side panel: one node's settings -----------------------------------------------------

  function visible(field, cfg) {
    if (!field.show_if) return true;
    return Object.keys(field.show_if).every(function (key) {
      return field.show_if[key].indexOf(cfg[key] == null ? "" : String(cfg[key])) >= 0;
    });
  }

  function labelled(text, control) {
    const label = document.createElement("label");
    label.className = "field";
    const span = document.createElement("span");
    span.textContent = text;
    label.appendChild(span);
    label.appendChild(control);
    return label;
  }

  function input(value, onChange, attrs) {
    const el = document.createElement(attrs && attrs.multiline ? "textarea" : "input");
    if (attrs && attrs.type) el.type = attrs.type;
    if (attrs && attrs.maxlength) el.maxLength = attrs.maxlength;
    if (attrs && attrs.placeholder) el.placeholder = attrs.placeholder;
    if (attrs && attrs.name) el.name = attrs.name;
    el.value = value == null ? "" : value;
    el.disabled = !config.canEdit;
    el.addEventListener("input", function () { onChange(el.value); });
    return el;
  }

  function select(choices, value, onChange, name) {
    const el = document.createElement("select");
    if (name) el.name = name;
    choices.forEach(function (choice) {
      const option = document.createElement("option");
      option.value = choice[0];
      option.textContent = choice[1];
      el.appendChild(option);
    });
    el.value = value == null ? choices[0][0] : value;
    el.disabled = !config.canEdit;
    el.addEventListener("change", function () { onChange(el.value); });
    return el;
  }

  function button(text, onClick, cls) {
    const el = document.createElement("button");
    el.type = "button";
    el.className = "button " + (cls || "");
    el.textContent = text;
    el.disabled = !config.canEdit;
    el.addEventListener("click", onClick);
    return el;
  }

  function csv(text) {
    return text.split(",").map(function (w) { return w.trim(); }).filter(Boolean);
  }

  function changed(node, relayout) {
    refreshNode(node);
    if (relayout) render();
    markDirty();
  }

  function fieldControl(node, field) {
    const c = node.config;
    const set = function (value) { c[field.key] = value; changed(node, false); };
    switch (field.kind) {
      case "textarea":
        return labelled(field.label, input(c[field.key], set, {multiline: true, maxlength: field.maxlength, name: field.key}));
      case "number":
        return labelled(field.label, input(c[field.key], function (v) {
          if (v === "") { delete c[field.key]; } else { c[field.key] = parseInt(v, 10); }
          changed(node, false);
        }, {type: "number", name: field.key}));
      case "select":
        return labelled(field.label, select(field.choices, c[field.key], function (v) {
          if (v === "") { delete c[field.key]; } else { c[field.key] = v; }
          changed(node, false);
          showSettings();
        }, field.key));
      case "csv":
        return labelled(field.label, input((c[field.key] || []).join(", "), function (v) { set(csv(v)); }, {name: field.key}));
      case "headers": {
        const lines = Object.keys(c.headers || {}).map(function (k) { return k + ": " + c.headers[k]; }).join("\n");
        return labelled(field.label, input(lines, function (v) {
          const headers = {};
          v.split("\n").forEach(function (line) {
            const at = line.indexOf(":");
            if (at > 0) headers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
          });
          set(headers);
        }, {multiline: true, name: field.key}));
      }
      case "options": return optionsControl(node, field);
      case "rules": return rulesControl(node, field);
      case "replies": return repliesControl(node, field);
      default:
        return labelled(field.label, input(c[field.key], set, {maxlength: field.maxlength, name: field.key}));
    }
  }

  function group(title) {
    const box = document.createElement("fieldset");
    box.className = "field-group";
    const legend = document.createElement("legend");
    legend.textContent = title;
    box.appendChild(legend);
    return box;
  }

  function optionsControl(node, field) {
    const box = group(field.label);
    const options = node.config.options = node.config.options || [];
    options.forEach(function (option, index) {
      const row = document.createElement("div");
      row.className = "row";
      row.appendChild(input(option.title, function (v) { option.title = v; changed(node, false); },
        {maxlength: field.maxlength, name: "option-" + index}));
      row.appendChild(button(T.remove, function () {
        options.splice(index, 1);
        Object.keys(node.next).forEach(function (b) { if (b === String(option.id)) delete node.next[b]; });
        changed(node, true);
        showSettings();
      }, "small"));
      box.appendChild(row);
    });
    if (options.length < field.max) {
      box.appendChild(button(T.addOption, function () {
        let n = options.length + 1;
        const ids = options.map(function (o) { return String(o.id); });
        while (ids.indexOf("option_" + n) >= 0) n += 1;
        options.push({id: "option_" + n, title: ""});
        changed(node, true);
        showSettings();
      }, "small add-option"));
    }
    return box;
  }

  function rulesControl(node, field) {
    const box = group(field.label);
    const rules = node.config.rules = node.config.rules || [];
    rules.forEach(function (rule, index) {
      const row = document.createElement("div");
      row.className = "row rule";
      row.appendChild(select(field.fields, rule.field || "text", function (v) { rule.field = v; changed(node, false); showSettings(); }, "rule-field-" + index));
      if (rule.field === "variable") {
        row.appendChild(input(rule.name, function (v) { rule.name = v; changed(node, false); }, {placeholder: T.variableName, name: "rule-name-" + index}));
      }
      row.appendChild(select(field.ops, rule.op || "equals", function (v) { rule.op = v; changed(node, false); }, "rule-op-" + index));
      row.appendChild(input(rule.value, function (v) { rule.value = v; changed(node, false); }, {placeholder: T.value, name: "rule-value-" + index}));
      row.appendChild(button(T.remove, function () { rules.splice(index, 1); changed(node, false); showSettings(); }, "small"));
      box.appendChild(row);
    });
    box.appendChild(button(T.addRule, function () {
      rules.push({field: "text", op: "contains", value: ""});
      changed(node, false);
      showSettings();
    }, "small"));
    return box;
  }

  function repliesControl(node, field) {
    const box = group(field.label);
    const replies = node.config.replies = node.config.replies || [];
    replies.forEach(function (reply, index) {
      const row = document.createElement("div");
      row.className = "row reply";
      row.appendChild(labelled(T.words, input((reply.keywords || []).join(", "), function (v) { reply.keywords = csv(v); changed(node, false); }, {name: "reply-words-" + index})));
      row.appendChild(labelled(T.answer, input(reply.text, function (v) { reply.text = v; changed(node, false); }, {multiline: true, name: "reply-text-" + index})));
      row.appendChild(button(T.remove, function () { replies.splice(index, 1); changed(node, false); showSettings(); }, "small"));
      box.appendChild(row);
    });
    box.appendChild(button(T.addReply, function () {
      replies.push({keywords: [], text: ""});
      changed(node, false);
      showSettings();
    }, "small"));
    return box;
  }

  function showSettings() {
    const box = $("settings");
    box.innerHTML = "";
    const node = selected && nodes[selected];
    if (!node) {
      box.innerHTML = '<p class="help">' + esc(config.canEdit ? "" : T.readOnly) + "</p>";
      return;
    }
    const entry = TYPES[node.type];
    const title = document.createElement("h2");
    title.textContent = entry.label;
    box.appendChild(title);
    const help = document.createElement("p");
    help.className = "help";
    help.textContent = entry.help;
    box.appendChild(help);
    const problem = problems.find(function (p) { return p.node === node.id; });
    if (problem) {
      const warn = document.createElement("p");
      warn.className = "node-problem";
      warn.setAttribute("role", "alert");
      warn.textContent = problem.message;
      box.appendChild(warn);
    }
    const form = document.createElement("form");
    form.className = "settings-form";
    form.dataset.node = node.id;
    form.addEventListener("submit", function (e) { e.preventDefault(); });
    entry.fields.forEach(function (field) {
      if (visible(field, node.config)) form.appendChild(fieldControl(node, field));
    });
    box.appendChild(form);
    const id = document.createElement("p");
    id.className = "help node-id";
    id.textContent = "id: " + node.id;
    box.appendChild(id);
    if (config.canEdit) {
      box.appendChild(button(T.deleteStep, function () {
        editor.removeNodeId("node-" + dfOf[node.id]);
      }, "delete-step"));
    }
  }

  // --- publish problems, checked as the admin edits ----------------------------------------------

  function scheduleCheck() {
    clearTimeout(checkTimer);
    checkTimer = setTimeout(check, 400);
  }

  async function check() {
    const result = await call("POST", "check/", {graph: graph()});
    if (result.ok) {
      problems = result.data;
      showProblems();
      const open = $("settings").querySelector(".node-problem");
      const mine = problems.find(function (p) { return p.node === selected; });
      if ((open ? open.textContent : "") !== (mine ? mine.message : "")) showSettings();
    }
  }

  function showProblems() {
    document.querySelectorAll(".drawflow-node").forEach(function (el) { el.classList.remove("has-problem"); });
    document.querySelectorAll(".df-problem").forEach(function (el) { el.hidden = true; el.textContent = ""; });
    const box = $("problems");
    box.innerHTML = "";
    const title = document.createElement("h3");
    title.textContent = problems.length ? T.problemsTitle : T.noProblems;
    box.appendChild(title);
    const list = document.createElement("ul");
    problems.forEach(function (p) {
      const item = document.createElement("li");
      item.textContent = p.message;
      if (p.node && nodes[p.node]) {
        item.className = "clickable";
        item.addEventListener("click", function () { selected = p.node; showSettings(); });
        const el = document.getElementById("node-" + dfOf[p.node]);
        if (el) {
          el.classList.add("has-problem");
          const badge = el.querySelector(".df-problem");
          badge.hidden = false;
          badge.textContent = p.message;
        }
      }
      list.appendChild(item);
    });
    box.appendChild(list);
  }

  // --- saving, publishing, versions, import and export ------------------------------------------

  function state() {
    const parts = [];
    parts.push(flow && flow.latest_version ? T.live + ": " + T.version + " " + flow.latest_version : T.notPublished);
    if (dirty) parts.push(T.unsaved);
    $("flow-state").textContent = parts.join(" · ");
  }

  function adopt(data) {
    flow = data;
    $("flow-name").value = data.name;
    $("active").checked = data.is_active;
    if (data.problems) problems = data.problems;
    state();
  }

  async function save() {
    const result = await call("PATCH", "", {name: $("flow-name").value, draft: graph(), updated: flow.updated});
    if (!result.ok) { say(errorText(result.data)); return false; }
    adopt(result.data);
    dirty = false;
    state();
    showProblems();
    say(T.saved, "ok");
    return true;
  }

  async function publish() {
    if (dirty && !(await save())) return;
    const result = await call("POST", "publish/");
    if (!result.ok) {
      say(errorText(result.data));
      if (result.data.extra && result.data.extra.node && nodes[result.data.extra.node]) {
        selected = result.data.extra.node;
        showSettings();
      }
      return;
    }
    say(T.published + " " + result.data.number + ".", "ok");
    await refresh();
  }

  async function refresh() {
    const result = await call("GET", "");
    if (result.ok) adopt(result.data);
    await loadVersions();
  }

  async function loadVersions() {
    const result = await call("GET", "versions/");
    const el = $("versions");
    el.innerHTML = "";
    if (!result.ok || !result.data.length) {
      const option = document.createElement("option");
      option.value = "";
      option.textContent = T.noVersions;
      el.appendChild(option);
      $("revert").disabled = true;
      return;
    }
    result.data.forEach(function (v) {
      const option = document.createElement("option");
      option.value = v.number;
      option.textContent = T.version + " " + v.number + " · " + new Date(v.created).toLocaleString() + (v.published_by ? " · " + v.published_by : "");
      el.appendChild(option);
    });
    $("revert").disabled = !config.canEdit;
  }

  async function revert() {
    const number = parseInt($("versions").value, 10);
    if (!number || !window.confirm(T.confirmRevert)) return;
    const result = await call("POST", "revert/", {version: number});
    if (!result.ok) { say(errorText(result.data)); return; }
    adopt(result.data);
    load(result.data.draft);
    dirty = false;
    state();
    say(T.saved, "ok");
  }

  async function activate() {
    const wanted = $("active").checked;
    const result = await call("POST", "activate/", {active: wanted});
    if (!result.ok) {
      $("active").checked = !wanted;
      say(errorText(result.data));
      return;
    }
    flow.is_active = result.data.is_active;
    flow.updated = result.data.updated;
    say("");
  }

  async function importFile(event) {
    const file = event.target.files[0];
    event.target.value = "";
    if (!file || (dirty && !window.confirm(T.confirmImport))) return;
    const form = new FormData();
    form.append("file", file);
    const result = await call("POST", "import/", undefined, form);
    if (!result.ok) { say(errorText(result.data)); return; }
    adopt(result.data);
    load(result.data.draft);
    dirty = false;
    state();
    say(T.imported, "ok");
  }

  async function exportFile(event) {
    event.preventDefault();
    if (dirty && config.canEdit && !(await save())) return;
    window.location.href = API + "export/";
  }

  // --- "Test this flow": a pretend customer against the canvas's draft ---------------------------

  let session = null;

  function bubble(who, text, extra) {
    const item = document.createElement("li");
    item.className = "test-msg " + who;
    const p = document.createElement("p");
    p.textContent = text;
    item.appendChild(p);
    if (extra) item.appendChild(extra);
    $("test-thread").appendChild(item);
    item.scrollIntoView({block: "nearest"});
    return item;
  }

  function choices(reply) {
    const box = document.createElement("div");
    box.className = "test-choices";
    (reply.choices || []).forEach(function (choice) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "button test-choice";
      b.textContent = choice.title;
      b.addEventListener("click", function () { testSend(choice.title, choice.id, false); });
      box.appendChild(b);
    });
    return box;
  }

  async function testSend(text, choiceId, resume) {
    if (!resume && !text.trim() && !choiceId) return;
    if (!resume) bubble("customer", text);
    const result = await call("POST", "test-run/", {text: text, choice_id: choiceId || "", resume: !!resume, session: session, graph: graph()});
    if (!result.ok) {
      $("test-notice").textContent = errorText(result.data);
      if (result.data.code === "flow_test_session_invalid") session = null;
      return;
    }
    const data = result.data;
    data.replies.forEach(function (reply) {
      bubble("business", reply.text, reply.kind === "buttons" || reply.kind === "list" ? choices(reply) : null);
    });
    data.effects.forEach(function (effect) { bubble("effect", T.effect + ": " + effect.detail); });
    data.steps.forEach(function (step) {
      const item = document.createElement("li");
      const node = nodes[step.node_id];
      const label = node ? TYPES[node.type].label : step.node_type;
      const out = node ? outputsOf(node).find(function (o) { return o[0] === step.branch; }) : null;
      const branch = step.branch === "wait" ? T.waits : (out ? out[1] : step.branch);
      item.textContent = label + " (" + step.node_id + ")" + (step.branch ? " → " + branch : "") + (step.error ? " ⚠ " + step.error : "");
      item.dataset.node = step.node_id;
      $("test-path").appendChild(item);
      const el = document.getElementById("node-" + dfOf[step.node_id]);
      if (el) el.classList.add("visited");
    });
    $("test-notice").textContent = data.notice || "";
    if (data.started) session = data.session;
    $("test-vars").textContent = JSON.stringify(session ? session.variables : {}, null, 2);
    const waitingOnDelay = session && session.status === "waiting" && nodes[session.node_id] && nodes[session.node_id].type === "delay";
    $("test-skip").hidden = !waitingOnDelay;
    if (session && (session.status === "finished" || session.status === "failed")) session = null;
  }

  function testRestart() {
    session = null;
    $("test-thread").innerHTML = "";
    $("test-path").innerHTML = "";
    $("test-notice").textContent = "";
    $("test-vars").textContent = "{}";
    $("test-skip").hidden = true;
    document.querySelectorAll(".drawflow-node.visited").forEach(function (el) { el.classList.remove("visited"); });
  }

  // --- wiring -------------------------------------------------------------------------------------

  buildPalette();
  $("save").addEventListener("click", save);
  $("publish").addEventListener("click", publish);
  $("active").addEventListener("change", activate);
  $("revert").addEventListener("click", revert);
  $("export").addEventListener("click", exportFile);
  $("import-file").addEventListener("change", importFile);
  $("flow-name").addEventListener("input", function () { dirty = true; state(); });
  $("test-toggle").addEventListener("click", function () {
    $("tester").hidden = !$("tester").hidden;
    $("builder").classList.toggle("testing", !$("tester").hidden);
  });
  $("test-form").addEventListener("submit", function (e) {
    e.preventDefault();
    const text = $("test-text").value;
    $("test-text").value = "";
    testSend(text, "", false);
  });
  $("test-skip").addEventListener("click", function () { testSend("", "", true); });
  $("test-restart").addEventListener("click", testRestart);
  $("zoom-in").addEventListener("click", function () { editor.zoom_in(); });
  $("zoom-out").addEventListener("click", function () { editor.zoom_out(); });
  $("zoom-reset").addEventListener("click", function () { editor.zoom_reset(); });
  if (!config.canEdit) {
    ["save", "publish", "active", "revert", "flow-name"].forEach(function (id) { $(id).disabled = true; });
    document.querySelector(".builder-import").hidden = true;
    say(T.readOnly, "ok");
  }
  // Drawflow deletes the selected step on the Delete key anywhere in the page: typing in the
  // settings, the toolbar or the tester must never reach it.
  ["panel", "tester", "message"].forEach(function (id) {
    $(id).addEventListener("keydown", function (e) { e.stopPropagation(); });
  });
  document.querySelector(".builder-bar").addEventListener("keydown", function (e) { e.stopPropagation(); });
  window.addEventListener("beforeunload", function (e) {
    if (dirty) { e.preventDefault(); e.returnValue = T.confirmLeave; }
  });

  (async function start() {
    const result = await call("GET", "");
    if (!result.ok) { say(errorText(result.data)); return; }
    adopt(result.data);
    load(result.data.draft);
    await loadVersions();
    document.body.dataset.builderReady = "1";
  })();
})();
