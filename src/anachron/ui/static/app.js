/* anachron web UI: the reader's time zone. Pages are rendered in the zone of the anachron_tz cookie (UTC
   without it). On a first visit this sets the cookie to the browser's zone and, when that is not the zone the
   page was rendered in, loads the page again (once: from then on every page comes in the browser's zone).
   No other script. */
(function () {
  "use strict";
  var root = document.documentElement;
  if (root.hasAttribute("data-tz-chosen")) return;
  var browser = (Intl.DateTimeFormat().resolvedOptions() || {}).timeZone;
  if (!browser) return;
  if (!/^[A-Za-z0-9_+\/-]+$/.test(browser)) return;
  document.cookie = "anachron_tz=" + browser + "; path=/; max-age=31536000; samesite=strict";
  // cookies may be off, or the server may not know the zone: reload once at most, never in a loop
  var again = false;
  try { again = !sessionStorage.getItem("anachron-tz-reloaded"); sessionStorage.setItem("anachron-tz-reloaded", "1"); }
  catch (e) { again = false; }
  if (again && document.cookie.indexOf("anachron_tz=") !== -1 && browser !== root.getAttribute("data-tz")) {
    location.reload();
  }
})();
