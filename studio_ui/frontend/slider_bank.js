// The semantic sliders. Values stream to Python WHILE a slider is dragged, not only on release.
//
// Flow control: at most one send per animation frame, and at most MAX_IN_FLIGHT requests not yet
// rendered. Two in flight keep the server busy without a gap: while frame N renders, the next
// position already waits on the server, and Streamlit folds every later position into that one
// pending fragment rerun (the newest widget value wins, a running frame is never interrupted). So
// the newest position is always the next one rendered, and stale positions are never rendered.
//
// Streamlit calls this function again whenever `data` changes (each rendered frame brings a new
// `ack`), so the bank is built once, kept on the component's root, and only updated here.
//
// data: {labels: [str], min, max, step, values: [float], revision: int, ack: int, frameUrl: str}
// Preview strips ([[src at min, src at 0, src at max]] per slider) come from preview_strips.js, which
// is drawn outside the live fragment: window.sefaStudioPreviews, and an event when they change.
//   revision changes when Python moves the sliders itself (Reset, a new model or layer set);
//   ack is the `seq` of the newest request Python has rendered.
// state sent: "live" = {alphas: [float], seq: int, final: bool, revision: int}; final once a slider
// is let go; revision is the one the values started from (Python drops values from before a Reset).
// The bank shows both counters as data-seq (newest request sent) and data-ack (newest request Python
// says it rendered), so that a test can tell a move that was rendered to the same pixels from a
// move that was lost.
//
// Each row has a number box for an exact value (sent as a release), and the track is filled from a
// marked 0 outward to the knob, so that a slider going both ways shows its sign at a glance.
//
// Drag frames: where the server gives a frameUrl (studio_ui/frames.py), a position that is not a
// release is POSTed there instead, and the image that comes back goes to the edited image as a
// "sefa-studio-frame" event (an object URL): no script run, no React re-render. A release still goes
// through Streamlit, so that the session, the link and the exports catch up; a frame that arrives
// after a release is dropped. A failed fetch sends that position through Streamlit instead, and so
// does every later one until the server hands over a new frameUrl.

const MAX_IN_FLIGHT = 2;
// Drag frames, one at a time: two renders at once on the server finish out of order as often as
// not, and the older one is then dropped unseen (its render wasted on a shared core).
const FRAMES_IN_FLIGHT = 1;
const IN_FLIGHT_TIMEOUT_MS = 2000; // a lost frame must not freeze the sliders

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  if (!parentElement.sefaBank) {
    parentElement.sefaBank = createBank(parentElement);
  }
  parentElement.sefaBank.update(data, setStateValue);
}

function createBank(root) {
  const count = document.createElement("div");
  count.className = "count";
  const list = document.createElement("div");
  list.className = "bank";
  root.append(count, list);

  // Counting starts at the clock, not 0: a bank mounted again (after a model switch) must never send
  // a request equal to one sent before, which Streamlit would take for no change and drop.
  const start = Date.now();
  window.addEventListener("sefa-studio-previews", () => showPreviews());
  const bank = {
    rows: [], // [{input, output}]
    shape: "", // labels and range the rows were built for
    revision: null,
    seq: start, // the newest request sent
    acked: start, // the newest request rendered
    sent: null, // the values of the newest request
    final: false, // a slider was let go since the newest request
    released: start, // the newest request that went through Streamlit
    shown: start, // the newest fetched frame shown
    frameSource: "", // the frameUrl the server handed over last
    frameUrl: "", // where drag frames come from; "" sends every position through Streamlit
    frameRequested: false,
    timer: null,
    setStateValue: null,
  };

  const values = () => bank.rows.map((row) => Number.parseFloat(row.input.value));
  // "3 edits active": counted here, as the sliders move, rather than sent with every frame.
  const showCount = () => {
    const active = values().filter((v) => v !== 0).length;
    count.textContent = active ? `${active} edit${active > 1 ? "s" : ""} active` : "no edits";
  };
  const same = (a, b) => a !== null && b !== null && a.length === b.length && a.every((v, i) => v === b[i]);
  const windowOpen = () => bank.seq - bank.acked < (bank.frameUrl ? FRAMES_IN_FLIGHT : MAX_IN_FLIGHT);

  function flush() {
    if (!windowOpen()) return; // the next ack calls flush again
    const current = values();
    if (!bank.final && same(current, bank.sent)) return;
    bank.seq += 1;
    list.dataset.seq = String(bank.seq);
    bank.sent = current;
    if (!bank.final && bank.frameUrl) {
      fetchFrame(bank.seq, current);
    } else {
      bank.released = bank.seq;
      bank.setStateValue("live", { alphas: current, seq: bank.seq, final: bank.final, revision: bank.revision });
    }
    bank.final = false;
    clearTimeout(bank.timer);
    bank.timer = setTimeout(() => {
      bank.acked = bank.seq;
      requestSend();
    }, IN_FLIGHT_TIMEOUT_MS);
  }

  // Request `seq` was rendered (by Streamlit, or as a fetched frame).
  function acknowledge(seq) {
    list.dataset.ack = String(Math.max(Number(list.dataset.ack || 0), seq));
    if (seq <= bank.acked || seq > bank.seq) return;
    bank.acked = seq;
    if (bank.acked === bank.seq) clearTimeout(bank.timer);
    flush(); // at once: the slider may have moved on while that frame rendered
  }

  function fetchFrame(seq, alphas) {
    const url = bank.frameUrl;
    fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ alphas }) })
      .then((response) => (response.ok ? response.blob() : Promise.reject(new Error(String(response.status)))))
      .then((blob) => {
        if (seq > bank.shown && seq > bank.released) {
          bank.shown = seq;
          window.dispatchEvent(new CustomEvent("sefa-studio-frame", { detail: URL.createObjectURL(blob) }));
        }
        acknowledge(seq);
      })
      .catch(() => {
        if (bank.frameUrl === url) bank.frameUrl = ""; // Streamlit from now on, until a new frameUrl
        bank.sent = null; // send the position again, the other way
        acknowledge(seq);
      });
  }

  function requestSend() {
    if (bank.frameRequested) return;
    bank.frameRequested = true;
    requestAnimationFrame(() => {
      bank.frameRequested = false;
      flush();
    });
  }

  function showValue(row) {
    const value = Number.parseFloat(row.input.value);
    if (row.output.getRootNode().activeElement !== row.output) { // never overwrite what is being typed
      row.output.value = String(Number(value.toFixed(4)));
    }
    const min = Number.parseFloat(row.input.min), max = Number.parseFloat(row.input.max);
    const at = (v) => (100 * (Math.min(Math.max(v, min), max) - min)) / (max - min || 1);
    const zero = at(0), knob = at(value);
    row.input.style.setProperty("--zero", `${zero}%`);
    row.input.style.setProperty("--from", `${Math.min(zero, knob)}%`);
    row.input.style.setProperty("--to", `${Math.max(zero, knob)}%`);
    showCount();
  }

  function build(data) {
    list.replaceChildren();
    bank.rows = data.labels.map((label, index) => {
      const row = document.createElement("div");
      row.className = "row";
      const name = document.createElement("label");
      name.textContent = label;
      name.htmlFor = `semantic-${index}`;
      name.title = "Double-click to put this slider back to 0";
      const output = document.createElement("input");
      Object.assign(output, { type: "number", min: data.min, max: data.max, step: data.step });
      output.className = "exact";
      output.setAttribute("aria-label", `${label}: exact value`);
      output.dataset.exact = String(index);
      const input = document.createElement("input");
      Object.assign(input, { type: "range", id: `semantic-${index}`, min: data.min, max: data.max, step: data.step });
      input.setAttribute("aria-label", label);
      input.dataset.semantic = String(index);
      const entry = { input, output };
      output.addEventListener("change", () => {
        const typed = Number.parseFloat(output.value);
        if (!Number.isFinite(typed)) return showValue(entry);
        input.value = String(Math.min(Math.max(typed, data.min), data.max));
        output.blur();
        showValue(entry);
        bank.final = true;
        requestSend();
      });
      input.addEventListener("input", () => {
        showValue(entry);
        requestSend();
      });
      input.addEventListener("change", () => {
        bank.final = true;
        requestSend();
      });
      name.addEventListener("dblclick", () => {
        input.value = "0";
        showValue(entry);
        bank.final = true;
        requestSend();
      });
      const head = document.createElement("div");
      head.className = "head";
      head.append(name, output);
      const strip = document.createElement("div");
      strip.className = "strip";
      strip.append(...[0, 1, 2].map(() => document.createElement("img")));
      row.append(head, input, strip);
      entry.strip = strip;
      list.appendChild(row);
      return entry;
    });
  }

  function showPreviews() {
    const previews = window.sefaStudioPreviews || [];
    const [min, max] = [bank.min, bank.max];
    bank.rows.forEach((row, index) => {
      const srcs = previews[index];
      row.strip.hidden = !srcs;
      if (!srcs) return;
      const titles = [`α = ${min}`, "α = 0", `α = +${max}`];
      [...row.strip.children].forEach((img, k) => {
        if (img.getAttribute("src") !== srcs[k]) img.setAttribute("src", srcs[k]);
        img.title = titles[k];
        img.alt = titles[k];
      });
    });
  }

  function setValues(newValues) {
    bank.rows.forEach((row, index) => {
      row.input.value = String(newValues[index] ?? 0);
      showValue(row);
    });
  }

  bank.update = (data, setStateValue) => {
    bank.setStateValue = setStateValue;
    const shape = JSON.stringify([data.labels, data.min, data.max, data.step]);
    if (shape !== bank.shape) {
      bank.shape = shape;
      build(data);
      [bank.min, bank.max] = [data.min, data.max];
      showPreviews();
      bank.revision = null; // new rows take Python's values
    }
    if (data.revision !== bank.revision) {
      bank.revision = data.revision;
      setValues(data.values);
      bank.sent = values();
    }
    if ((data.frameUrl || "") !== bank.frameSource) {
      bank.frameSource = data.frameUrl || "";
      bank.frameUrl = bank.frameSource;
    }
    acknowledge(data.ack);
  };

  return bank;
}
