// pitstop dashboard: polls the gateway's JSON and redraws. Read-only; no request leaves the gateway.
(function () {
  "use strict";
  var every = (Number(document.body.dataset.every) || 5) * 1000;
  var plotConfig = { responsive: true, displaylogo: false };
  var cards = new Map();
  var polls = 0;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function table(headers, rows) {
    var wrap = el("div", "scroll");
    var t = el("table");
    var head = el("tr");
    headers.forEach(function (h) { head.appendChild(el("th", null, h)); });
    t.appendChild(head);
    rows.forEach(function (row) {
      var tr = el("tr");
      row.forEach(function (cell) { tr.appendChild(el("td", null, cell)); });
      t.appendChild(tr);
    });
    wrap.appendChild(t);
    return wrap;
  }

  function facts(pairs) {
    var dl = el("dl", "facts");
    pairs.forEach(function (pair) {
      dl.appendChild(el("dt", null, pair[0]));
      dl.appendChild(el("dd", null, pair[1]));
    });
    return dl;
  }

  function renderHealth(health) {
    var box = document.getElementById("health");
    box.replaceChildren();
    box.appendChild(el("h2", null, "Gateway health (this process)"));
    var ready = document.getElementById("ready");
    ready.textContent = health.ready ? "ready" : "not ready";
    ready.className = "badge " + (health.ready ? "ready" : "unready");
    var log = health.log;
    box.appendChild(facts([
      ["readiness", health.ready ? "ready" : "not ready: " + health.reasons.join("; ")],
      ["models served", health.models.join(", ") || "none"],
      ["prediction log", log.depth + " queued of " + log.capacity + (log.healthy ? ", writing" : ", failing: " + log.last_error)],
      ["store", health.store_error ? "unreachable: " + health.store_error : "reachable"],
      ["cannot load here", (health.cannot_load || []).join("; ") || "-"]
    ]));
    var rows = Object.keys(health.counters).map(function (name) { return [name, health.counters[name]]; });
    box.appendChild(table(["counter (since this gateway started)", "value"], rows));
  }

  // Every gateway process of the store, from its heartbeat: live or stale, and per model the routing
  // version it serves and the versions it has loaded and warmed (a step is in force once every live
  // gateway serves its routing version).
  function renderGateways(gateways) {
    var box = document.getElementById("gateways");
    box.replaceChildren();
    box.appendChild(el("h2", null, "Gateways"));
    if (!gateways.length) {
      box.appendChild(el("p", "muted", "no gateway has reported to this store yet"));
      return;
    }
    var rows = [];
    gateways.forEach(function (g) {
      var state = (g.live ? "live" : "stale") + ", seen " + g.seconds_since_seen.toFixed(1) + " s ago";
      var served = g.serving.length ? g.serving : [{ model: "-", routing_version: "-", loaded: [], warmed: [] }];
      served.forEach(function (s) {
        rows.push([g.gateway, state, s.model, s.routing_version, s.loaded.join(", ") || "-", s.warmed.join(", ") || "-"]);
      });
    });
    box.appendChild(table(["gateway", "state", "model", "routing version", "loaded", "warmed"], rows));
  }

  function card(name) {
    var entry = cards.get(name);
    if (entry) return entry;
    var section = el("section", "card model");
    section.dataset.model = name;
    var head = el("div", "model-head");
    head.appendChild(el("h2", null, name));
    var phase = el("span", "badge phase");
    head.appendChild(phase);
    section.appendChild(head);
    var glance = el("div", "glance");
    section.appendChild(glance);
    var info = el("div", "info");
    section.appendChild(info);
    var failures = el("div", "failures");
    section.appendChild(failures);
    var charts = el("div", "grid charts");
    section.appendChild(charts);
    section.appendChild(el("h3", null, "Recent events"));
    var events = el("div", "events");
    section.appendChild(events);
    document.getElementById("models").appendChild(section);
    entry = {
      section: section, phase: phase, glance: glance, info: info, failures: failures, charts: charts,
      events: events,
      plots: new Map()
    };
    cards.set(name, entry);
    return entry;
  }

  // A challenger gateways cannot load, and the failed calls' messages (most frequent first).
  function renderFailures(box, report) {
    box.replaceChildren();
    if (!report) return;
    var errors = report.errors || { messages: [], more: 0 };
    var unavailable = report.unavailable || [];
    if (!unavailable.length && !errors.messages.length) return;
    box.appendChild(el("h3", null, "Failures"));
    unavailable.forEach(function (line) { box.appendChild(el("p", "problem", line)); });
    if (errors.messages.length) {
      box.appendChild(table(
        ["version", "role", "calls", "first to last seen", "error"],
        errors.messages.map(function (m) {
          return ["v" + m.version, m.role, m.count, m.seen, m.error];
        })
      ));
    }
    if (errors.more) box.appendChild(el("p", "muted", "and " + errors.more + " other error messages"));
  }

  function numberList(pairs) {
    var list = el("ul", "numbers");
    pairs.forEach(function (pair) { list.appendChild(el("li", null, pair[0] + " = " + pair[1])); });
    return list;
  }

  // What an on-call engineer reads first: who serves whom, the verdict so far, what the next check
  // needs, the last decision with its numbers, and this rollout's own health counters.
  function renderGlance(box, g) {
    box.replaceChildren();
    box.appendChild(el("p", "share", g.share));
    var verdict = el("p", "verdict", g.verdict);
    verdict.dataset.fact = "verdict";
    box.appendChild(verdict);
    var pairs = [];
    if (g.next_check) pairs.push(["next check", g.next_check + (g.next_reason ? " — " + g.next_reason : "")]);
    if (g.progress) pairs.push(["labelled so far", g.progress]);
    if (g.latency) pairs.push(["latency rule", g.latency]);
    if (pairs.length) {
      var dl = facts(pairs);
      dl.dataset.fact = "next";
      box.appendChild(dl);
    }
    var d = g.last_decision;
    if (d) {
      var decision = el("div", "decision");
      decision.dataset.fact = "decision";
      decision.appendChild(el("h3", null, "Last decision"));
      decision.appendChild(el("p", "decided",
        d.time + " · " + d.change + " · rule " + d.rule + " · by " + d.actor));
      if (d.meaning) decision.appendChild(el("p", "muted", d.meaning));
      if (d.reason) decision.appendChild(el("p", "because", d.reason));
      if (d.numbers.length) decision.appendChild(numberList(d.numbers));
      if (d.more_numbers.length) {
        var more = el("details", "more");
        more.appendChild(el("summary", null, d.more_numbers.length + " more numbers the rule recorded"));
        more.appendChild(numberList(d.more_numbers));
        decision.appendChild(more);
      }
      box.appendChild(decision);
    }
    if (g.counters.length) {
      var health = el("div", "rollout-health");
      health.dataset.fact = "rollout-health";
      health.appendChild(el("h3", null, "This rollout's health (since " + g.since + ")"));
      health.appendChild(table(["", "champion", "challenger"], g.counters.map(function (c) {
        return [c.name, c.champion, c.challenger];
      })));
      box.appendChild(health);
    }
  }

  function renderModel(model) {
    var entry = card(model.name);
    var rollout = model.rollout;
    entry.phase.textContent = model.phase_label;
    entry.phase.dataset.phase = model.phase || "none";
    entry.phase.className = "badge phase " + (model.phase_class || "");
    renderGlance(entry.glance, model.glance);
    entry.info.replaceChildren();
    entry.info.appendChild(facts([  // who serves whom is the glance's first line
      ["routing", model.routing ? "v" + model.routing.version + " " + model.routing.mode : "not served here"],
      ["rollout", rollout ? "#" + rollout.rollout_id + " started " + model.started + " by " + rollout.started_by : "none yet"]
    ]));
    renderFailures(entry.failures, model.report);
    var wanted = model.figures || {};
    entry.plots.forEach(function (div, key) {
      if (!(key in wanted)) { Plotly.purge(div); div.remove(); entry.plots.delete(key); }
    });
    // Every chart's box exists (and the grid has its final layout) before any is drawn into it.
    Object.keys(wanted).forEach(function (key) {
      if (!entry.plots.has(key)) {
        var div = el("div", "chart");
        div.dataset.chart = key;
        entry.charts.appendChild(div);
        entry.plots.set(key, div);
      }
    });
    Object.keys(wanted).forEach(function (key) {
      Plotly.react(entry.plots.get(key), wanted[key].data, wanted[key].layout, plotConfig);
    });
    entry.events.replaceChildren(table(
      ["time", "event", "actor", "from → to", "rule", "reason"],
      (model.events || []).slice().reverse().map(function (e) {
        return [e.when, e.kind, e.actor,
          (e.from_state || "-") + " → " + (e.to_state || "-"), e.rule || "-", e.reason || ""];
      })
    ));
  }

  function render(data) {
    renderGateways(data.gateways || []);
    renderHealth(data.health);
    var seen = new Set();
    data.models.forEach(function (model) { seen.add(model.name); renderModel(model); });
    cards.forEach(function (entry, name) {
      if (!seen.has(name)) { entry.section.remove(); cards.delete(name); }
    });
    if (!data.models.length) {
      document.getElementById("empty").textContent = data.health.store_error
        ? "The store cannot be read: " + data.health.store_error
        : "No models in this workspace yet.";
    } else {
      document.getElementById("empty").textContent = "";
    }
  }

  function poll() {
    fetch("v1/dashboard", { cache: "no-store", headers: { accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        render(data);
        polls += 1;
        document.body.dataset.polls = String(polls);
        document.getElementById("updated").textContent = "updated " + data.generated;
      })
      .catch(function (error) {
        document.getElementById("updated").textContent = "update failed (" + error.message + "); retrying";
      })
      .then(function () { window.setTimeout(poll, every); });
  }

  poll();
})();
