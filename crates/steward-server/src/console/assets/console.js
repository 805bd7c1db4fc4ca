// Steward console: refreshes the approval list, counts down expiries. Served from the binary
// (script-src 'self'); it reads only same-origin HTML the server escaped.
"use strict";
(function () {
  const POLL_MS = 1000;

  function countdown() {
    const now = Date.now();
    for (const el of document.querySelectorAll("[data-expires]")) {
      const at = Date.parse(el.getAttribute("data-expires"));
      if (Number.isNaN(at)) continue;
      let left = Math.round((at - now) / 1000);
      if (left <= 0) {
        el.textContent = "expired";
        el.classList.add("expired");
        continue;
      }
      const h = Math.floor(left / 3600);
      left -= h * 3600;
      const m = Math.floor(left / 60);
      const s = left - m * 60;
      el.textContent = (h ? h + " h " : "") + (h || m ? m + " min " : "") + s + " s left";
    }
  }

  function poll(container) {
    const url = container.getAttribute("data-poll");
    let last = container.innerHTML;
    let busy = false;
    async function tick() {
      if (busy) return;
      busy = true;
      try {
        const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
        if (response.status === 401) {
          window.location.assign("/ui/sign-in?ended=token");
          return;
        }
        if (!response.ok) return;
        const html = await response.text();
        if (html !== last) {
          const focused = document.activeElement && document.activeElement.id;
          container.innerHTML = html;
          last = container.innerHTML;
          countdown();
          if (focused) {
            const again = document.getElementById(focused);
            if (again) again.focus();
          }
        }
      } catch (_) {
        // Offline or restarting: try again on the next tick.
      } finally {
        busy = false;
      }
    }
    setInterval(tick, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    countdown();
    setInterval(countdown, 1000);
    const container = document.getElementById("approvals");
    if (container && container.hasAttribute("data-poll")) poll(container);
  });
})();
