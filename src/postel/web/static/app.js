// Progressive enhancement only: every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Play the audio code in the page instead of navigating to the .wav file.
  const audioLink = document.getElementById("captcha-audio");
  if (audioLink) {
    audioLink.addEventListener("click", (event) => {
      event.preventDefault();
      new Audio(audioLink.href).play();
    });
  }
  // Ask before destructive actions (the server asks too, on its own page).
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
  // Show/hide toggles for password fields.
  for (const input of document.querySelectorAll("input[type=password]")) {
    const toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "link small toggle";
    toggle.textContent = "Show";
    toggle.setAttribute("aria-label", "Show password");
    toggle.addEventListener("click", () => {
      const hidden = input.type === "password";
      input.type = hidden ? "text" : "password";
      toggle.textContent = hidden ? "Hide" : "Show";
    });
    input.insertAdjacentElement("afterend", toggle);
  }
});
