// "Copy link": puts the page's address on the clipboard. The address carries the editor's state
// in its query parameters (model, layers, code, slider values, names), so the link shows the same image.
// data: {label: str}

export default function (component) {
  const { data, parentElement } = component;
  let button = parentElement.querySelector("button");
  if (!button) {
    button = document.createElement("button");
    button.type = "button";
    button.addEventListener("click", async () => {
      const url = window.location.href;
      try {
        await navigator.clipboard.writeText(url);
        button.dataset.copied = url;
        button.textContent = "Link copied";
      } catch {
        window.prompt("Copy this link", url); // no clipboard (plain http on another host): show it
      }
      setTimeout(() => (button.textContent = data.label), 2000);
    });
    parentElement.appendChild(button);
  }
  if (!button.dataset.copied) button.textContent = data.label;
}
