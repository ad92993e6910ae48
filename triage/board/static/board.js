// Seek the post's clip to a segment's start: the only script the board runs.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const clip = document.getElementById("clip");
  if (!clip) return;
  for (const button of document.querySelectorAll("button[data-seek]")) {
    button.addEventListener("click", () => {
      clip.currentTime = Number(button.dataset.seek) || 0;
      clip.play().catch(() => {});
    });
  }
});
