// Runs the WebAuthn ceremony of a page: registering a security key or
// passkey, or signing in with one. The server's CSP allows only scripts
// from this origin, so pages carry no script of their own; they describe
// the ceremony in markup:
//
//   <form method="post" data-webauthn="create" (or "get")
//         data-webauthn-options="{JSON from the server's Begin step}">
//     <p data-webauthn-error role="alert" hidden></p>
//     <input type="hidden" name="webauthn_response">
//     <button type="submit">Use security key</button>
//   </form>
//
// Sending the form (its submit button, Enter, or a button marked
// data-webauthn-start) asks the browser for the credential, writes the
// result into webauthn_response as the JSON the server's parser reads, and
// sends the form on. On failure a message is shown and the form stays as
// it was, so the person can try again.
(function () {
  "use strict";

  // Options and results travel as base64url strings; the browser API
  // wants and gives ArrayBuffers.
  function toBuffer(value) {
    var s = String(value).replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) {
      s += "=";
    }
    var bin = atob(s);
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) {
      bytes[i] = bin.charCodeAt(i);
    }
    return bytes.buffer;
  }

  function toBase64URL(buffer) {
    var bytes = new Uint8Array(buffer);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) {
      bin += String.fromCharCode(bytes[i]);
    }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function decodeDescriptors(list) {
    return (list || []).map(function (d) {
      var out = Object.assign({}, d);
      out.id = toBuffer(d.id);
      return out;
    });
  }

  // decodeOptions turns the server's JSON into what create() or get()
  // takes. Only the members holding bytes change.
  function decodeOptions(mode, options) {
    var pk = Object.assign({}, options.publicKey);
    pk.challenge = toBuffer(pk.challenge);
    if (mode === "create") {
      pk.user = Object.assign({}, pk.user, { id: toBuffer(pk.user.id) });
      pk.excludeCredentials = decodeDescriptors(pk.excludeCredentials);
    } else if (pk.allowCredentials) {
      pk.allowCredentials = decodeDescriptors(pk.allowCredentials);
    }
    var request = { publicKey: pk };
    if (options.mediation) {
      request.mediation = options.mediation;
    }
    return request;
  }

  // encodeCredential is the fallback for browsers without
  // PublicKeyCredential.toJSON(), giving the same shape.
  function encodeCredential(cred) {
    var r = cred.response;
    var out = {
      id: cred.id,
      rawId: toBase64URL(cred.rawId),
      type: cred.type,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: toBase64URL(r.clientDataJSON) }
    };
    if (cred.authenticatorAttachment) {
      out.authenticatorAttachment = cred.authenticatorAttachment;
    }
    if (r.attestationObject) {
      out.response.attestationObject = toBase64URL(r.attestationObject);
      if (r.getTransports) {
        out.response.transports = r.getTransports();
      }
    } else {
      out.response.authenticatorData = toBase64URL(r.authenticatorData);
      out.response.signature = toBase64URL(r.signature);
      if (r.userHandle && r.userHandle.byteLength) {
        out.response.userHandle = toBase64URL(r.userHandle);
      }
    }
    return out;
  }

  function serialise(cred) {
    if (typeof cred.toJSON === "function") {
      return cred.toJSON();
    }
    return encodeCredential(cred);
  }

  // explain says what went wrong in words a person can act on. The
  // browser's own message is for developers and goes to the console.
  function explain(mode, err) {
    switch (err && err.name) {
      case "NotAllowedError":
        return "The request was cancelled or timed out, or no security key or passkey on this device fits. Try again.";
      case "InvalidStateError":
        return mode === "create"
          ? "This security key or passkey is already registered to your account."
          : "This security key or passkey cannot be used here. Try another one.";
      case "NotSupportedError":
        return "This device does not offer the kind of security key or passkey needed here.";
      case "SecurityError":
        return "Security keys and passkeys cannot be used on this address.";
      case "AbortError":
        return "The request was cancelled. Try again.";
      default:
        return "Something went wrong with the security key or passkey. Try again.";
    }
  }

  function errorBox(form) {
    var box = form.querySelector("[data-webauthn-error]") || document.querySelector("[data-webauthn-error]");
    if (!box) {
      box = document.createElement("p");
      box.setAttribute("data-webauthn-error", "");
      form.insertBefore(box, form.firstChild);
    }
    box.setAttribute("role", "alert");
    return box;
  }

  function showError(form, message) {
    var box = errorBox(form);
    box.textContent = message;
    box.hidden = false;
  }

  function clearError(form) {
    var box = form.querySelector("[data-webauthn-error]") || document.querySelector("[data-webauthn-error]");
    if (box) {
      box.textContent = "";
      box.hidden = true;
    }
  }

  // disableButtons stops a second ceremony while one runs (browsers refuse
  // it) and returns a function that re-enables what it disabled, leaving
  // buttons the page had disabled itself as they were.
  function disableButtons(form) {
    var buttons = form.querySelectorAll("button, input[type=submit]");
    var changed = [];
    for (var i = 0; i < buttons.length; i++) {
      if (!buttons[i].disabled) {
        buttons[i].disabled = true;
        changed.push(buttons[i]);
      }
    }
    form.setAttribute("aria-busy", "true");
    return function () {
      for (var j = 0; j < changed.length; j++) {
        changed[j].disabled = false;
      }
      form.removeAttribute("aria-busy");
    };
  }

  function setUp(form) {
    var mode = form.getAttribute("data-webauthn");
    var field = form.querySelector('input[name="webauthn_response"]');
    if ((mode !== "create" && mode !== "get") || !field) {
      console.error("webauthn.js: form needs data-webauthn=\"create\" or \"get\" and an input named webauthn_response");
      return;
    }
    var busy = false;
    // A response is good for one ceremony only. A page restored by the Back
    // button, or a browser refilling the form, must not send an old one.
    field.value = "";
    window.addEventListener("pageshow", function () {
      field.value = "";
    });

    function start(submitter) {
      if (busy) {
        return;
      }
      clearError(form);
      if (!window.PublicKeyCredential || !navigator.credentials) {
        showError(form, "This browser cannot use security keys or passkeys.");
        return;
      }
      var request;
      try {
        request = decodeOptions(mode, JSON.parse(form.getAttribute("data-webauthn-options")));
      } catch (err) {
        console.error("webauthn.js: bad data-webauthn-options", err);
        showError(form, explain(mode, null));
        return;
      }
      busy = true;
      var enableButtons = disableButtons(form);
      var call = mode === "create" ? navigator.credentials.create(request) : navigator.credentials.get(request);
      call.then(function (cred) {
        if (!cred) {
          throw new DOMException("no credential returned", "NotAllowedError");
        }
        field.value = JSON.stringify(serialise(cred));
        busy = false;
        enableButtons();
        // requestSubmit keeps the clicked button's name and value and runs
        // the form's own checks; the submit handler below lets it through
        // because the response is now filled in.
        if (form.requestSubmit) {
          form.requestSubmit(submitter && submitter.type === "submit" && submitter.form === form ? submitter : undefined);
        } else {
          form.submit();
        }
      }).catch(function (err) {
        console.error("webauthn.js:", err);
        field.value = "";
        busy = false;
        enableButtons();
        showError(form, explain(mode, err));
      });
    }

    form.addEventListener("submit", function (event) {
      if (field.value) {
        return;
      }
      event.preventDefault();
      start(event.submitter);
    });
    var starters = form.querySelectorAll("[data-webauthn-start]");
    for (var i = 0; i < starters.length; i++) {
      starters[i].addEventListener("click", function (event) {
        // A submit button marked data-webauthn-start would send the form
        // at once; the ceremony comes first, then the form, as this button.
        event.preventDefault();
        start(event.currentTarget);
      });
    }
  }

  function init() {
    var forms = document.querySelectorAll("form[data-webauthn]");
    for (var i = 0; i < forms.length; i++) {
      setUp(forms[i]);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
