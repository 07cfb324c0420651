// One image whose pixels are swapped in place: no remount, no extra HTTP request per frame.
// data: {src: "data:image/png;base64,...", alt: str, caption: str, zoom: int, pixelated: bool,
//        live: bool, ack: int}
// Small images are scaled up nearest-neighbour (pixelated), so their pixels stay sharp squares;
// zoom > 1 draws the image larger inside a box that scrolls. The live one (the edited image) also
// shows the drag frames the slider bank fetches ("sefa-studio-frame" events, object URLs), until
// Python draws it again.

const FRAME_EVENT = "sefa-studio-frame";

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
  if (data.live && !parentElement.sefaFrames) {
    parentElement.sefaFrames = (event) => {
      if (!img.isConnected) return window.removeEventListener(FRAME_EVENT, parentElement.sefaFrames);
      show(img, event.detail);
    };
    window.addEventListener(FRAME_EVENT, parentElement.sefaFrames);
  }
  show(img, data.src); // Python drew it: it replaces any drag frame (a release brings a new `ack`)
  img.alt = data.alt;
  img.classList.toggle("pixelated", Boolean(data.pixelated));
  img.style.width = `${100 * (data.zoom || 1)}%`;
  img.style.maxWidth = (data.zoom || 1) > 1 ? "none" : "";
  frame.classList.toggle("zoomed", (data.zoom || 1) > 1);
  caption.textContent = data.caption;
}

function show(img, src) {
  const old = img.getAttribute("src");
  if (old === src) return;
  img.setAttribute("src", src);
  if (old?.startsWith("blob:")) URL.revokeObjectURL(old);
}
