// cobstack dashboard: the little the server cannot render.
// - frame -> DOM latency, measured from the ingest timestamp each fragment carries
// - long-task observer (the page must stay responsive at 10 updates/s)
// - staleness badges when a panel stops updating, the SSE connection dot
// - the liquidity heatmap canvas, fed by the columns carried in its fragments
(function () {
  "use strict";
  const RING = 4096;
  const cob = (window.cobstack = { latencies: [], longTasks: [], heatmapDrawMs: [], swaps: 0 });

  function pushRing(arr, v) {
    arr.push(v);
    if (arr.length > RING) arr.splice(0, arr.length - RING);
  }

  function percentile(values, p) {
    if (!values.length) return null;
    const s = values.slice().sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor(p * s.length))];
  }
  cob.percentile = percentile;

  // --- latency: venue frame receive time (data-recv-ts, epoch s) -> fragment in the DOM ---
  document.addEventListener("htmx:afterSwap", function (e) {
    const target = e.target;
    const stamped = target.querySelector("[data-recv-ts]");
    cob.swaps += 1;
    if (!stamped) return;
    const recv = parseFloat(stamped.dataset.recvTs);
    if (recv > 0) pushRing(cob.latencies, Date.now() - recv * 1000);
    const hm = target.querySelector(".hm-data");
    if (hm) heatmapAppend(hm);
  });

  if ("PerformanceObserver" in window &&
      (PerformanceObserver.supportedEntryTypes || []).includes("longtask")) {
    new PerformanceObserver(function (list) {
      for (const entry of list.getEntries()) pushRing(cob.longTasks, entry.duration);
    }).observe({ type: "longtask", buffered: true });
  }

  // --- connection dot ---
  function setConn(state, text) {
    const dot = document.getElementById("conn");
    if (dot) { dot.className = "conn " + state; dot.title = text; dot.textContent = text; }
  }
  document.addEventListener("htmx:sseOpen", () => setConn("up", "live"));
  document.addEventListener("htmx:sseError", () => setConn("down", "reconnecting"));

  // --- once a second: staleness badges and the measured latency ---
  const STALE_S = 5;
  setInterval(function () {
    const now = Date.now() / 1000;
    document.querySelectorAll("[data-ts]").forEach(function (el) {
      const age = now - parseFloat(el.dataset.ts);
      el.classList.toggle("stale", age > STALE_S);
      el.dataset.age = age > STALE_S ? "stale " + Math.round(age) + "s" : "";
    });
    const lat = document.getElementById("latency");
    if (lat && cob.latencies.length) {
      const recent = cob.latencies.slice(-200);
      lat.textContent = "frame\u2192DOM p50 " + Math.round(percentile(recent, 0.5)) +
        " ms \u00b7 p95 " + Math.round(percentile(recent, 0.95)) + " ms";
    }
  }, 1000);

  // --- liquidity heatmap: time x price bucket, colour = resting size ---
  // Each canvas keeps its own columns {t, step, b0, a0, bids[], asks[], mid}; fragments carry
  // the newest columns (a column whose slot `t` is already drawn is replaced, older ones are
  // skipped). Cells go into an ImageData one pixel per (slot, bucket) and are scaled up in one
  // drawImage, so a redraw costs a few milliseconds whatever the window.
  const maps = new Map();
  const AXIS_PX = 52;
  const HM_REDRAW_MS = 250;

  function heatmapAppend(dataEl) {
    const canvas = document.getElementById(dataEl.dataset.canvas);
    if (!canvas) return;
    let hm = maps.get(canvas);
    if (!hm) {
      hm = { cols: [], pending: false, keep: parseFloat(canvas.dataset.keepS), slot: parseFloat(canvas.dataset.slotS) };
      maps.set(canvas, hm);
    }
    const cols = JSON.parse(dataEl.dataset.cols || "[]");
    for (const c of cols) {
      const n = hm.cols.length, last = n ? hm.cols[n - 1].t : -Infinity;
      if (c.t > last) hm.cols.push(c);
      else if (c.t === last) hm.cols[n - 1] = c;
    }
    const cutoff = (hm.cols.length ? hm.cols[hm.cols.length - 1].t : 0) - hm.keep;
    let drop = 0;
    while (drop < hm.cols.length && hm.cols[drop].t <= cutoff) drop++;
    if (drop) hm.cols.splice(0, drop);
    // at most one redraw per HM_REDRAW_MS (columns are 500 ms wide by default), in a frame
    if (!hm.pending) {
      hm.pending = true;
      const wait = Math.max(0, (hm.drawnAt || 0) + HM_REDRAW_MS - performance.now());
      setTimeout(function () {
        requestAnimationFrame(function () {
          hm.pending = false;
          hm.drawnAt = performance.now();
          drawHeatmap(canvas, hm);
          pushRing(cob.heatmapDrawMs, performance.now() - hm.drawnAt);
        });
      }, wait);
    }
  }

  // dark -> blue -> teal -> yellow -> white, as a 256-entry lookup table
  const STOPS = [[13, 17, 23], [30, 60, 150], [20, 160, 170], [240, 200, 40], [255, 255, 255]];
  const LUT = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const f = (i / 255) * (STOPS.length - 1), k = Math.min(STOPS.length - 2, Math.floor(f)), r = f - k;
    for (let ch = 0; ch < 3; ch++) LUT[i * 3 + ch] = STOPS[k][ch] + (STOPS[k + 1][ch] - STOPS[k][ch]) * r;
  }
  const scratch = document.createElement("canvas");

  function drawHeatmap(canvas, hm) {
    const cols = hm.cols, last = cols[cols.length - 1];
    const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h || !last || last.mid == null) return;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    }
    // grid: one pixel per time slot (x) and per price bucket (y), centred on the newest mid
    // rows: as many buckets either side of the mid as the window's resting liquidity reaches
    const step = last.step;
    let reach = 4;
    for (const c of cols) {
      for (let k = c.bids.length - 1; k > reach; k--) if (c.bids[k] > 0) { reach = k; break; }
      for (let k = c.asks.length - 1; k > reach; k--) if (c.asks[k] > 0) { reach = k; break; }
    }
    const half = reach + 2;
    // the time axis spans the columns held (at least 30 s), up to the configured window
    const held = (last.t - cols[0].t) / hm.slot + 1;
    const nx = Math.round(Math.min(hm.keep / hm.slot, Math.max(30 / hm.slot, held))), ny = 2 * half + 1;
    const centre = Math.round(last.mid / step);  // bucket index at the middle row
    // colour scale: log size between the 5th and 98th percentiles of the window, estimated
    // from at most ~2000 sampled cells (sorting every cell each frame would cost a long task)
    const stride = Math.max(1, Math.floor(cols.length / 40)), sizes = [];
    for (let i = cols.length - 1; i >= 0; i -= stride) {
      for (const s of cols[i].bids) if (s > 0) sizes.push(s);
      for (const s of cols[i].asks) if (s > 0) sizes.push(s);
    }
    sizes.sort((a, b) => a - b);
    const at = (p) => sizes[Math.min(sizes.length - 1, Math.floor(p * sizes.length))];
    const lo = Math.log1p(at(0.05) || 0), hi = Math.log1p(at(0.98) || 1), range = hi - lo || 1;
    if (!hm.img || hm.img.width !== nx || hm.img.height !== ny) hm.img = new ImageData(nx, ny);
    const img = hm.img, px = img.data;
    for (let i = 0; i < px.length; i += 4) { px[i] = 13; px[i + 1] = 17; px[i + 2] = 23; px[i + 3] = 255; }
    const paint = (x, price, size) => {
      const y = half - (Math.round(price / step) - centre);
      if (y < 0 || y >= ny || !(size > 0)) return;
      const f = Math.max(0, Math.min(1, (Math.log1p(size) - lo) / range));
      const o = (y * nx + x) * 4, l = Math.round(40 + f * 215) * 3;  // the smallest size stays visible
      px[o] = LUT[l]; px[o + 1] = LUT[l + 1]; px[o + 2] = LUT[l + 2];
    };
    for (const c of cols) {
      const x = nx - 1 - Math.round((last.t - c.t) / hm.slot);
      if (x < 0) continue;
      if (c.b0 != null) for (let k = 0; k < c.bids.length; k++) paint(x, c.b0 - k * c.step, c.bids[k]);
      if (c.a0 != null) for (let k = 0; k < c.asks.length; k++) paint(x, c.a0 + k * c.step, c.asks[k]);
    }
    if (scratch.width !== nx || scratch.height !== ny) { scratch.width = nx; scratch.height = ny; }
    scratch.getContext("2d").putImageData(img, 0, 0);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.fillStyle = "#0d1117"; ctx.fillRect(0, 0, w, h);
    const pw = w - AXIS_PX;  // the price axis gets its own margin so it never hides the newest columns
    ctx.drawImage(scratch, 0, 0, pw, h);
    // the mid through time, and price labels every few buckets
    const xOf = (t) => ((nx - 0.5 - (last.t - t) / hm.slot) / nx) * pw;
    const yOf = (p) => ((half + 0.5 - (p / step - centre)) / ny) * h;
    ctx.strokeStyle = "rgba(255,255,255,0.9)"; ctx.lineWidth = 1.2; ctx.beginPath();
    let started = false;
    for (const c of cols) {
      if (c.mid == null) { started = false; continue; }
      if (started) ctx.lineTo(xOf(c.t), yOf(c.mid)); else { ctx.moveTo(xOf(c.t), yOf(c.mid)); started = true; }
    }
    ctx.stroke();
    ctx.font = "10px ui-monospace, monospace"; ctx.textAlign = "right"; ctx.fillStyle = "#9da7b3";
    const cell = h / ny, every = Math.max(1, Math.ceil(16 / cell));
    for (let k = -half; k <= half; k += every) {
      const p = (centre + k) * step;
      ctx.fillText(p.toFixed(step >= 1 ? 0 : last.dp), w - 4, yOf(p) + 3);
    }
  }

  // on first load the page carries the history; draw it once the layout exists
  function initHeatmaps() { document.querySelectorAll(".hm-data").forEach(heatmapAppend); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", initHeatmaps);
  else initHeatmaps();
  window.addEventListener("resize", function () { maps.forEach((hm, c) => drawHeatmap(c, hm)); });
})();
