// The only script the board runs: seek the post's clip to a segment's start, and copy a
// notice's letter or form values to the clipboard.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const clip = document.getElementById("clip");
  if (clip) {
    for (const button of document.querySelectorAll("button[data-seek]")) {
      button.addEventListener("click", () => {
        clip.currentTime = Number(button.dataset.seek) || 0;
        clip.play().catch(() => {});
      });
    }
  }
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source || !navigator.clipboard) return;
      navigator.clipboard.writeText(source.textContent).then(
        () => { button.textContent = "Copied"; },
        () => { button.textContent = "Select and copy"; },
      );
    });
  }
});
