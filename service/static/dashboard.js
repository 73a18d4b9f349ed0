// artbandit dashboard: refresh the server-rendered page in place, and fall back to placeholder boxes
// for thumbnails that fail to load. No dependencies, no network beyond this page's own URL.
(function () {
  "use strict";

  var failed = new Set();  // image URLs that failed once are not requested again on refresh

  function showPlaceholder(img) {
    img.hidden = true;
    var placeholder = img.nextElementSibling;
    if (placeholder) { placeholder.hidden = false; }
  }

  function bindThumbnails(root) {
    root.querySelectorAll("img[data-fallback]").forEach(function (img) {
      if (img.complete && img.naturalWidth === 0) {
        failed.add(img.getAttribute("src"));
        showPlaceholder(img);
      } else {
        img.addEventListener("error", function () {
          failed.add(img.getAttribute("src"));
          showPlaceholder(img);
        });
      }
    });
  }

  function dropFailed(root) {  // before the fresh nodes enter the document, so nothing is fetched
    root.querySelectorAll("img[data-fallback]").forEach(function (img) {
      if (failed.has(img.getAttribute("src"))) {
        img.removeAttribute("src");
        img.removeAttribute("data-fallback");
        showPlaceholder(img);
      }
    });
  }

  function openDetails(root) {
    var ids = [];
    root.querySelectorAll("details[id]").forEach(function (d) { if (d.open) { ids.push(d.id); } });
    return ids;
  }

  function clock() {
    return new Date().toISOString().slice(11, 19) + " UTC";
  }

  function start() {
    var content = document.getElementById("content");
    var status = document.getElementById("refresh-status");
    if (!content) { return; }
    bindThumbnails(content);
    var every = parseInt(content.getAttribute("data-refresh-ms"), 10);
    if (!(every > 0)) { return; }
    var busy = false;

    function show(text, stale) {
      if (!status) { return; }
      status.textContent = text;
      status.classList.toggle("stale", stale);
    }

    function refresh() {
      if (busy || document.hidden) { return; }
      busy = true;
      fetch(window.location.href, { headers: { "Accept": "text/html" }, cache: "no-store", credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.text();
        })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("content");
          if (!fresh) { throw new Error("unexpected page"); }
          dropFailed(fresh);
          var open = openDetails(content);
          content.replaceChildren.apply(content, Array.prototype.slice.call(fresh.childNodes));
          open.forEach(function (id) {
            var d = document.getElementById(id);
            if (d) { d.open = true; }
          });
          bindThumbnails(content);
          show("updated " + clock(), false);
        })
        .catch(function (err) {
          show("stale: " + err.message + " (retrying)", true);
        })
        .finally(function () { busy = false; });
    }

    window.setInterval(refresh, every);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) { refresh(); } });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
