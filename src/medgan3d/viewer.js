/* medgan3d volume viewer: every element with class "mv" holding a <script type="application/json"
   class="mv-data"> becomes a viewer. No network access, no dependencies.

   Volumes are [D, H, W] in RAS order (D inferior->superior, H posterior->anterior, W left->right), quantised
   to uint8 over payload.range (data units). Slices are drawn as the report's PNG figures are: rows flipped so
   that superior (coronal, sagittal) or anterior (axial) is up, the patient's left on the left, each plane at
   its millimetre aspect. */
(function () {
  "use strict";
  var PLANES = ["axial", "coronal", "sagittal"];
  var LETTERS = { axial: ["L", "R", "A", "P"], coronal: ["L", "R", "S", "I"], sagittal: ["P", "A", "S", "I"] };

  function decode(b64) {
    var s = atob(b64), a = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) a[i] = s.charCodeAt(i);
    return a;
  }

  function dims(vol, plane) {
    var D = vol.shape[0], H = vol.shape[1], W = vol.shape[2];
    var sd = vol.spacing[0], sh = vol.spacing[1], sw = vol.spacing[2];
    if (plane === "axial") return { rows: H, cols: W, rowMm: sh, colMm: sw, depth: D };
    if (plane === "coronal") return { rows: D, cols: W, rowMm: sd, colMm: sw, depth: H };
    return { rows: D, cols: H, rowMm: sd, colMm: sh, depth: W };
  }

  // Flat index of the voxel drawn at (row r from the top, column c) of slice k of a plane.
  function voxelIndex(vol, plane, k, r, c) {
    var D = vol.shape[0], H = vol.shape[1], W = vol.shape[2];
    if (plane === "axial") return k * H * W + (H - 1 - r) * W + c;
    if (plane === "coronal") return (D - 1 - r) * H * W + k * W + c;
    return (D - 1 - r) * H * W + c * W + k;
  }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fmt(v) {
    return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3);
  }

  function Viewer(root, payload) {
    var self = this;
    self.root = root;
    self.payload = payload;
    self.renders = 0;
    self.groups = payload.groups.map(function (g) {
      return { name: g.name, volumes: g.volumes.map(function (v) {
        return { name: v.name, note: v.note || "", shape: v.shape, spacing: v.spacing, data: decode(v.data) };
      }), current: 0 };
    });
    var qlo = payload.range[0], qhi = payload.range[1];
    self.window = payload.window.slice();
    self.crosshair = false;
    // Slice position per plane as a fraction of each volume's extent (volumes may differ in shape).
    self.pos = { axial: 0.5, coronal: 0.5, sagittal: 0.5 };
    self.depth = {};
    PLANES.forEach(function (p) {
      var m = 1;
      self.groups.forEach(function (g) { g.volumes.forEach(function (v) { m = Math.max(m, dims(v, p).depth); }); });
      self.depth[p] = m;
    });
    // Millimetres per screen pixel: the largest extent of any plane of any volume spans payload.size px.
    var extent = 1e-9;
    self.groups.forEach(function (g) { g.volumes.forEach(function (v) { PLANES.forEach(function (p) {
      var d = dims(v, p); extent = Math.max(extent, d.rows * d.rowMm, d.cols * d.colMm);
    }); }); });
    // Panes side by side where the page allows: shrink the planes to fit the viewer's width (not below 96 px).
    var n = Math.max(1, self.groups.length), avail = root.clientWidth || 1200;
    var fit = Math.floor((avail - 16 * (n - 1) - 60 * n) / (3 * n));
    self.size = Math.max(96, Math.min(payload.size || 220, fit));
    self.mmPerPx = extent / self.size;

    root.appendChild(el("div", { class: "mv-title" }, payload.title || ""));
    var bar = el("div", { class: "mv-controls" });
    root.appendChild(bar);
    self.sliders = {};
    PLANES.forEach(function (p) {
      var label = el("label", {}, p + " ");
      var s = el("input", { type: "range", min: "0", max: String(self.depth[p] - 1), step: "1",
                            value: String(Math.round(0.5 * (self.depth[p] - 1))), class: "mv-pos", "data-plane": p });
      s.addEventListener("input", function () { self.setPos(p, Number(s.value) / Math.max(1, self.depth[p] - 1)); });
      label.appendChild(s);
      bar.appendChild(label);
      self.sliders[p] = s;
    });
    var step = (qhi - qlo) / 255;
    var win = el("span", { class: "mv-window" });
    win.appendChild(document.createTextNode("window (" + payload.unit + ") "));
    self.lo = el("input", { type: "range", min: String(qlo), max: String(qhi), step: String(step),
                            value: String(self.window[0]), class: "mv-lo" });
    self.hi = el("input", { type: "range", min: String(qlo), max: String(qhi), step: String(step),
                            value: String(self.window[1]), class: "mv-hi" });
    self.winText = el("span", { class: "mv-wintext" });
    function onWindow(which) {
      var lo = Number(self.lo.value), hi = Number(self.hi.value);
      if (hi <= lo) { if (which === "lo") { lo = hi - step; self.lo.value = String(lo); } else { hi = lo + step; self.hi.value = String(hi); } }
      self.setWindow(lo, hi);
    }
    self.lo.addEventListener("input", function () { onWindow("lo"); });
    self.hi.addEventListener("input", function () { onWindow("hi"); });
    var reset = el("button", { type: "button", class: "mv-reset" }, "reset");
    reset.addEventListener("click", function () {
      self.lo.value = String(payload.window[0]); self.hi.value = String(payload.window[1]);
      self.setWindow(payload.window[0], payload.window[1]);
    });
    var full = el("button", { type: "button", class: "mv-full" }, "full range");
    full.addEventListener("click", function () {
      self.lo.value = String(qlo); self.hi.value = String(qhi); self.setWindow(qlo, qhi);
    });
    var cross = el("label", {}, " crosshair ");
    var crossBox = el("input", { type: "checkbox", class: "mv-cross" });
    crossBox.addEventListener("change", function () { self.crosshair = crossBox.checked; self.render(); });
    cross.appendChild(crossBox);
    [self.lo, el("span", {}, " to "), self.hi, self.winText, reset, full, cross].forEach(function (e) { win.appendChild(e); });
    bar.appendChild(win);
    var scale = el("span", { class: "mv-scale" });
    self.cbar = el("canvas", { class: "mv-colorbar", width: "160", height: "10" });
    [el("span", {}, fmt(qlo) + " "), self.cbar, el("span", {}, " " + fmt(qhi) + " " + payload.unit)].forEach(
      function (e) { scale.appendChild(e); });
    bar.appendChild(scale);

    var panes = el("div", { class: "mv-panes" });
    root.appendChild(panes);
    self.groups.forEach(function (g, gi) {
      var pane = el("div", { class: "mv-pane", "data-group": g.name });
      pane.appendChild(el("h3", {}, g.name + " (" + g.volumes.length + ")"));
      var nav = el("div", { class: "mv-nav" });
      var prev = el("button", { type: "button", class: "mv-prev" }, "\u25c0");
      var next = el("button", { type: "button", class: "mv-next" }, "\u25b6");
      var select = el("select", { class: "mv-select" });
      g.volumes.forEach(function (v, i) { select.appendChild(el("option", { value: String(i) }, v.name)); });
      var note = el("span", { class: "mv-note" });
      function choose(i) {
        g.current = (i + g.volumes.length) % g.volumes.length;
        select.value = String(g.current);
        self.layout(gi);
        self.render();
      }
      prev.addEventListener("click", function () { choose(g.current - 1); });
      next.addEventListener("click", function () { choose(g.current + 1); });
      select.addEventListener("change", function () { choose(Number(select.value)); });
      [prev, select, next, note].forEach(function (e) { nav.appendChild(e); });
      pane.appendChild(nav);
      var planes = el("div", { class: "mv-planes" });
      g.canvases = {};
      g.captions = {};
      g.note = note;
      PLANES.forEach(function (p) {
        var fig = el("figure", {});
        var c = el("canvas", { class: "mv-slice", "data-plane": p, "data-group": g.name });
        c.addEventListener("wheel", function (ev) {
          ev.preventDefault();
          var s = self.sliders[p];
          s.value = String(Math.min(Number(s.max), Math.max(0, Number(s.value) + (ev.deltaY > 0 ? -1 : 1))));
          self.setPos(p, Number(s.value) / Math.max(1, self.depth[p] - 1));
        }, { passive: false });
        c.addEventListener("click", function (ev) { self.navigate(g, p, c, ev); });
        fig.appendChild(c);
        var cap = el("figcaption", {});
        fig.appendChild(cap);
        planes.appendChild(fig);
        g.canvases[p] = c;
        g.captions[p] = cap;
      });
      pane.appendChild(planes);
      panes.appendChild(pane);
      self.layout(gi);
    });
    self.setWindow(self.window[0], self.window[1]);
  }

  Viewer.prototype.layout = function (gi) {
    var g = this.groups[gi], v = g.volumes[g.current], self = this;
    PLANES.forEach(function (p) {
      var d = dims(v, p), c = g.canvases[p];
      c.width = Math.max(1, Math.round(d.cols * d.colMm / self.mmPerPx));
      c.height = Math.max(1, Math.round(d.rows * d.rowMm / self.mmPerPx));
    });
    var sp = v.spacing.map(function (s) { return Number(s).toPrecision(3); }).join(" \u00d7 ");
    g.note.textContent = v.shape.join("\u00d7") + " voxels, " + sp + " mm" + (v.note ? " \u00b7 " + v.note : "");
  };

  Viewer.prototype.index = function (v, p) {
    return Math.round(this.pos[p] * (dims(v, p).depth - 1));
  };

  Viewer.prototype.setPos = function (p, frac) {
    this.pos[p] = Math.min(1, Math.max(0, frac));
    this.sliders[p].value = String(Math.round(this.pos[p] * (this.depth[p] - 1)));
    this.render();
  };

  // A click on one plane moves the other two planes' slices to the clicked point.
  Viewer.prototype.navigate = function (g, p, canvas, ev) {
    var v = g.volumes[g.current], d = dims(v, p), rect = canvas.getBoundingClientRect();
    var c = Math.floor((ev.clientX - rect.left) / rect.width * d.cols);
    var r = Math.floor((ev.clientY - rect.top) / rect.height * d.rows);
    var D = v.shape[0], H = v.shape[1], W = v.shape[2];
    var frac = function (i, n) { return n > 1 ? i / (n - 1) : 0.5; };
    if (p === "axial") { this.pos.coronal = frac(H - 1 - r, H); this.pos.sagittal = frac(c, W); }
    else if (p === "coronal") { this.pos.axial = frac(D - 1 - r, D); this.pos.sagittal = frac(c, W); }
    else { this.pos.axial = frac(D - 1 - r, D); this.pos.coronal = frac(c, H); }
    var self = this;
    PLANES.forEach(function (q) { self.setPos(q, self.pos[q]); });
  };

  Viewer.prototype.setWindow = function (lo, hi) {
    this.window = [lo, hi];
    var qlo = this.payload.range[0], qhi = this.payload.range[1];
    this.lut = new Uint8ClampedArray(256);
    for (var q = 0; q < 256; q++) {
      var value = qlo + (q / 255) * (qhi - qlo);
      this.lut[q] = Math.round(Math.min(1, Math.max(0, (value - lo) / (hi - lo))) * 255);
    }
    this.winText.textContent = " [" + fmt(lo) + ", " + fmt(hi) + "] ";
    var ctx = this.cbar.getContext("2d"), w = this.cbar.width;
    for (var x = 0; x < w; x++) {
      var val = qlo + (x / (w - 1)) * (qhi - qlo);
      var grey = Math.round(Math.min(1, Math.max(0, (val - lo) / (hi - lo))) * 255);
      ctx.fillStyle = "rgb(" + grey + "," + grey + "," + grey + ")";
      ctx.fillRect(x, 0, 1, this.cbar.height);
    }
    this.cbar.title = "grey scale over the full range " + fmt(qlo) + " to " + fmt(qhi) + " " + this.payload.unit;
    this.render();
  };

  Viewer.prototype.drawPlane = function (g, p) {
    var v = g.volumes[g.current], d = dims(v, p), k = this.index(v, p), canvas = g.canvases[p];
    var off = document.createElement("canvas");
    off.width = d.cols; off.height = d.rows;
    var octx = off.getContext("2d"), img = octx.createImageData(d.cols, d.rows), px = img.data;
    for (var r = 0; r < d.rows; r++) {
      for (var c = 0; c < d.cols; c++) {
        var grey = this.lut[v.data[voxelIndex(v, p, k, r, c)]], o = 4 * (r * d.cols + c);
        px[o] = px[o + 1] = px[o + 2] = grey; px[o + 3] = 255;
      }
    }
    octx.putImageData(img, 0, 0);
    var ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
    if (this.crosshair) this.drawCross(ctx, v, p, canvas);
    var L = LETTERS[p], W = canvas.width, H = canvas.height;
    ctx.fillStyle = "#ffd23f";
    ctx.font = "bold 11px sans-serif";
    ctx.textBaseline = "middle"; ctx.textAlign = "left"; ctx.fillText(L[0], 3, H / 2);
    ctx.textAlign = "right"; ctx.fillText(L[1], W - 3, H / 2);
    ctx.textAlign = "center"; ctx.textBaseline = "top"; ctx.fillText(L[2], W / 2, 2);
    ctx.textBaseline = "bottom"; ctx.fillText(L[3], W / 2, H - 1);
    g.captions[p].textContent = p + " " + (k + 1) + "/" + d.depth;
  };

  Viewer.prototype.drawCross = function (ctx, v, p, canvas) {
    var D = v.shape[0], H = v.shape[1], W = v.shape[2], d = dims(v, p);
    var ax = this.index(v, "axial"), co = this.index(v, "coronal"), sa = this.index(v, "sagittal");
    var col, row;
    if (p === "axial") { col = sa; row = H - 1 - co; }
    else if (p === "coronal") { col = sa; row = D - 1 - ax; }
    else { col = co; row = D - 1 - ax; }
    var x = (col + 0.5) * canvas.width / d.cols, y = (row + 0.5) * canvas.height / d.rows;
    ctx.strokeStyle = "rgba(255,80,80,0.8)"; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, canvas.height); ctx.moveTo(0, y); ctx.lineTo(canvas.width, y); ctx.stroke();
  };

  Viewer.prototype.render = function () {
    var self = this;
    if (!self.groups.every(function (g) { return g.canvases; })) return;
    self.groups.forEach(function (g) { PLANES.forEach(function (p) { self.drawPlane(g, p); }); });
    self.renders++;
  };

  window.medgan3dViewers = window.medgan3dViewers || [];
  function start() {
    var roots = document.querySelectorAll(".mv:not([data-mv-ready])");
    for (var i = 0; i < roots.length; i++) {
      var data = roots[i].querySelector("script.mv-data");
      roots[i].setAttribute("data-mv-ready", "1");
      window.medgan3dViewers.push(new Viewer(roots[i], JSON.parse(data.textContent)));
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
