// One image whose pixels are swapped in place: no remount, no extra HTTP request per frame.
// data: {src: "data:image/png;base64,...", alt: str, caption: str, zoom: int, pixelated: bool}
// Small images are scaled up nearest-neighbour (pixelated), so their pixels stay sharp squares;
// zoom > 1 draws the image larger inside a box that scrolls.

export default function (component) {
  const { data, parentElement } = component;
  let figure = parentElement.querySelector("figure");
  if (!figure) {
    figure = document.createElement("figure");
    const frame = document.createElement("div");
    frame.className = "frame";
    frame.append(document.createElement("img"));
    figure.append(frame, document.createElement("figcaption"));
    parentElement.appendChild(figure);
  }
  const [frame, caption] = figure.children;
  const img = frame.firstChild;
  if (img.getAttribute("src") !== data.src) img.setAttribute("src", data.src);
  img.alt = data.alt;
  img.classList.toggle("pixelated", Boolean(data.pixelated));
  img.style.width = `${100 * (data.zoom || 1)}%`;
  img.style.maxWidth = (data.zoom || 1) > 1 ? "none" : "";
  frame.classList.toggle("zoomed", (data.zoom || 1) > 1);
  caption.textContent = data.caption;
}
