// The streamrt dashboard: reads v1/status (relative to the page, so that it
// works under a server's /apps/NAME/ prefix) every second and draws it.
"use strict";

(function () {
  const POLL_MS = 1000;
  const SVG = "http://www.w3.org/2000/svg";
  const params = new URLSearchParams(location.search);
  const focusStore = params.get("store"); // highlights a store in the graph
  let token = tokenFromHash() || sessionStorage.getItem("streamrt-token") || "";
  let lastTopology = "";

  function tokenFromHash() {
    const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (!m) return "";
    const t = decodeURIComponent(m[1]);
    sessionStorage.setItem("streamrt-token", t);
    history.replaceState(null, "", location.pathname + location.search);
    return t;
  }

  // h builds an element: h("td", {class: "x", "data-field": "lag"}, "text", child...).
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) el.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c !== undefined && c !== null) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function table(cls, head, rows, empty) {
    if (rows.length === 0) return h("p", { class: "empty" }, empty);
    return h("table", { class: cls }, h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, c)))), h("tbody", {}, rows));
  }

  function fmtNum(n) {
    return Number(n || 0).toLocaleString("en-US", { maximumFractionDigits: 1 });
  }

  function fmtSecs(s) {
    if (s === undefined || s < 0) return "ETA unknown";
    if (s < 60) return "ETA " + Math.ceil(s) + "s";
    const m = Math.floor(s / 60);
    return "ETA " + m + "m" + String(Math.ceil(s - m * 60)).padStart(2, "0") + "s";
  }

  function message(id, text, kind) {
    const box = document.getElementById("messages");
    let el = document.getElementById(id);
    if (!text) {
      if (el) el.remove();
      return;
    }
    if (!el) {
      el = h("p", { id: id, class: "notice " + (kind || "") });
      box.append(el);
    }
    el.textContent = text;
  }

  async function poll() {
    try {
      const headers = token ? { Authorization: "Bearer " + token } : {};
      const resp = await fetch("v1/status", { headers: headers, cache: "no-store" });
      if (resp.status === 401) {
        document.getElementById("token-form").hidden = false;
        message("fetch-error", token ? "The token was refused (401): enter another." : "This app's API needs a bearer token (401).", "error");
        return;
      }
      if (!resp.ok) {
        let why = resp.status + " " + resp.statusText;
        try {
          why += ": " + (await resp.json()).error;
        } catch (e) {}
        message("fetch-error", "v1/status answered " + why, "error");
        return;
      }
      const st = await resp.json();
      message("fetch-error", "");
      document.getElementById("token-form").hidden = true;
      render(st);
    } catch (e) {
      message("fetch-error", "v1/status could not be read: " + e.message + " (retrying every second)", "error");
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  function render(st) {
    document.title = "streamrt · " + st.app;
    document.getElementById("app-name").textContent = st.app;
    document.getElementById("instance").textContent = st.instance + (st.instance_id ? " (" + st.instance_id + ")" : "");
    document.getElementById("updated").textContent = new Date(st.time).toLocaleTimeString();
    const ready = document.getElementById("readiness");
    ready.textContent = st.readiness.ready ? "ready" : "not ready";
    ready.className = "badge " + (st.readiness.ready ? "ok" : "bad");
    ready.dataset.ready = String(st.readiness.ready);
    ready.title = (st.readiness.reasons || []).join("\n");

    if (focusStore !== null && !st.stores.some((x) => x.name === focusStore)) {
      const known = st.stores.map((x) => x.name).join(", ") || "none";
      message("store-error", "Unknown store \u201c" + focusStore + "\u201d in the page's URL: this app's stores are " + known + ".", "error");
    } else {
      message("store-error", "");
    }
    const reasons = st.readiness.ready ? [] : st.readiness.reasons || [];
    message("not-ready", reasons.length ? "Not ready: " + reasons.join("; ") : "", "warn");

    const topoKey = JSON.stringify(st.topology) + focusStore;
    if (topoKey !== lastTopology) {
      lastTopology = topoKey;
      document.getElementById("topology").replaceChildren(graph(st.topology));
    }
    document.getElementById("modules").replaceChildren(modules(st.topology));
    document.getElementById("instances").replaceChildren(instances(st));
    document.getElementById("dead-letters").replaceChildren(deadLetters(st));
    document.getElementById("routes").replaceChildren(routes(st.routes));
    document.getElementById("stores").replaceChildren(stores(st.stores));
  }

  // graph draws the topology left to right: external inputs and tables,
  // then each stage with its stores below it, the topics it writes
  // (repartition topics feed the next column of stages), and the outputs.
  function graph(topo) {
    const internal = new Set(topo.internal_topics);
    const dlq = new Set(topo.dead_letter_topics);
    const writer = {};
    for (const st of topo.stages) for (const t of Object.values(st.outputs)) writer[t] = st.name;
    const level = {};
    const levelOf = (st, seen) => {
      if (level[st.name] !== undefined) return level[st.name];
      let l = 0;
      for (const t of st.inputs) {
        const w = topo.stages.find((x) => x.name === writer[t]);
        if (internal.has(t) && w && !seen.has(w.name)) l = Math.max(l, levelOf(w, new Set([...seen, st.name])) + 1);
      }
      return (level[st.name] = l);
    };
    topo.stages.forEach((st) => levelOf(st, new Set([st.name])));
    const maxLevel = Math.max(0, ...Object.values(level));
    const columns = [];
    const col = (i) => (columns[i] = columns[i] || []);
    const nodes = {};
    const add = (c, key, kind, label, sub) => {
      if (nodes[key]) return nodes[key];
      const n = { key, kind, label, sub, col: c };
      nodes[key] = n;
      col(c).push(n);
      return n;
    };
    for (const t of topo.inputs) add(0, "input:" + t, "input", t, "input topic");
    for (const tb of topo.tables) add(0, "table:" + tb.name, "table", tb.name, (tb.global ? "global table ← " : "table ← ") + tb.topic);
    const edges = [];
    for (const st of topo.stages) {
      const c = 2 * level[st.name] + 1;
      const sn = add(c, "stage:" + st.name, "stage", st.table_only ? st.name.replace(/^#table:/, "") : st.name,
        st.table_only ? "materialises a table" : st.module_version_short ? "module " + st.module_version_short : "stage");
      for (const so of st.stores) {
        add(c, "store:" + so.name, "store", so.name, "store");
        edges.push({ from: sn.key, to: "store:" + so.name, kind: "store" });
      }
      for (const t of st.inputs) {
        const from = internal.has(t) ? "internal:" + t : "input:" + t;
        if (!nodes[from] && !internal.has(t)) add(0, from, "input", t, "input topic");
        edges.push({ from, to: sn.key, kind: "flow" });
      }
      for (const tb of st.tables) edges.push({ from: "table:" + tb, to: sn.key, kind: "table" });
      for (const [name, t] of Object.entries(st.outputs)) {
        if (internal.has(t)) {
          add(c + 1, "internal:" + t, "internal", t, "repartition (" + name + ")");
          edges.push({ from: sn.key, to: "internal:" + t, kind: "flow" });
        } else {
          add(2 * maxLevel + 2, "output:" + t, "output", t, "output " + name);
          edges.push({ from: sn.key, to: "output:" + t, kind: "flow" });
        }
      }
      if (st.dead_letter_topic) {
        add(2 * maxLevel + 2, "dlq:" + st.dead_letter_topic, "dlq", st.dead_letter_topic, "dead letters");
        edges.push({ from: sn.key, to: "dlq:" + st.dead_letter_topic, kind: "dlq" });
      }
    }
    const W = 220, H = 46, GX = 70, GY = 18, PAD = 12;
    let height = 0;
    columns.forEach((nodesIn, c) => {
      (nodesIn || []).forEach((n, i) => {
        n.x = PAD + c * (W + GX);
        n.y = PAD + i * (H + GY);
        height = Math.max(height, n.y + H + PAD);
      });
    });
    const width = PAD * 2 + columns.length * W + Math.max(0, columns.length - 1) * GX;
    const svg = s("svg", { id: "topology-graph", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": "the app's topology" });
    svg.append(s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))));
    for (const e of edges) {
      const a = nodes[e.from], b = nodes[e.to];
      if (!a || !b) continue;
      let d;
      if (a.col === b.col) {
        d = `M${a.x + W / 2},${a.y + H} L${b.x + W / 2},${b.y}`;
      } else {
        const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
        d = `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2 - 2},${y2}`;
      }
      svg.append(s("path", { d, class: "edge " + e.kind, "data-edge": e.from + "->" + e.to, "marker-end": e.kind === "store" ? null : "url(#arrow)" }));
    }
    for (const n of Object.values(nodes)) {
      const cls = "node " + n.kind + (n.kind === "store" && n.label === focusStore ? " focus" : "");
      const g = s("g", { class: cls, "data-node": n.key, transform: `translate(${n.x},${n.y})` },
        s("title", {}, n.label + " — " + n.sub),
        s("rect", { width: W, height: H, rx: n.kind === "stage" ? 8 : n.kind === "store" ? 14 : 3 }),
        s("text", { x: 10, y: 19, class: "label" }, clip(n.label, 27)),
        s("text", { x: 10, y: 36, class: "sub" }, clip(n.sub, 34)));
      svg.append(g);
    }
    return svg;
  }

  function clip(t, n) {
    return t.length > n ? t.slice(0, n - 1) + "…" : t;
  }

  function modules(topo) {
    const rows = topo.stages.filter((st) => !st.table_only).map((st) =>
      h("tr", { "data-stage": st.name },
        h("td", {}, st.name),
        h("td", { class: "mono", "data-field": "module-version", title: st.module_version || "" }, st.module_version_short || "—"),
        h("td", { class: "mono small" }, st.canary_version ? st.canary_version.slice(0, 12) + " on partitions 0–" + (st.canary_partitions - 1) : ""),
        h("td", {}, st.inputs.join(", ")),
        h("td", {}, Object.entries(st.outputs).map(([k, v]) => k + " → " + v).join(", ")),
        h("td", {}, st.stores.map((x) => x.name).join(", ")),
        h("td", {}, st.tables.join(", ")),
        h("td", {}, st.error_policy + (st.dead_letter_topic ? " → " + st.dead_letter_topic : ""))));
    return table("modules", ["stage", "module version", "canary", "inputs", "outputs", "stores", "tables", "error policy"], rows, "No stage runs a module.");
  }

  function taskState(t) {
    const cell = h("td", { class: "state " + t.state, "data-field": "state" }, t.state === "standby" ? "standby copy" : t.state.replace("_", " "));
    if (t.state === "restoring") {
      const bar = h("progress", { max: 100, value: t.restore_percent || 0, "data-field": "restore" });
      cell.append(" ", bar, " " + fmtNum(t.restore_percent) + "% · ", h("span", { "data-field": "eta" }, fmtSecs(t.restore_eta_seconds)));
    }
    if (t.reason) cell.append(h("div", { class: "reason small" }, t.reason));
    return cell;
  }

  function instances(st) {
    const out = [];
    for (const inst of st.instances) {
      const head = h("h3", {},
        h("code", {}, inst.address), inst.self ? h("span", { class: "badge self" }, "this instance") : null,
        inst.answered ? (inst.readiness ? h("span", { class: "badge " + (inst.readiness.ready ? "ok" : "bad") }, inst.readiness.ready ? "ready" : "not ready") : null)
          : st.local ? h("span", { class: "badge" }, "not asked") : h("span", { class: "badge bad", "data-field": "error" }, "no answer"));
      const card = h("div", { class: "instance", "data-instance": inst.address }, head);
      if (inst.error) card.append(h("p", { class: "error small" }, inst.error));
      const lagSum = (inst.tasks || []).reduce((a, t) => a + t.lag, 0);
      const rateSum = (inst.tasks || []).reduce((a, t) => a + t.records_per_second, 0);
      card.append(h("p", { class: "small" },
        (inst.active || []).length + " active, " + (inst.standby || []).length + " standby · lag ",
        h("b", { "data-field": "instance-lag" }, fmtNum(lagSum)), " records · ",
        h("b", { "data-field": "instance-rate" }, fmtNum(rateSum)), " records/s"));
      const rows = (inst.tasks || []).map((t) =>
        h("tr", { "data-task": t.stage + "/" + t.partition },
          h("td", {}, t.stage), h("td", { class: "num" }, t.partition), h("td", { class: "small" }, t.topics.join(", ")),
          taskState(t),
          t.state === "standby" ? [h("td", { class: "num" }, "—"), h("td", { class: "num" }, "—"), h("td", { class: "num" }, "—")] : [
            h("td", { class: "num", "data-field": "lag" }, fmtNum(t.lag)),
            h("td", { class: "num", "data-field": "rate" }, fmtNum(t.records_per_second)),
            h("td", { class: "num", "data-field": "processed" }, fmtNum(t.processed))],
          h("td", { class: "mono small" }, (t.module_version || "").slice(0, 12))));
      if (inst.answered) {
        card.append(table("tasks", ["stage", "partition", "topics", "state", "lag", "records/s", "processed", "module"], rows, "No tasks."));
      } else if ((inst.active || []).length) {
        card.append(h("p", { class: "small" }, "Assigned: " + inst.active.map((r) => r.stage + "/" + r.partition).join(", ")));
      }
      if (!inst.answered && (inst.standby || []).length) {
        card.append(h("p", { class: "small standbys", "data-field": "standbys" }, "Standby copies: " + inst.standby.map((r) => r.stage + "/" + r.partition).join(", ")));
      }
      out.push(card);
    }
    return h("div", { class: "instances" }, out);
  }

  function deadLetters(st) {
    const all = [];
    for (const inst of st.instances) for (const d of inst.dead_letters || []) all.push([inst.address, d]);
    all.sort((a, b) => (a[1].time < b[1].time ? 1 : -1));
    const rows = all.map(([addr, d]) =>
      h("tr", { "data-dead-letter": d.source_topic + "/" + d.source_partition + "/" + d.source_offset },
        h("td", { class: "small" }, new Date(d.time).toLocaleTimeString()),
        h("td", {}, d.stage),
        h("td", { class: "small" }, d.source_topic + " / " + d.source_partition + " @ " + d.source_offset),
        h("td", { class: "mono" }, (d.key !== undefined ? d.key : d.key_base64 !== undefined ? "base64:" + d.key_base64 : "(no key)") + (d.key_truncated ? "…" : "")),
        h("td", { class: "error", "data-field": "error" }, d.headers["streamrt.error"] || ""),
        h("td", { class: "small" }, h("dl", { class: "headers" },
          Object.keys(d.headers).sort().flatMap((k) => [h("dt", {}, k), h("dd", { "data-header": k }, d.headers[k])]))),
        h("td", { class: "small" }, addr)));
    return table("dead-letters", ["time", "stage", "record", "key", "error", "headers", "instance"], rows, "No dead letters.");
  }

  function routes(rs) {
    const rows = rs.map((r) =>
      h("tr", { "data-route": r.method + " " + r.path },
        h("td", {}, r.method), h("td", { class: "mono" }, r.path),
        h("td", {}, r.builtin ? "builtin " + r.builtin : "stage " + r.stage),
        h("td", {}, r.store ? r.store + (r.key ? " by " + r.key : "") : "any instance")));
    return table("routes", ["method", "path", "answered by", "routed by"], rows, "No query routes.");
  }

  function stores(ss) {
    const rows = ss.map((x) =>
      h("tr", { "data-store": x.name, class: x.name === focusStore ? "focus" : null },
        h("td", {}, x.name), h("td", {}, x.global ? "global" : x.partitions + " partitions"), h("td", {}, x.topic)));
    return table("stores", ["store", "held", "by the partitions of"], rows, "No stores.");
  }

  document.getElementById("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    token = document.getElementById("token").value.trim();
    sessionStorage.setItem("streamrt-token", token);
  });
  poll();
})();
