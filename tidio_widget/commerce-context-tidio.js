/*! commerce-context Tidio snippet: consent first, an opaque identity, cart context. MIT. */
(function (window, document) {
  "use strict";
  var options = null, consented = false, started = false, loaded = false;
  var identity = null, timer = null, pending = [];

  function post(url, body, headers) {
    return window.fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: Object.assign({"Content-Type": "application/json"}, headers || {}),
      body: JSON.stringify(body || {})
    }).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status + " from " + url);
      return response.json();
    });
  }

  // Who the shopper is comes from the backend (the storefront's server, or the shopper's own
  // commercetools token): never from anything this page could make up.
  function identify() {
    if (typeof options.identify === "function") return Promise.resolve(options.identify());
    var headers = {};
    var token = typeof options.accessToken === "function" ? options.accessToken() : null;
    return Promise.resolve(token).then(function (value) {
      if (value) headers.Authorization = "Bearer " + value;
      return post(options.identifyUrl, options.identifyBody || {}, headers);
    });
  }

  function api() { return window.tidioChatApi; }

  function setProperties(properties) {
    if (!loaded) { pending.push(properties); return; }
    var clean = {};
    Object.keys(properties || {}).forEach(function (name) {
      var value = properties[name];
      if (value !== null && value !== undefined) clean[name] = value;
    });
    if (Object.keys(clean).length) api().setContactProperties(clean);
  }

  // The cart's properties, as the backend reads them from commercetools (signed request).
  function refreshCart() {
    if (!identity || !identity.visitor_token || !options.backendUrl) return Promise.resolve();
    return post(options.backendUrl + "/tidio/cart", {visitor_token: identity.visitor_token})
      .then(function (answer) { setProperties(answer.properties); })
      .catch(report);
  }

  function report(error) {
    if (typeof options.onError === "function") options.onError(error);
  }

  function onReady() {
    if (loaded) return;
    loaded = true;
    pending.splice(0).forEach(setProperties);
    refreshCart();
    if (typeof options.onReady === "function") options.onReady(api());
  }

  function start() {
    if (started || !consented || !options) return;
    started = true;
    identify().then(function (answer) {
      // Only what the page needs; the panel link is the agents' and never set from here.
      identity = {shopper: answer && answer.shopper, distinct_id: answer && answer.distinct_id,
                  visitor_token: answer && answer.visitor_token};
      // Guests stay anonymous visitors; a known shopper gets the opaque distinct_id, which
      // Tidio reads when its script loads (so it is set first).
      if (identity.shopper === "customer" && identity.distinct_id) {
        document.tidioIdentify = {distinct_id: String(identity.distinct_id).slice(0, 55)};
      }
      document.addEventListener("tidioChat-ready", onReady);
      var script = document.createElement("script");
      script.src = options.scriptUrl || "https://code.tidio.co/" + options.publicKey + ".js";
      script.async = true;
      script.setAttribute("data-cc-tidio", "");
      document.body.appendChild(script);
    }).catch(function (error) { started = false; report(error); });
  }

  // IAB TCF v2: consent to store and access information on a device (purpose 1, or those
  // configured) and, when a Tidio vendor id is configured, to that vendor.
  function listenTcf() {
    if (typeof window.__tcfapi !== "function" || options.tcf === false) return;
    window.__tcfapi("addEventListener", 2, function (data, ok) {
      if (!ok || !data || (data.eventStatus !== "tcloaded" &&
          data.eventStatus !== "useractioncomplete")) return;
      var purposes = (data.purpose && data.purpose.consents) || {};
      var granted = (options.tcfPurposes || [1]).every(function (p) { return purposes[p]; });
      if (granted && options.tcfVendorId) {
        granted = !!(data.vendor && data.vendor.consents && data.vendor.consents[options.tcfVendorId]);
      }
      if (data.gdprApplies === false) granted = true;
      CommerceContextTidio.consent(granted);
    });
  }

  var CommerceContextTidio = {
    init: function (settings) {
      options = Object.assign({cartDebounce: 300}, settings);
      if (!options.publicKey && !options.scriptUrl) throw new Error("publicKey is required");
      listenTcf();
      if (options.consent === true) CommerceContextTidio.consent(true);
      return CommerceContextTidio;
    },
    // Call from the consent banner or CMP: true once the shopper agreed to the chat.
    consent: function (granted) {
      consented = !!granted;
      if (consented) start();
    },
    // Call after every cart change; bursts are folded into one request.
    cartChanged: function () {
      if (!started) return;
      window.clearTimeout(timer);
      timer = window.setTimeout(refreshCart, options.cartDebounce);
    },
    track: function (name, data) { if (loaded) api().track(name, data || {}); },
    get state() {
      return {consented: consented, started: started, loaded: loaded,
              shopper: identity ? identity.shopper : null};
    }
  };
  window.CommerceContextTidio = CommerceContextTidio;
})(window, document);
