// One image whose pixels are swapped in place: no remount, no extra HTTP request per frame.
// data: {src: "data:image/jpeg;base64,...", alt: str, caption: str}

export default function (component) {
  const { data, parentElement } = component;
  let figure = parentElement.querySelector("figure");
  if (!figure) {
    figure = document.createElement("figure");
    figure.append(document.createElement("img"), document.createElement("figcaption"));
    parentElement.appendChild(figure);
  }
  const [img, caption] = figure.children;
  if (img.getAttribute("src") !== data.src) img.setAttribute("src", data.src);
  img.alt = data.alt;
  caption.textContent = data.caption;
}
