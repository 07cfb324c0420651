// Hands the slider bank its preview strips: thumbnails at -α, 0 and +α for each slider.
// Drawn outside the live fragment, so the thumbnails travel once per face, not with every frame;
// the slider bank (in the same page, no iframe) reads them from here and listens for new ones.
// data: {previews: [[src, src, src]]}

export default function (component) {
  window.sefaStudioPreviews = component.data.previews || [];
  window.dispatchEvent(new CustomEvent("sefa-studio-previews"));
}
