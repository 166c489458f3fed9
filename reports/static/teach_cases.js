/* Cases to solve: predict, then reveal. Without JavaScript every reveal is an ordinary disclosure; with it,
 * a step's reveal opens when the learner has predicted (or asks to reveal), and says whether the prediction
 * matched the model. Keyboard: every control is a button or a summary. */
(function () {
  "use strict";
  var WORDS = { up: "up", down: "down", same: "about the same" };
  document.querySelectorAll("li.step").forEach(function (step) {
    var reveal = step.querySelector("details.reveal"), verdict = step.querySelector(".verdict");
    var truth = step.getAttribute("data-direction");
    step.querySelectorAll("button[data-predict]").forEach(function (b) {
      b.addEventListener("click", function () {
        var guess = b.getAttribute("data-predict");
        step.querySelectorAll("button[data-predict]").forEach(function (x) { x.setAttribute("aria-pressed", String(x === b)); });
        verdict.textContent = "You predicted " + WORDS[guess] + (guess === truth ? ": as the model." : ": the model says otherwise.");
        step.setAttribute("data-correct", String(guess === truth));
        reveal.open = true;
        reveal.querySelector("summary").focus();
      });
    });
  });
  document.body.setAttribute("data-ready", "true");
}());
