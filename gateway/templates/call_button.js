/* "Call us" button. Include on a page of a site listed in the gateway's WEB_CALL_ORIGINS:
 *   <script src="{{ gateway_origin }}/call/button.js" data-team="sales" data-context="<signed>" async></script>
 * It adds a button that opens the gateway's caller page in a dialog (an iframe allowed to use the
 * microphone). data-context: caller context your backend signed (README: signed context). */
(function () {
  "use strict";
  var script = document.currentScript;
  var origin = {{ gateway_origin | tojson }};
  var team = (script && script.getAttribute("data-team")) || "";
  var context = (script && script.getAttribute("data-context")) || "";
  var label = (script && script.getAttribute("data-label")) || "Call us";

  function pageUrl() {
    var fragment = [];
    if (team) fragment.push("team=" + encodeURIComponent(team));
    if (context) fragment.push("context=" + encodeURIComponent(context));
    return origin + "/call" + (fragment.length ? "#" + fragment.join("&") : "");
  }

  function open(button) {
    var dialog = document.createElement("div");
    dialog.setAttribute("role", "dialog");
    dialog.setAttribute("aria-modal", "true");
    dialog.setAttribute("aria-label", label);
    dialog.style.cssText = "position:fixed;inset:auto 1rem 1rem auto;z-index:2147483647;width:min(26rem,calc(100vw - 2rem));" +
      "height:min(34rem,calc(100vh - 2rem));background:#fff;border-radius:12px;box-shadow:0 4px 24px rgba(0,0,0,.3);" +
      "display:flex;flex-direction:column;overflow:hidden";
    var close = document.createElement("button");
    close.type = "button";
    close.textContent = "Close";
    close.style.cssText = "align-self:flex-end;margin:.4rem;font:inherit;min-height:40px;padding:0 1rem;cursor:pointer";
    var frame = document.createElement("iframe");
    frame.src = pageUrl();
    frame.title = label;
    frame.allow = "microphone; autoplay";
    frame.style.cssText = "border:0;flex:1;width:100%";
    function dismiss() {
      dialog.remove();
      button.setAttribute("aria-expanded", "false");
      button.focus();
    }
    close.addEventListener("click", dismiss);
    dialog.addEventListener("keydown", function (event) { if (event.key === "Escape") dismiss(); });
    dialog.appendChild(close);
    dialog.appendChild(frame);
    document.body.appendChild(dialog);
    button.setAttribute("aria-expanded", "true");
    close.focus();
  }

  function mount() {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "gateway-call-button";
    button.textContent = label;
    button.setAttribute("aria-haspopup", "dialog");
    button.setAttribute("aria-expanded", "false");
    button.style.cssText = "position:fixed;right:1rem;bottom:1rem;z-index:2147483646;font:600 1.1rem system-ui,sans-serif;" +
      "min-height:48px;padding:0 1.4rem;border:0;border-radius:24px;background:#1d5fd1;color:#fff;cursor:pointer;" +
      "box-shadow:0 2px 8px rgba(0,0,0,.25)";
    button.addEventListener("click", function () { open(button); });
    document.body.appendChild(button);
  }

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
