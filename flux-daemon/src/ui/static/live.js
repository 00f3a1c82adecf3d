// Live updates of the status page: when the daemon says a unit's jobs or syncs changed
// (server-sent events on /ui/events), the page is fetched again and its <main> swapped in,
// without a reload. Nothing here is needed to read the pages: they are plain HTML.
(function () {
  "use strict";
  var main = document.getElementById("content");
  var badge = document.getElementById("live");
  if (!main || !window.EventSource || !window.fetch || !window.DOMParser) return;
  var timer = null;
  var updates = 0;

  // Someone typing in a form on the page: wait rather than replace what they typed.
  function typing() {
    var a = document.activeElement;
    return a && main.contains(a) && (a.tagName === "INPUT" || a.tagName === "TEXTAREA") &&
      a.type !== "submit" && a.value !== "";
  }

  function refresh() {
    timer = null;
    if (typing()) { timer = setTimeout(refresh, 1000); return; }
    fetch(location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.redirected || !r.ok) throw new Error("status " + r.status);
        return r.text();
      })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("content");
        if (!fresh) return;
        main.replaceChildren.apply(main, Array.prototype.slice.call(fresh.childNodes).map(function (n) {
          return document.adoptNode(n);
        }));
        updates += 1;
        document.body.setAttribute("data-updates", String(updates));
      })
      .catch(function () { if (badge) badge.className = "off"; });
  }

  var events = new EventSource("/ui/events");
  events.addEventListener("changed", function () {
    if (timer === null) timer = setTimeout(refresh, 150);
  });
  events.onopen = function () {
    if (badge) { badge.className = "on"; badge.textContent = "live"; }
    document.body.setAttribute("data-live", "on");
  };
  events.onerror = function () { if (badge) { badge.className = "off"; badge.textContent = "offline"; } };
})();
