/*
 * A stand-in for the Zendesk Support parent frame, used by the embedded demo's simulated ticket
 * page and by the browser tests: what the ZAF framework does around a ticket_sidebar app
 * iframe, enough for the real ZAF SDK (the official zendesk_app_framework_sdk 2.0.37, lib/client.js)
 * running inside the iframe. Never part of the sidebar itself.
 *
 * Loading (signed URLs): a form with method POST, target = the iframe's name, action =
 *   <app url>?origin=<this page's origin>&app_guid=<guid>, one field `token`; submitted once.
 *
 * Messages from the SDK (window.parent.postMessage(JSON string, origin)):
 *   {key: "iframe.handshake", message: {version}, appGuid, instanceGuid}
 *       -> reply {key: "zaf.app.registered", message: {context, metadata}}
 *   {key: "iframe.on:<event>", message: {subscriberCount}}   (and "iframe.off:<event>")
 *       -> recorded; only subscribed events are delivered by fire()
 *   {key: "iframe.trigger:<event>", message: data}           -> recorded
 *   {key: "request:<n>", message: options}                   (client.request)
 *       -> fetch, then {key: "zaf.request:<n>.done" | ".fail", message: {responseArgs: [...]}}
 *   {id, request: "get", params: [path, ...]}
 *       -> {id, result: {<path>: value, ..., errors: {<path>: {message, name, path}}}}
 *   {id, request: "set", params: {path: value}}               -> {id, result: {}}
 *   {id, request: "invoke", params: {name: [args...]}}        -> {id, result: {}}
 *       "resize" args[0] = {width, height}: recorded and applied to the iframe element.
 * Events into the iframe: {key: "zaf.<event>", message: payload}.
 *
 * Replies go to the iframe's window with targetOrigin = the origin the handshake came from; the
 * SDK accepts a message only if event.source === window.parent and event.origin === `origin`.
 *
 * Everything observable is reported to Python through an exposed binding (config.report).
 */
(function () {
  "use strict";

  var state = null;

  function report(kind, data) {
    if (state && state.config.report && typeof window[state.config.report] === "function") {
      try {
        window[state.config.report](kind, data === undefined ? null : data);
      } catch (e) {
        // the Python side may already be gone at teardown
      }
    }
  }

  function clone(value) {
    return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
  }

  function renderTicket() {
    var t = state.ticket;
    document.getElementById("ticket-subject").textContent =
      t.subject || (t.id == null ? "(new ticket)" : "Ticket #" + t.id);
    document.getElementById("ticket-id").textContent = t.id == null ? "(new)" : "#" + t.id;
    var r = t.requester;
    document.getElementById("ticket-requester").textContent = r
      ? (r.name || "") + " <" + (r.email || "no email") + ">"
      : "(none)";
    document.getElementById("ticket-brand").textContent = t.brand ? t.brand.name || t.brand.id : "-";
  }

  // ---- the ticket data model behind client.get / client.set --------------------------------

  var CUSTOM_FIELD = /^customField:custom_field_(\d+)$/;

  function pathError(path, message) {
    return { message: message, name: "InvalidPath", path: path };
  }

  // Resolves a ZAF path against {ticket, currentUser, ...}. A value under a null parent (the
  // requester of a new ticket) is null; an unknown path is an error, as Zendesk reports it.
  function lookup(path) {
    var segments = path.split(".");
    var current = state.data;
    for (var i = 0; i < segments.length; i++) {
      var segment = segments[i];
      if (current === null) {
        return { value: null };
      }
      if (typeof current !== "object") {
        return { error: pathError(path, "Could not find handler") };
      }
      var field = CUSTOM_FIELD.exec(segment);
      if (field) {
        var fields = current.custom_fields || {};
        current = Object.prototype.hasOwnProperty.call(fields, field[1]) ? fields[field[1]] : null;
        continue;
      }
      if (!Object.prototype.hasOwnProperty.call(current, segment)) {
        return { error: pathError(path, "Could not find handler") };
      }
      current = current[segment];
    }
    return { value: current === undefined ? null : clone(current) };
  }

  function assign(path, value) {
    var segments = path.split(".");
    var last = segments.pop();
    var target = state.data;
    segments.forEach(function (segment) {
      if (target[segment] === null || typeof target[segment] !== "object") {
        target[segment] = {};
      }
      target = target[segment];
    });
    var field = CUSTOM_FIELD.exec(last);
    if (field) {
      target.custom_fields = target.custom_fields || {};
      target.custom_fields[field[1]] = value;
    } else {
      target[last] = value;
    }
  }

  // ---- postMessage plumbing --------------------------------------------------------------

  function send(msg) {
    if (!state.appWindow) {
      throw new Error("the app has not shaken hands yet");
    }
    state.appWindow.postMessage(JSON.stringify(msg), state.appOrigin);
  }

  function answer(data) {
    var result = {};
    if (data.request === "get") {
      var errors = {};
      (data.params || []).forEach(function (path) {
        var found = lookup(path);
        if (found.error) {
          errors[path] = found.error;
        } else {
          result[path] = found.value;
        }
      });
      if (Object.keys(errors).length) {
        result.errors = errors;
      }
    } else if (data.request === "set") {
      Object.keys(data.params || {}).forEach(function (path) {
        assign(path, data.params[path]);
        result[path] = data.params[path];
      });
      renderTicket();
    } else if (data.request === "invoke") {
      Object.keys(data.params || {}).forEach(function (name) {
        var args = data.params[name] || [];
        state.invocations.push({ name: name, args: args });
        report("invoke", { name: name, args: args });
        if (name === "resize" && args[0]) {
          var size = args[0];
          state.resizes.push(size);
          if (size.height) {
            state.iframe.style.height = /^\d+$/.test(String(size.height)) ? size.height + "px" : size.height;
          }
          report("resize", size);
        }
        result[name] = null;
      });
    } else {
      send({ id: data.id, error: { name: "UnknownRequest", message: "unknown request " + data.request } });
      return;
    }
    if (state.config.responseDelayMs) {
      setTimeout(function () {
        send({ id: data.id, result: result });
      }, state.config.responseDelayMs);
    } else {
      send({ id: data.id, result: result });
    }
  }

  function proxyRequest(key, options) {
    options = options || {};
    var token = state.config.secureJwt || "";
    function fill(text) {
      return options.secure && typeof text === "string" ? text.split("{{jwt.token}}").join(token) : text;
    }
    var headers = {};
    Object.keys(options.headers || {}).forEach(function (name) {
      headers[name] = fill(options.headers[name]);
    });
    if (options.contentType) {
      headers["Content-Type"] = options.contentType;
    }
    report("request", { key: key, options: options });
    fetch(fill(options.url), {
      method: options.type || "GET",
      headers: headers,
      body: options.data === undefined ? undefined : fill(options.data),
    })
      .then(function (response) {
        return response.text().then(function (text) {
          var body = text;
          if ((response.headers.get("content-type") || "").indexOf("json") !== -1) {
            try {
              body = JSON.parse(text);
            } catch (e) {
              body = text;
            }
          }
          var xhr = { status: response.status, responseText: text };
          if (response.ok) {
            send({ key: "zaf." + key + ".done", message: { responseArgs: [body, "success", xhr] } });
          } else {
            send({ key: "zaf." + key + ".fail", message: { responseArgs: [xhr, "error", response.statusText] } });
          }
        });
      })
      .catch(function (err) {
        send({
          key: "zaf." + key + ".fail",
          message: { responseArgs: [{ status: 0, responseText: String(err) }, "error", String(err)] },
        });
      });
  }

  function onMessage(event) {
    if (!state || !state.iframe || event.source !== state.iframe.contentWindow) {
      return;
    }
    var data = event.data;
    if (typeof data === "string") {
      try {
        data = JSON.parse(data);
      } catch (e) {
        return;
      }
    }
    if (!data || typeof data !== "object") {
      return;
    }
    state.messages.push(data);
    report("message", data);

    if (data.key === "iframe.handshake") {
      state.appWindow = event.source;
      state.appOrigin = event.origin;
      state.handshakes.push({ origin: event.origin, message: data.message, appGuid: data.appGuid });
      report("handshake", { origin: event.origin, version: data.message && data.message.version });
      var register = function () {
        send({
          key: "zaf.app.registered",
          message: { context: clone(state.context), metadata: clone(state.metadata) },
        });
        report("registered", null);
      };
      if (state.config.registerDelayMs) {
        setTimeout(register, state.config.registerDelayMs);
      } else {
        register();
      }
      return;
    }
    if (data.request && data.id) {
      answer(data);
      return;
    }
    if (typeof data.key !== "string") {
      return;
    }
    var on = /^iframe\.(on|off):(.+)$/.exec(data.key);
    if (on) {
      var count = (data.message && data.message.subscriberCount) || 0;
      state.subscriptions[on[2]] = count;
      report("subscribe", { event: on[2], count: count });
      return;
    }
    if (data.key.indexOf("iframe.trigger:") === 0) {
      report("trigger", { event: data.key.slice("iframe.trigger:".length), data: data.message });
      return;
    }
    if (/^request:\d+$/.test(data.key)) {
      proxyRequest(data.key, data.message);
    }
  }

  window.addEventListener("message", onMessage);

  // ---- the API the tests call through page.evaluate ---------------------------------------

  window.fakeZendesk = {
    /*
     * config: {appUrl, token, appGuid, iframeName, ticket, currentUser, account, report,
     *          registerDelayMs, responseDelayMs, secureJwt, extraQuery}
     */
    start: function (config) {
      // Every ticket has these attributes; null on a new ticket (no requester yet).
      var ticket = {
        id: null,
        subject: "",
        status: "new",
        requester: null,
        assignee: null,
        brand: null,
        tags: [],
        custom_fields: {},
      };
      var given = clone(config.ticket || {});
      Object.keys(given).forEach(function (key) {
        ticket[key] = given[key];
      });
      state = {
        config: config,
        ticket: ticket,
        data: {
          ticket: ticket,
          currentUser: clone(config.currentUser || { id: 9001, name: "Agent Smith", email: "agent@example.com", role: "agent", locale: "en-US" }),
          currentAccount: { subdomain: (config.account || {}).subdomain || "example" },
        },
        context: {
          instanceGuid: config.appGuid,
          product: "support",
          account: { subdomain: (config.account || {}).subdomain || "example" },
          location: "ticket_sidebar",
          ticketId: ticket.id == null ? null : ticket.id,
        },
        metadata: {
          appId: 0,
          installationId: (config.account || {}).installationId || 1,
          name: "commerce-context",
          version: "test",
          settings: { title: "commerce-context" },
        },
        iframe: null,
        appWindow: null,
        appOrigin: null,
        messages: [],
        handshakes: [],
        subscriptions: {},
        invocations: [],
        resizes: [],
      };
      renderTicket();

      var host = document.getElementById("app-host");
      host.replaceChildren();
      var iframe = document.createElement("iframe");
      iframe.name = config.iframeName;
      iframe.title = "commerce-context";
      host.appendChild(iframe);
      state.iframe = iframe;

      var query = new URLSearchParams(config.extraQuery || {});
      query.set("origin", config.originParam || window.location.origin);
      query.set("app_guid", config.appGuid);
      var action = new URL(config.appUrl);
      query.forEach(function (value, name) {
        action.searchParams.set(name, value);
      });

      var form = document.createElement("form");
      form.method = "POST";
      form.target = config.iframeName;
      form.action = action.toString();
      form.style.display = "none";
      var field = document.createElement("input");
      field.type = "hidden";
      field.name = "token";
      field.value = config.token;
      form.appendChild(field);
      document.body.appendChild(form);
      form.submit();
      form.remove();
      return action.toString();
    },

    // Merge top-level ticket attributes (requester, brand, custom_fields, id, ...).
    setTicket: function (changes) {
      Object.keys(changes || {}).forEach(function (key) {
        state.ticket[key] = clone(changes[key]);
      });
      if ("id" in (changes || {})) {
        state.context.ticketId = state.ticket.id;
      }
      renderTicket();
      return clone(state.ticket);
    },

    // Deliver a framework event, as Zendesk does for events the app subscribed to.
    fire: function (name, payload, force) {
      if (!force && !state.subscriptions[name]) {
        return false;
      }
      send({ key: "zaf." + name, message: payload === undefined ? null : payload });
      return true;
    },

    snapshot: function () {
      return {
        ticket: clone(state.ticket),
        subscriptions: clone(state.subscriptions),
        resizes: clone(state.resizes),
        invocations: clone(state.invocations),
        handshakes: clone(state.handshakes),
        messages: clone(state.messages),
        iframeHeight: state.iframe ? state.iframe.getBoundingClientRect().height : null,
      };
    },
  };
})();
