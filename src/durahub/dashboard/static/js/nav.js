// Page-wide helpers shared by the pages: in-page navigation and the notice line.

export function navigate(href, { replaceState = false } = {}) {
  if (replaceState) history.replaceState(null, "", href);
  else history.pushState(null, "", href);
  window.dispatchEvent(new Event("durahub:navigate"));
}

let noticeTimer = null;
export function notify(message, kind = "error") {
  const el = document.getElementById("notice");
  el.textContent = message;
  el.className = `notice ${kind === "error" ? "" : "info"}`;
  el.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { el.hidden = true; }, kind === "error" ? 15000 : 5000);
}
