/*
 * commerce-context: the Zendesk ticket sidebar (plain ES2017, no build step).
 *
 * The page (templates/sidebar.html) is rendered by POST /zendesk/sidebar after the signed-URL
 * token was verified. It carries our own short-lived session in #app[data-session] and keeps
 * `origin` and `app_guid` in its URL, so ZAFClient.init() can talk to the Zendesk parent frame.
 *
 * Flow: read the ticket context through the ZAF SDK -> POST it as JSON to #app[data-panels-url]
 * with `Authorization: Bearer <session>` -> put the server-rendered (escaped) HTML fragment into
 * #panels -> ask Zendesk to resize the iframe. Ticket events re-fetch (debounced); the refresh
 * button re-fetches with refresh:true; clicking [data-order-id] inside #panels opens that order
 * (an empty data-order-id goes back to the list).
 *
 * State for styling and tests: #app[data-state] is "loading" | "ready" | "error" | "expired",
 * and #panels[aria-busy] is "true" while a request is in flight. So is the refresh button's
 * aria-busy: while a request is in flight it is disabled, spins and says "Refreshing…", and a
 * second press does nothing.
 *
 * Labels follow the agent's Zendesk language (`currentUser.locale`, read with the ticket): the
 * page carries every language's `sidebar.*` labels in #cc-strings (translations/*.json) and the
 * locale goes to the server as `ui_locale`, which renders the panels in that language.
 *
 * In the panels: [data-copy] buttons copy their value (navigator.clipboard, else a selection
 * and execCommand) and then carry data-copied="<value>" for a moment; the empty state's search
 * form ([data-action="search"]) looks the shopper up by an order number or an email address,
 * checked here first (the server validates again), through the same panels request. Messages are
 * <div class="cc-message cc-message--error|--expired" role="alert"> holding
 * <p class="cc-message__text"> and, when the server gave one, <p class="cc-message__detail">
 * ("Reference: <correlation id>"); both are set with textContent, never as HTML.
 */
(function () {
  "use strict";

  const DEBOUNCE_MS = 300;
  const MAX_EMAILS = 20;
  const EMAIL = /^[^\s@]+@[^\s@]+$/;
  const EXPIRED_CODES = ["session_expired", "unauthorized"];
  const ORDER_NUMBER = /^[A-Za-z0-9][A-Za-z0-9._\/#-]{0,63}$/;
  const LOCALE = /^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8}){0,3}$/;
  const COPIED_MS = 1500;

  const app = document.getElementById("app");
  const panels = document.getElementById("panels");
  if (!app || !panels) {
    return;
  }
  const session = app.getAttribute("data-session") || "";
  const panelsUrl = app.getAttribute("data-panels-url") || "/zendesk/panels";
  const orderFieldId = (app.getAttribute("data-order-field-id") || "").trim();
  const orderFieldPath = orderFieldId ? "ticket.customField:custom_field_" + orderFieldId : null;
  const refreshButton = app.querySelector('[data-action="refresh"]');

  // ---- labels ----------------------------------------------------------------------------

  let catalogs = {};
  try {
    const node = document.getElementById("cc-strings");
    catalogs = (node && JSON.parse(node.textContent || "{}")) || {};
  } catch (e) {
    catalogs = {};
  }
  let language = "en";
  let uiLocale = null;

  function label(key, params) {
    const own = catalogs[language] || {};
    const english = catalogs.en || {};
    let text = own[key] !== undefined ? own[key] : english[key] !== undefined ? english[key] : key;
    Object.keys(params || {}).forEach(function (name) {
      text = text.split("{" + name + "}").join(String(params[name]));
    });
    return text;
  }

  function setLocale(value) {
    if (typeof value !== "string" || !LOCALE.test(value.trim())) {
      return;
    }
    uiLocale = value.trim();
    const wanted = uiLocale.replace("_", "-").split("-")[0].toLowerCase();
    language = catalogs[wanted] ? wanted : "en";
    document.documentElement.setAttribute("lang", language);
    busy(app.getAttribute("data-state") === "loading");
  }

  function busy(on) {
    if (!refreshButton) {
      return;
    }
    refreshButton.disabled = on;
    refreshButton.setAttribute("aria-busy", on ? "true" : "false");
    refreshButton.title = label("refresh_title");
    const text = refreshButton.querySelector(".label");
    if (text) {
      text.textContent = label(on ? "refreshing" : "refresh");
    }
  }

  // ---- rendering -------------------------------------------------------------------------

  function setState(state) {
    app.setAttribute("data-state", state);
    panels.setAttribute("aria-busy", state === "loading" ? "true" : "false");
    busy(state === "loading");
  }

  function message(kind, text, detail) {
    // Text only: error text never goes through innerHTML.
    const box = document.createElement("div");
    box.className = "cc-message cc-message--" + kind;
    box.setAttribute("role", "alert");
    const p = document.createElement("p");
    p.className = "cc-message__text";
    p.textContent = text;
    box.appendChild(p);
    if (detail) {
      const small = document.createElement("p");
      small.className = "cc-message__detail muted";
      small.textContent = detail;
      box.appendChild(small);
    }
    panels.replaceChildren(box);
  }

  function showLoading() {
    // Keep the current panels visible while refreshing; only an empty or failed view gets the
    // placeholder, so the sidebar does not flicker on every ticket event.
    if (!panels.firstElementChild || panels.querySelector(".cc-message")) {
      const p = document.createElement("p");
      p.className = "muted loading";
      p.textContent = label("loading");
      panels.replaceChildren(p);
    }
    setState("loading");
  }

  let client = null;

  function resize() {
    if (!client) {
      return;
    }
    const height = Math.ceil(
      Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0)
    );
    client.invoke("resize", { width: "100%", height: height + "px" }).catch(function () {
      // Outside Zendesk (or a framework error) there is nothing useful to do.
    });
  }

  function render(state, update) {
    update();
    setState(state);
    // Let layout settle (images, fonts) before measuring.
    window.requestAnimationFrame(resize);
  }

  // ---- the ticket context ----------------------------------------------------------------

  function present(value) {
    return value !== undefined && value !== null && value !== "";
  }

  function emailsOf(requester, identities) {
    const found = [];
    function add(value) {
      if (typeof value !== "string") {
        return;
      }
      const email = value.trim();
      if (!EMAIL.test(email)) {
        return;
      }
      const lower = email.toLowerCase();
      for (let i = 0; i < found.length; i++) {
        if (found[i].toLowerCase() === lower) {
          return;
        }
      }
      found.push(email);
    }
    if (requester) {
      add(requester.email); // the primary email first
    }
    const list = Array.isArray(identities) ? identities : requester && requester.identities;
    if (Array.isArray(list)) {
      // Primary identities before the others, then in Zendesk's order.
      const emails = list.filter(function (identity) {
        return identity && identity.type === "email";
      });
      emails
        .filter(function (identity) {
          return identity.primary;
        })
        .concat(
          emails.filter(function (identity) {
            return !identity.primary;
          })
        )
        .forEach(function (identity) {
          add(identity.value);
        });
    }
    return found.slice(0, MAX_EMAILS);
  }

  function toInt(value) {
    if (typeof value === "number" && isFinite(value)) {
      return value;
    }
    if (typeof value === "string" && /^\d+$/.test(value.trim())) {
      return parseInt(value, 10);
    }
    return null;
  }

  function toText(value) {
    if (typeof value === "number" && isFinite(value)) {
      return String(value);
    }
    if (typeof value === "string" && value.trim()) {
      return value.trim();
    }
    return null;
  }

  function setOrClear(name, value) {
    if (value === null) {
      app.removeAttribute(name);
    } else {
      app.setAttribute(name, value);
    }
  }

  async function readTicket() {
    const paths = [
      "ticket.id",
      "ticket.requester",
      "ticket.requester.identities",
      "ticket.brand",
      "currentUser.locale",
      "currentUser.role",
    ];
    if (orderFieldPath) {
      paths.push(orderFieldPath);
    }
    // A multi-path get never rejects for a single missing path: Zendesk reports it under
    // `errors` (new tickets have no requester yet), and we treat it as absent.
    const data = (await client.get(paths)) || {};
    const requester = data["ticket.requester"] || null;
    const brand = data["ticket.brand"] || null;
    setLocale(data["currentUser.locale"]);
    // For actions.js: the audit trail names the ticket; the role only hides buttons (advisory,
    // the browser could change it; the server's configuration is the real gate).
    const ticketId = toInt(data["ticket.id"]);
    setOrClear("data-ticket-id", ticketId === null ? null : String(ticketId));
    const role = data["currentUser.role"];
    setOrClear("data-agent-role", typeof role === "string" && role ? role : null);
    return {
      ticket_id: ticketId,
      emails: emailsOf(requester, data["ticket.requester.identities"]),
      external_id: requester && present(requester.externalId) ? String(requester.externalId) : null,
      order_number: orderFieldPath ? toText(data[orderFieldPath]) : null,
      brand_id: brand ? toInt(brand.id) : null,
      ui_locale: uiLocale,
    };
  }

  // ---- talking to the backend ------------------------------------------------------------

  let seq = 0;
  let inflight = null;
  // The order the agent opened (click on [data-order-id]); kept by the refresh button and by
  // ticket.saved, cleared when the requester, brand or order field changes, or by a click on
  // an element with an empty data-order-id ("back to the list").
  let selectedOrderId = null;
  // What the agent searched for in the empty state ({emails} or {order_number}); it replaces
  // the ticket's keys until the requester, brand or order field changes.
  let search = null;

  async function errorFrom(response) {
    let error = null;
    try {
      const body = await response.json();
      error = body && body.error;
    } catch (e) {
      error = null;
    }
    return {
      status: response.status,
      code: (error && error.code) || "",
      message: (error && error.message) || "HTTP " + response.status,
      correlationId: (error && error.correlation_id) || "",
    };
  }

  async function load(options) {
    if (!document.documentElement.contains(app)) {
      return; // the SDK refused the parent and cleared the page
    }
    const mine = ++seq;
    if (inflight) {
      inflight.abort();
    }
    const controller = typeof AbortController === "function" ? new AbortController() : null;
    inflight = controller;
    showLoading();
    try {
      const context = await readTicket();
      if (mine !== seq) {
        return;
      }
      context.refresh = Boolean(options.refresh);
      context.order_id = selectedOrderId;
      if (search) {
        context.emails = search.emails || [];
        context.order_number = search.order_number || null;
        context.external_id = null;
      }
      const response = await fetch(panelsUrl, {
        method: "POST",
        headers: {
          Authorization: "Bearer " + session,
          "Content-Type": "application/json",
          Accept: "text/html",
        },
        body: JSON.stringify(context),
        credentials: "same-origin",
        cache: "no-store",
        signal: controller ? controller.signal : undefined,
      });
      if (response.ok) {
        const html = await response.text();
        if (mine !== seq) {
          return;
        }
        render("ready", function () {
          panels.innerHTML = html; // server-rendered with autoescape
        });
        return;
      }
      const error = await errorFrom(response);
      if (mine !== seq) {
        return;
      }
      if (error.status === 401 && EXPIRED_CODES.indexOf(error.code) !== -1) {
        render("expired", function () {
          message("expired", label("error.expired"), "");
        });
        return;
      }
      render("error", function () {
        message(
          "error",
          error.message,
          error.correlationId ? label("error.reference", { id: error.correlationId }) : ""
        );
      });
    } catch (err) {
      if (mine !== seq || (err && err.name === "AbortError")) {
        return;
      }
      render("error", function () {
        message(
          "error",
          err && err.name === "TimeoutError" ? label("error.timeout") : label("error.load"),
          ""
        );
      });
    } finally {
      if (mine === seq) {
        inflight = null;
      }
    }
  }

  let timer = null;

  // Bursts of ticket events (a requester change fires several) make one request.
  function schedule(contextChanged) {
    if (contextChanged) {
      selectedOrderId = null;
      search = null;
    }
    if (timer) {
      clearTimeout(timer);
    }
    timer = setTimeout(function () {
      timer = null;
      load({ refresh: false });
    }, DEBOUNCE_MS);
  }

  // Direct actions (button, order click) skip the debounce and cancel a scheduled re-fetch.
  function now(options) {
    if (timer) {
      clearTimeout(timer);
      timer = null;
    }
    load(options);
  }

  // ---- wiring ----------------------------------------------------------------------------

  if (typeof window.ZAFClient === "undefined") {
    render("error", function () {
      message("error", label("error.no_sdk"), "");
    });
    return;
  }
  client = window.ZAFClient.init();
  if (!client) {
    client = null;
    render("error", function () {
      message(
        "error",
        "This page only works inside Zendesk: open it from a ticket (the origin and app_guid " +
          "parameters Zendesk adds are missing).",
        ""
      );
    });
    return;
  }

  const contextEvents = [
    "ticket.requester.email.changed",
    "ticket.requester.id.changed",
    "ticket.brand.changed",
  ];
  if (orderFieldId) {
    contextEvents.push("ticket.custom_field_" + orderFieldId + ".changed");
  }
  contextEvents.forEach(function (name) {
    client.on(name, function () {
      schedule(true);
    });
  });
  client.on("ticket.saved", function () {
    schedule(false);
  });

  // The official SDK wipes the page ("Invalid domain") when the parent's origin is not
  // Zendesk's, yet may still finish its handshake: a detached page must not ask for panels.
  function detached() {
    return !document.documentElement.contains(app);
  }

  client.on("app.registered", function () {
    if (detached()) {
      return;
    }
    load({});
  });

  app.addEventListener("click", function (event) {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) {
      return;
    }
    const refresh = target.closest('[data-action="refresh"]');
    if (refresh && app.contains(refresh)) {
      event.preventDefault();
      // One refresh at a time: while a request is in flight the button is disabled, and a
      // click that still gets here (a script, a double click racing the render) does nothing.
      if (refresh.disabled || app.getAttribute("data-state") === "loading") {
        return;
      }
      now({ refresh: true });
      return;
    }
    const copyButton = target.closest("[data-copy]");
    if (copyButton && panels.contains(copyButton)) {
      event.preventDefault();
      copy(copyButton);
      return;
    }
    // Real links (e.g. "Open in Merchant Center") keep their default behaviour.
    const link = target.closest("a[href]");
    if (link && link.getAttribute("href") !== "#" && !link.hasAttribute("data-order-id")) {
      return;
    }
    const order = target.closest("[data-order-id]");
    if (order && panels.contains(order)) {
      event.preventDefault();
      selectedOrderId = order.getAttribute("data-order-id") || null;
      now({ refresh: false });
    }
  });

  panels.addEventListener("submit", function (event) {
    const form = event.target instanceof Element ? event.target.closest('[data-action="search"]') : null;
    if (!form) {
      return;
    }
    event.preventDefault();
    const input = form.querySelector('input[name="q"]');
    const error = form.querySelector(".search__error");
    const query = input ? String(input.value || "").trim() : "";
    let wanted = null;
    if (query.length <= 254 && EMAIL.test(query)) {
      wanted = { emails: [query] };
    } else if (ORDER_NUMBER.test(query)) {
      wanted = { order_number: query };
    }
    if (!wanted) {
      if (input) {
        input.setAttribute("aria-invalid", "true");
        input.focus();
      }
      if (error) {
        error.hidden = false;
      }
      return;
    }
    search = wanted;
    selectedOrderId = null;
    now({ refresh: false });
  });

  // ---- copy buttons ----------------------------------------------------------------------

  const copyTimers = new WeakMap();

  function copied(button, value) {
    // The button's own label is kept once, so a second click while it says "Copied" does not
    // make "Copied" its label for good.
    if (!button.hasAttribute("data-label")) {
      button.setAttribute("data-label", button.textContent || "");
    }
    button.setAttribute("data-copied", value);
    button.textContent = label("copied");
    clearTimeout(copyTimers.get(button));
    copyTimers.set(
      button,
      setTimeout(function () {
        button.removeAttribute("data-copied");
        button.textContent = button.getAttribute("data-label") || "";
      }, COPIED_MS)
    );
  }

  function copyBySelection(value) {
    // Inside Zendesk's iframe the Clipboard API may be refused (permissions policy).
    const area = document.createElement("textarea");
    area.value = value;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (e) {
      ok = false;
    }
    area.remove();
    return ok;
  }

  function copy(button) {
    const value = button.getAttribute("data-copy") || "";
    if (!value) {
      return;
    }
    if (navigator.clipboard && typeof navigator.clipboard.writeText === "function") {
      navigator.clipboard.writeText(value).then(
        function () {
          copied(button, value);
        },
        function () {
          if (copyBySelection(value)) {
            copied(button, value);
          }
        }
      );
      return;
    }
    if (copyBySelection(value)) {
      copied(button, value);
    }
  }

  // Panels may grow after render (e.g. a <details> opened by the agent).
  panels.addEventListener(
    "toggle",
    function () {
      window.requestAnimationFrame(resize);
    },
    true
  );
})();
