// reCAPTCHA v3 shows nothing to solve: a token is asked for when the form
// is sent, not when the page loads, because tokens expire two minutes after
// they are issued and a person may take longer than that to type.
(function () {
  "use strict";
  var field = document.querySelector("input[data-recaptcha-v3]");
  if (!field || !field.form) {
    return;
  }
  var form = field.form;
  var key = field.getAttribute("data-sitekey");
  var action = field.getAttribute("data-action");
  form.addEventListener("submit", function (event) {
    // Without the provider's script (blocked, offline) the form goes as it
    // is, and the server refuses the missing token with a message.
    if (field.value || typeof grecaptcha === "undefined") {
      return;
    }
    event.preventDefault();
    grecaptcha.ready(function () {
      grecaptcha.execute(key, { action: action }).then(function (token) {
        field.value = token;
        form.submit();
      }, function () {
        form.submit();
      });
    });
  });
})();
