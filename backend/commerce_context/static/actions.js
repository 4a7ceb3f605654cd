/*
 * commerce-context: agent actions in the sidebar (plain ES2017, no build step).
 *
 * The panels (templates/_actions.html) hold one <form data-cc-action="..."> per enabled action
 * inside <section data-cc-actions data-cc-order-id ...>. Flow:
 *
 *   [data-cc-ask] click -> the inputs are checked, a request id is made (one per confirmation,
 *     so a double click or a retried request is the same job), and the confirmation row
 *     [data-cc-confirm] asks "<label>?"
 *   [data-cc-yes] -> POST #app[data-actions-url] (default /zendesk/actions) with
 *     `Authorization: Bearer <session>`; 202 -> [data-cc-result][data-state="pending"], then
 *     GET /zendesk/actions/<job id> about once a second until "applied" or "failed" (the reason
 *     is shown as text); "applied" re-fetches the panels with the Refresh button, so the order
 *     shows the new state (the server evicted it from its cache).
 *   [data-cc-no] -> back, nothing sent.
 *
 * After every panels render, [data-cc-activity] is filled from GET /zendesk/activity: the
 * order's recent writebacks and actions with their state, polled again while any is pending;
 * when one seen pending has landed, the panels are re-fetched to show the new values.
 * All text is set with textContent, never as HTML.
 *
 * Messages are in the language the section was rendered in (its lang attribute, the agent's
 * Zendesk language): the `actions.*` labels of #cc-strings (translations/*.json, the same
 * strings sidebar.js reads), English as the fallback. Amounts are formatted in the store's
 * locale (data-cc-locale), as the panels show them. Failure reasons come from the server.
 */
(function () {
  "use strict";

  const POLL_MS = 800;
  const MAX_POLLS = 150;
  const app = document.getElementById("app");
  const panels = document.getElementById("panels");
  if (!app || !panels) {
    return;
  }
  const session = app.getAttribute("data-session") || "";
  const base = (app.getAttribute("data-actions-url") || "/zendesk/actions").replace(/\/$/, "");
  const activityUrl = app.getAttribute("data-activity-url") || "/zendesk/activity";

  // ---- labels --------------------------------------------------------------------------------

  let catalogs = {};
  try {
    const node = document.getElementById("cc-strings");
    catalogs = (node && JSON.parse(node.textContent || "{}")) || {};
  } catch (e) {
    catalogs = {};
  }

  function languageOf(section) {
    const holder = section && section.closest("[lang]");
    const tag = (holder ? holder.getAttribute("lang") : document.documentElement.lang) || "en";
    const language = tag.replace("_", "-").split("-")[0].toLowerCase();
    return catalogs[language] ? language : "en";
  }

  // `actions.<key>` in the section's language, else English, else the key; {name} is replaced
  // by params[name]; with params.count, the key's .one / .other form when there is one.
  function label(section, key, params) {
    const own = catalogs[languageOf(section)] || {};
    const english = catalogs.en || {};
    const full = "actions." + key;
    const names = [full];
    if (params && typeof params.count === "number") {
      names.unshift(full + (params.count === 1 ? ".one" : ".other"));
    }
    let text = null;
    for (const name of names) {
      text = own[name] !== undefined ? own[name] : english[name] !== undefined ? english[name] : null;
      if (text !== null) {
        break;
      }
    }
    if (text === null) {
      text = full;
    }
    Object.keys(params || {}).forEach(function (name) {
      text = text.split("{" + name + "}").join(String(params[name]));
    });
    return text;
  }

  function amount(section, form, cents) {
    // As the panels show money: the store's locale, the currency's symbol.
    const digits = parseInt(form.getAttribute("data-fraction-digits") || "2", 10);
    const currency = form.getAttribute("data-currency") || "";
    const value = cents / Math.pow(10, digits);
    try {
      return new Intl.NumberFormat(section.getAttribute("data-cc-locale") || "en-US", {
        style: "currency",
        currency: currency,
        minimumFractionDigits: digits,
        maximumFractionDigits: digits,
      }).format(value);
    } catch (e) {
      return value.toFixed(digits) + " " + currency;
    }
  }

  function jobLabel(section, job) {
    // The server's label is English; the kind names the action in the agent's language.
    const kind = String(job.kind || "");
    if (kind.indexOf("action.") === 0) {
      const key = "kind." + kind.slice("action.".length);
      const text = label(section, key);
      return text === "actions." + key ? job.label : text;
    }
    const field = /^Update (.+)$/.exec(job.label || "");
    return kind === "writeback" && field ? label(section, "kind.writeback", { field: field[1] }) : job.label;
  }

  function headers(json) {
    const h = { Authorization: "Bearer " + session, Accept: "application/json" };
    if (json) {
      h["Content-Type"] = "application/json";
    }
    return h;
  }

  function requestId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    return String(Date.now()) + "-" + Math.random().toString(36).slice(2, 12);
  }

  function agentRole() {
    // The agent's Zendesk role, when the page knows it (#app[data-agent-role]): the browser
    // reports it, so the server treats it as advisory (docs/sync.md).
    return app.getAttribute("data-agent-role") || null;
  }

  function show(section, state, text) {
    const result = section.querySelector("[data-cc-result]");
    if (!result) {
      return;
    }
    result.hidden = false;
    result.setAttribute("data-state", state);
    result.textContent = text;
  }

  // ---- building a request from a form ------------------------------------------------------

  function build(section, form) {
    const action = form.getAttribute("data-cc-action");
    const body = { action: action };
    let question = label(section, "ask.other", { label: form.getAttribute("data-label") || action });
    if (action === "set_support_status" || action === "set_internal_note") {
      const input = form.querySelector("[name=value]");
      const value = input ? input.value.trim() : "";
      if (!value) {
        return { error: label(section, "invalid.value") };
      }
      body.value = value;
      question =
        action === "set_support_status"
          ? label(section, "ask.set_support_status", { value: value })
          : label(section, "ask.set_internal_note");
    } else if (action === "cancel_order") {
      question = label(section, "ask.cancel_order", {
        number: section.getAttribute("data-cc-order-number") || "",
      });
    } else if (action === "request_refund") {
      const digits = parseInt(form.getAttribute("data-fraction-digits") || "2", 10);
      const max = parseInt(form.getAttribute("data-max-cents") || "0", 10);
      const input = form.querySelector("[name=amount]");
      const asked = input ? Number(String(input.value).replace(",", ".")) : NaN;
      const cents = Math.round(asked * Math.pow(10, digits));
      if (!isFinite(asked) || cents <= 0) {
        return { error: label(section, "invalid.amount") };
      }
      if (cents > max) {
        return { error: label(section, "invalid.at_most", { amount: amount(section, form, max) }) };
      }
      body.amount_cents = cents;
      question = label(section, "ask.request_refund", { amount: amount(section, form, cents) });
    } else if (action === "create_return") {
      const items = [];
      form.querySelectorAll("input[name=qty]").forEach(function (input) {
        const quantity = parseInt(input.value || "0", 10);
        if (quantity > 0) {
          items.push({ line_item_id: input.getAttribute("data-line-item-id"), quantity: quantity });
        }
      });
      if (!items.length) {
        return { error: label(section, "invalid.quantity") };
      }
      body.items = items;
      const comment = form.querySelector("[name=comment]");
      if (comment && comment.value.trim()) {
        body.comment = comment.value.trim();
      }
      const count = items.reduce(function (n, item) {
        return n + item.quantity;
      }, 0);
      question = label(section, "ask.create_return", { count: count });
    }
    return { body: body, question: question };
  }

  // ---- confirm, send, follow -----------------------------------------------------------------

  let pending = null; // {section, body} awaiting confirmation
  const seenPending = new Set(); // job ids shown as pending in the activity list

  function ask(section, form) {
    const built = build(section, form);
    if (built.error) {
      show(section, "invalid", built.error);
      return;
    }
    built.body.request_id = requestId();
    pending = { section: section, body: built.body };
    const confirm = section.querySelector("[data-cc-confirm]");
    const question = section.querySelector("[data-cc-question]");
    if (question) {
      question.textContent = built.question;
    }
    if (confirm) {
      confirm.hidden = false;
      const yes = confirm.querySelector("[data-cc-yes]");
      if (yes) {
        yes.disabled = false;
        yes.focus();
      }
    }
  }

  function closeConfirm(section) {
    const confirm = section.querySelector("[data-cc-confirm]");
    if (confirm) {
      confirm.hidden = true;
    }
  }

  async function errorText(section, response) {
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) {
        return body.error.message;
      }
    } catch (e) {
      // not JSON
    }
    return label(section, "error.status", { status: response.status });
  }

  async function send(section, body) {
    // The ticket, when the page knows it (#app[data-ticket-id]), goes into the audit trail.
    const ticket = app.getAttribute("data-ticket-id");
    body.order_id = section.getAttribute("data-cc-order-id");
    if (ticket && /^\d+$/.test(ticket)) {
      body.ticket_id = parseInt(ticket, 10);
    }
    const role = agentRole();
    if (role) {
      body.role = role;
    }
    show(section, "sending", label(section, "sending"));
    let response;
    try {
      response = await fetch(base, {
        method: "POST",
        headers: headers(true),
        body: JSON.stringify(body),
        credentials: "same-origin",
        cache: "no-store",
      });
    } catch (e) {
      // Nothing is lost by trying again: the same request id is the same job.
      show(section, "failed", label(section, "error.network"));
      return;
    }
    if (response.status !== 202) {
      show(section, "failed", await errorText(section, response));
      return;
    }
    const job = await response.json();
    follow(section, job, 0);
  }

  function describe(section, job) {
    const name = jobLabel(section, job);
    if (job.state === "pending" || job.state === "cancelled") {
      return label(section, "state." + job.state, { label: name });
    }
    if (job.state === "applied") {
      const key = job.outcome === "unchanged" ? "state.unchanged" : "state.applied";
      return label(section, key, { label: name });
    }
    if (job.state === "failed") {
      const reason = job.reason || label(section, "reason.unknown");
      return label(section, "state.failed", { label: name, reason: reason });
    }
    return label(section, "state.other", { label: name, state: job.state });
  }

  function follow(section, job, polls) {
    show(section, job.state, describe(section, job));
    if (job.state === "applied") {
      const refresh = app.querySelector('[data-action="refresh"]');
      if (refresh) {
        refresh.click(); // the order changed: show it as commercetools has it now
      }
      return;
    }
    if (job.state !== "pending" || polls >= MAX_POLLS) {
      return;
    }
    setTimeout(async function () {
      try {
        const response = await fetch(base + "/" + encodeURIComponent(job.job_id), {
          headers: headers(false),
          cache: "no-store",
        });
        if (!response.ok) {
          show(section, "failed", await errorText(section, response));
          return;
        }
        follow(section, await response.json(), polls + 1);
      } catch (e) {
        follow(section, job, polls + 1);
      }
    }, POLL_MS);
  }

  // ---- activity ------------------------------------------------------------------------------

  async function loadActivity(section) {
    const list = section.querySelector("[data-cc-activity]");
    if (!list) {
      return;
    }
    const params = new URLSearchParams();
    params.set("order_id", section.getAttribute("data-cc-order-id") || "");
    if (section.getAttribute("data-cc-order-number")) {
      params.set("order_number", section.getAttribute("data-cc-order-number"));
    }
    let items = [];
    try {
      const response = await fetch(activityUrl + "?" + params.toString(), {
        headers: headers(false),
        cache: "no-store",
      });
      if (!response.ok) {
        return;
      }
      items = ((await response.json()) || {}).items || [];
    } catch (e) {
      return;
    }
    if (!document.contains(list)) {
      return;
    }
    const rows = items.map(function (job) {
      const li = document.createElement("li");
      li.setAttribute("data-state", job.state);
      li.setAttribute("data-kind", job.kind);
      li.textContent = describe(section, job);
      return li;
    });
    if (!rows.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = label(section, "activity.empty");
      rows.push(li);
    }
    list.replaceChildren.apply(list, rows);
    // A writeback or action seen pending that has now landed: show the order as it is now.
    const landed = items.some(function (job) {
      return job.state === "applied" && seenPending.has(job.job_id);
    });
    items.forEach(function (job) {
      if (job.state === "pending") {
        seenPending.add(job.job_id);
      } else {
        seenPending.delete(job.job_id);
      }
    });
    if (landed) {
      const refresh = app.querySelector('[data-action="refresh"]');
      if (refresh) {
        refresh.click();
      }
      return;
    }
    if (items.some(function (job) { return job.state === "pending"; })) {
      setTimeout(function () {
        if (document.contains(list)) {
          loadActivity(section);
        }
      }, POLL_MS * 2);
    }
  }

  new MutationObserver(function () {
    panels.querySelectorAll("[data-cc-actions]").forEach(function (section) {
      if (!section.hasAttribute("data-cc-wired")) {
        section.setAttribute("data-cc-wired", "");
        loadActivity(section);
      }
    });
  }).observe(panels, { childList: true, subtree: true });

  panels.addEventListener("click", function (event) {
    const target = event.target instanceof Element ? event.target : null;
    const section = target && target.closest("[data-cc-actions]");
    if (!section) {
      return;
    }
    if (target.closest("[data-cc-ask]")) {
      event.preventDefault();
      ask(section, target.closest("form"));
    } else if (target.closest("[data-cc-yes]")) {
      event.preventDefault();
      const yes = target.closest("[data-cc-yes]");
      if (!pending || pending.section !== section || yes.disabled) {
        return;
      }
      yes.disabled = true; // a second click sends nothing; a retry reuses the request id
      const body = pending.body;
      closeConfirm(section);
      send(section, body);
    } else if (target.closest("[data-cc-no]")) {
      event.preventDefault();
      pending = null;
      closeConfirm(section);
    }
  });
})();
