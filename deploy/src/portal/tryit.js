(function () {
  "use strict";
  var main = document.getElementById("main");
  var collection = main.getAttribute("data-collection");
  var keyField = main.getAttribute("data-key");
  var form = document.getElementById("tryit-form");
  var keyInput = document.getElementById("tryit-key");
  var base = document.getElementById("tryit-base");
  var op = document.getElementById("tryit-op");
  var id = document.getElementById("tryit-id");
  var query = document.getElementById("tryit-query");
  var body = document.getElementById("tryit-body");
  var send = document.getElementById("tryit-send");
  var status = document.getElementById("tryit-status");
  var out = document.getElementById("tryit-response");
  var bases = document.querySelectorAll(".base");

  // Served, this page is {stage URL}/docs, whatever the host (the
  // execute-api URL, a custom domain and base path, /restapis/... or
  // {tenant}.localhost locally): the API is the URL without /docs. A copy
  // opened elsewhere starts from the API's custom domain, when it has one.
  var path = location.pathname.replace(/\/docs\/?$/, "");
  if (/^https?:$/.test(location.protocol) && path !== location.pathname) {
    base.value = location.origin + path;
  }

  function baseUrl() {
    return base.value.trim().replace(/\/+$/, "");
  }

  function showBase() {
    var b = baseUrl();
    if (!b) {
      return;
    }
    for (var i = 0; i < bases.length; i++) {
      bases[i].textContent = b;
    }
  }
  base.addEventListener("input", showBase);
  showBase();

  // The body follows the operation until it is edited by hand.
  var shown = body.value;
  op.addEventListener("change", function () {
    var example = op.options[op.selectedIndex].getAttribute("data-body") || "";
    if (body.value === shown) {
      body.value = example;
      shown = example;
    }
  });

  function pretty(text) {
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch (e) {
      return text;
    }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var option = op.options[op.selectedIndex];
    var url = baseUrl() + "/" + collection;
    if (option.getAttribute("data-item") === "true") {
      url += "/" + encodeURIComponent(id.value.trim());
    }
    var q = query.value.trim().replace(/^\?/, "");
    if (op.value === "search" && q) {
      url += "?" + q;
    }
    // The key is read from the field at the moment of sending and goes
    // only into this request's header: never stored, never in a URL.
    var headers = {};
    if (keyInput.value) {
      headers["x-api-key"] = keyInput.value;
    }
    var init = {
      method: option.getAttribute("data-method"),
      headers: headers,
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer"
    };
    var contentType = option.getAttribute("data-content-type");
    if (contentType) {
      headers["content-type"] = contentType;
      init.body = body.value;
    }
    send.disabled = true;
    status.textContent = "sending";
    out.textContent = "";
    fetch(url, init).then(function (response) {
      return response.text().then(function (text) {
        status.textContent = String(response.status);
        out.textContent = pretty(text);
        if (op.value === "add" && response.status === 201) {
          try {
            var created = JSON.parse(text);
            if (created && typeof created[keyField] === "string") {
              id.value = created[keyField];
            }
          } catch (e) {
            // Not JSON: nothing to carry over.
          }
        }
      });
    }, function (error) {
      status.textContent = "no response";
      out.textContent = "The request did not complete (" + error.message + "). A copy of this page opened from a file or another site cannot call the API: the browser's same-origin rules stop it; use the page the API serves at /docs.";
    }).then(function () {
      send.disabled = false;
    });
  });

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var done = false;
      try {
        done = document.execCommand("copy");
      } catch (e) {
        done = false;
      }
      document.body.removeChild(area);
      if (done) {
        resolve();
      } else {
        reject(new Error("copy refused"));
      }
    });
  }

  var buttons = document.querySelectorAll("button.copy");
  for (var i = 0; i < buttons.length; i++) {
    buttons[i].addEventListener("click", function (event) {
      var button = event.currentTarget;
      var label = button.firstChild;
      var source = document.getElementById(button.getAttribute("data-copy"));
      copy(source.textContent).then(function () {
        label.nodeValue = "Copied";
      }, function () {
        label.nodeValue = "Select the text to copy";
      }).then(function () {
        setTimeout(function () {
          label.nodeValue = "Copy";
        }, 2000);
      });
    });
  }
})();
