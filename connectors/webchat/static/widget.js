/* Parvandeh web chat widget: one file, no build step.
 *
 * Embed:  <script src="https://HOST/webchat/widget.js" data-ws-url="wss://HOST:8081/"
 *                 data-lang="fa" async></script>
 * Options (data- attributes on the script tag):
 *   data-ws-url     the chat server's websocket URL (required)
 *   data-lang       "fa" (default, right-to-left) or "en"
 *   data-open       "true" to show the chat panel open on load
 *   data-max-chars  longest message the server accepts (default 4000)
 *
 * The session token and every message not yet acknowledged by the server are kept in
 * localStorage: after a reload or a lost connection the widget resumes the session, shows the
 * history the server sends, and sends again (with the same client id) whatever was not
 * acknowledged; the server stores each client id once. Protocol: connectors/webchat/__init__.py.
 */
(function () {
  "use strict";

  var script = document.currentScript || {};
  var options = script.dataset || {};
  var lang = options.lang === "en" ? "en" : "fa";
  var wsUrl = options.wsUrl;
  var maxChars = parseInt(options.maxChars || "4000", 10);

  var STRINGS = {
    fa: {
      open: "گفتگو با کارشناس",
      title: "گفتگو با کارشناس خسارت",
      placeholder: "پیام خود را بنویسید…",
      send: "ارسال",
      close: "بستن",
      connecting: "در حال اتصال…",
      online: "آنلاین",
      offline: "قطع ارتباط؛ تلاش دوباره…",
      pending: "در حال ارسال",
      sent: "ارسال شد",
      failed: "ارسال نشد",
      too_long: "پیام بیش از حد طولانی است.",
      rate_limited: "پیام‌ها خیلی سریع فرستاده شده‌اند؛ کمی صبر کنید.",
      unavailable: "پیام هنوز ذخیره نشده است؛ دوباره فرستاده می‌شود.",
      error: "خطایی رخ داد.",
      agent: "کارشناس",
      you: "شما"
    },
    en: {
      open: "Chat with us",
      title: "Chat with a claims adjuster",
      placeholder: "Type your message…",
      send: "Send",
      close: "Close",
      connecting: "Connecting…",
      online: "Online",
      offline: "Disconnected; retrying…",
      pending: "Sending",
      sent: "Sent",
      failed: "Not sent",
      too_long: "The message is too long.",
      rate_limited: "Too many messages; please wait a moment.",
      unavailable: "Not stored yet; it will be sent again.",
      error: "Something went wrong.",
      agent: "Adjuster",
      you: "You"
    }
  };

  function t(key) {
    var own = STRINGS[lang][key];
    return own !== undefined ? own : STRINGS.en[key] || key;
  }

  // -- storage (falls back to memory where localStorage is unavailable) ----------------------

  var memory = {};
  var prefix = "parvandeh.webchat." + (wsUrl || "") + ".";

  function load(key, fallback) {
    var raw;
    try { raw = window.localStorage.getItem(prefix + key); } catch (e) { raw = memory[key]; }
    if (raw === null || raw === undefined) return fallback;
    try { return JSON.parse(raw); } catch (e) { return fallback; }
  }

  function save(key, value) {
    var raw = JSON.stringify(value);
    try { window.localStorage.setItem(prefix + key, raw); } catch (e) { memory[key] = raw; }
  }

  function uuid() {
    // crypto.randomUUID needs a secure context; getRandomValues works everywhere.
    var b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  // -- DOM ---------------------------------------------------------------------------------------

  function el(tag, className, attrs) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    for (var name in attrs || {}) node.setAttribute(name, attrs[name]);
    return node;
  }

  function ensureStylesheet() {
    if (!script.src || document.querySelector("link[data-parvandeh-webchat]")) return;
    var link = el("link", "", { rel: "stylesheet", href: script.src.replace(/widget\.js(\?.*)?$/, "widget.css"),
                                "data-parvandeh-webchat": "" });
    document.head.appendChild(link);
  }

  var root = el("div", "pv-chat", { dir: lang === "fa" ? "rtl" : "ltr", lang: lang });
  var toggle = el("button", "pv-toggle", { type: "button", "aria-expanded": "false" });
  toggle.textContent = t("open");
  var panel = el("section", "pv-panel", { role: "dialog", "aria-label": t("title") });
  panel.hidden = true;
  var header = el("header", "pv-header");
  var title = el("span", "pv-title");
  title.textContent = t("title");
  var status = el("span", "pv-status", { "data-status": "connecting", role: "status" });
  status.textContent = t("connecting");
  var closeButton = el("button", "pv-close", { type: "button", "aria-label": t("close") });
  closeButton.textContent = "×";
  header.append(title, status, closeButton);
  var log = el("ol", "pv-log", { role: "log", "aria-live": "polite" });
  var notice = el("p", "pv-notice", { role: "alert" });
  notice.hidden = true;
  var form = el("form", "pv-form");
  var input = el("textarea", "pv-input", { dir: "auto", rows: "2", maxlength: String(maxChars),
                                           placeholder: t("placeholder"), "aria-label": t("placeholder") });
  var sendButton = el("button", "pv-send", { type: "submit" });
  sendButton.textContent = t("send");
  form.append(input, sendButton);
  panel.append(header, log, notice, form);
  root.append(toggle, panel);

  function setOpen(open) {
    panel.hidden = !open;
    toggle.hidden = open;
    toggle.setAttribute("aria-expanded", String(open));
    if (open) input.focus();
  }

  function setStatus(name) {
    status.setAttribute("data-status", name);
    status.textContent = t(name);
  }

  function showNotice(text) {
    notice.textContent = text;
    notice.hidden = !text;
  }

  function formatTime(at) {
    var date = at ? new Date(at) : new Date();
    if (isNaN(date.getTime())) return "";
    return date.toLocaleTimeString(lang === "fa" ? "fa-IR" : "en-GB", { hour: "2-digit", minute: "2-digit" });
  }

  function findBubble(id) {
    for (var i = 0; i < log.children.length; i++) {
      if (log.children[i].getAttribute("data-id") === id) return log.children[i];
    }
    return null;
  }

  function setState(bubble, state) {
    bubble.setAttribute("data-state", state);
    var mark = bubble.querySelector(".pv-mark");
    mark.textContent = state === "acked" ? "✓" : state === "failed" ? "!" : "…";
    mark.title = t(state === "acked" ? "sent" : state);
  }

  function addBubble(id, direction, text, at, state) {
    var existing = findBubble(id);
    if (existing) return existing;
    var who = direction === "in" ? "pv-visitor" : "pv-agent";
    var bubble = el("li", "pv-msg " + who, { "data-id": id });
    var body = el("p", "pv-text", { dir: "auto" });
    body.textContent = text;  // customer and agent text is never HTML
    var meta = el("span", "pv-meta");
    var time = el("time", "pv-time");
    time.textContent = formatTime(at);
    var mark = el("span", "pv-mark");
    meta.append(time, mark);
    bubble.append(body, meta);
    log.appendChild(bubble);
    setState(bubble, state);
    log.scrollTop = log.scrollHeight;
    return bubble;
  }

  // -- conversation state ------------------------------------------------------------------------

  var session = load("session", null);
  var unacked = load("unacked", []);  // [{client_id, text, at}] in the order written
  var socket = null;
  var ready = false;
  var attempt = 0;
  var reconnectTimer = null;
  var retryTimer = null;  // the server asked to wait: nothing is sent until it fires

  function forget(clientId) {
    unacked = unacked.filter(function (m) { return m.client_id !== clientId; });
    save("unacked", unacked);
  }

  function transmit(message) {
    if (ready && !retryTimer && socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "message", client_id: message.client_id, text: message.text }));
    }
  }

  function resendLater(seconds) {
    // One wait for the whole queue, then every unacknowledged message again in the order
    // written: resent on its own, a refused message would be stored after the ones written
    // after it (sent meanwhile, or resent sooner).
    if (retryTimer) return;
    retryTimer = setTimeout(function () {
      retryTimer = null;
      unacked.forEach(transmit);
    }, Math.max(1, seconds || 5) * 1000);
  }

  function submit(text) {
    var message = { client_id: uuid(), text: text, at: new Date().toISOString() };
    unacked.push(message);
    save("unacked", unacked);
    addBubble(message.client_id, "in", text, message.at, "pending");
    transmit(message);
  }

  function onWelcome(frame) {
    session = frame.session;
    save("session", session);
    attempt = 0;
    ready = true;
    setStatus("online");
    if (frame.history) {
      log.textContent = "";
      frame.history.forEach(function (item) {
        addBubble(item.id, item.direction, item.text, item.at, "acked");
        // Stored before the acknowledgement was lost: nothing to resend.
        if (item.direction === "in") forget(item.id);
      });
    }
    unacked.forEach(function (message) {
      addBubble(message.client_id, "in", message.text, message.at, "pending");
      transmit(message);
    });
  }

  function onError(frame) {
    var bubble = frame.client_id ? findBubble(frame.client_id) : null;
    if (frame.code === "rate_limited" || frame.code === "unavailable") {
      if (frame.client_id) resendLater(frame.retry_after);
      showNotice(t(frame.code));
      return;
    }
    if (frame.client_id) {
      // Refused for good (too long, malformed): sending it again would not help.
      forget(frame.client_id);
      if (bubble) setState(bubble, "failed");
    }
    showNotice(STRINGS[lang][frame.code] || STRINGS.en[frame.code] || frame.detail || t("error"));
  }

  var handlers = {
    welcome: onWelcome,
    ack: function (frame) {
      forget(frame.client_id);
      var bubble = findBubble(frame.client_id);
      if (bubble) setState(bubble, "acked");
      showNotice("");
    },
    reply: function (frame) { addBubble(frame.id, "out", frame.text, frame.at, "acked"); },
    error: onError
  };

  function connect() {
    reconnectTimer = null;
    setStatus("connecting");
    try {
      socket = new WebSocket(wsUrl);
    } catch (e) {
      scheduleReconnect();
      return;
    }
    socket.onopen = function () {
      socket.send(JSON.stringify({ type: "hello", session: session, lang: lang }));
    };
    socket.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      var handler = handlers[frame.type];
      if (handler) handler(frame);
    };
    socket.onclose = function () {
      ready = false;
      socket = null;
      setStatus("offline");
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    if (reconnectTimer) return;
    // Exponential backoff with jitter, so a restarted server is not hit by every visitor at once.
    var delay = Math.min(30000, 500 * Math.pow(2, attempt)) * (0.5 + Math.random() / 2);
    attempt += 1;
    reconnectTimer = setTimeout(connect, delay);
  }

  window.addEventListener("online", function () {
    if (!socket && reconnectTimer) {
      clearTimeout(reconnectTimer);
      connect();
    }
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    submit(text);
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  function close() {
    setOpen(false);
    toggle.focus();  // the focused close button is gone: keyboard focus stays in the widget
  }

  toggle.addEventListener("click", function () { setOpen(true); });
  closeButton.addEventListener("click", close);
  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !event.isComposing) close();
  });

  function mount() {
    ensureStylesheet();
    document.body.appendChild(root);
    unacked.forEach(function (m) { addBubble(m.client_id, "in", m.text, m.at, "pending"); });
    setOpen(options.open === "true");
    if (wsUrl) connect();
    else showNotice("data-ws-url is missing on the widget's script tag");
  }

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
