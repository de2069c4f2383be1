/* Eye-metric plots beside the masked video (dmask.eye-metrics/1), drawn as inline SVG.
 *
 * No library and no build step: the page embeds the metrics document as JSON; this script draws
 * eyelid aperture and iris position per eye over time, shades the blinks, and keeps a playhead in
 * step with the video. Clicking a plot seeks the video; with a plot focused, the arrow keys step
 * through the video frame by frame (Shift: one second), Home/End jump, Space/Enter play or pause.
 * Right eye (OD): solid blue; left eye (OS): dashed orange, so the eyes differ without colour too.
 */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var W = 640, H = 190, M = { l: 48, r: 12, t: 12, b: 30 };

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function niceTicks(lo, hi, count) {
    var span = hi - lo || 1;
    var step = Math.pow(10, Math.floor(Math.log10(span / count)));
    [1, 2, 2.5, 5, 10].some(function (m) {
      if (span / (step * m) <= count) { step = step * m; return true; }
      return false;
    });
    var out = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(+v.toFixed(6));
    return out;
  }

  function extent(series) {
    var lo = Infinity, hi = -Infinity;
    series.forEach(function (pair) {
      if (!pair) return;
      pair.forEach(function (v) {
        if (v === null || v === undefined || isNaN(v)) return;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      });
    });
    if (!isFinite(lo)) return null;
    var pad = (hi - lo) * 0.08 || 0.5;
    return [lo - pad, hi + pad];
  }

  function mean(series, eye) {
    var sum = 0, n = 0;
    series.forEach(function (pair) {
      var v = pair && pair[eye];
      if (v !== null && v !== undefined && !isNaN(v)) { sum += v; n += 1; }
    });
    return n ? sum / n : null;
  }

  function fmt(v, digits) { return v === null ? "not measured" : v.toFixed(digits); }

  function pathFor(series, eye, x, y) {
    var d = "", pen = false;
    series.forEach(function (pair, i) {
      var v = pair ? pair[eye] : null;
      if (v === null || v === undefined || isNaN(v)) { pen = false; return; }
      d += (pen ? "L" : "M") + x(i).toFixed(1) + "," + y(v).toFixed(1);
      pen = true;
    });
    return d;
  }

  function drawPlot(container, spec, doc, video, plotIndex, artifact) {
    var fps = doc.fps || 25, frames = doc.frames || spec.series.length;
    var duration = frames / fps;
    var range = extent(spec.series) || [0, 1];
    var x = function (i) { return M.l + (i / fps) / duration * (W - M.l - M.r); };
    var xt = function (t) { return M.l + t / duration * (W - M.l - M.r); };
    var y = function (v) { return H - M.b - (v - range[0]) / (range[1] - range[0]) * (H - M.t - M.b); };
    var blinks = (doc.summary && doc.summary.blinks) || [];

    var id = "plot-" + artifact + "-" + plotIndex;
    var fig = document.createElement("figure");
    fig.className = "plot";
    fig.id = id;
    fig.tabIndex = 0;
    fig.setAttribute("role", "group");
    fig.setAttribute("aria-labelledby", id + "-title");
    fig.setAttribute("aria-describedby", id + "-desc " + id + "-keys");
    var h = document.createElement("h4");
    h.id = id + "-title";
    h.textContent = spec.title;
    fig.appendChild(h);

    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-labelledby": id + "-title " + id + "-desc" });
    var desc = spec.title + " over " + duration.toFixed(1) + " seconds. Mean right eye " +
      fmt(mean(spec.series, 0), 2) + " mm, left eye " + fmt(mean(spec.series, 1), 2) + " mm. " +
      (blinks.length ? blinks.length + " blink" + (blinks.length > 1 ? "s" : "") + " marked at " +
        blinks.map(function (b) { return b.start_s.toFixed(2) + " s"; }).join(", ") + "." : "No blinks detected.");
    var descNode = el("desc", { id: id + "-desc" }, svg);
    descNode.textContent = desc;

    niceTicks(range[0], range[1], 4).forEach(function (v) {
      el("line", { class: "grid", x1: M.l, x2: W - M.r, y1: y(v), y2: y(v) }, svg);
      var t = el("text", { class: "tick", x: M.l - 6, y: y(v) + 4, "text-anchor": "end" }, svg);
      t.textContent = v;
    });
    niceTicks(0, duration, 8).forEach(function (s) {
      var t = el("text", { class: "tick", x: xt(s), y: H - M.b + 16, "text-anchor": "middle" }, svg);
      t.textContent = s + " s";
    });
    blinks.forEach(function (b) {
      var r = el("rect", {
        class: "blink", x: xt(b.start_s), y: M.t, height: H - M.t - M.b,
        width: Math.max(2, xt(b.end_s) - xt(b.start_s)), "data-blink-frame": b.frame
      }, svg);
      var tt = el("title", {}, r);
      tt.textContent = "Blink at " + b.start_s.toFixed(2) + " s (" + Math.round(b.duration_ms) + " ms)";
      if (plotIndex === 0) {
        var lab = el("text", { class: "blink-label", x: xt(b.start_s) + 2, y: M.t + 11 }, svg);
        lab.textContent = "blink";
      }
    });
    el("line", { class: "axis", x1: M.l, x2: M.l, y1: M.t, y2: H - M.b }, svg);
    el("line", { class: "axis", x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b }, svg);
    var unit = el("text", { class: "tick", x: 4, y: M.t + 4 }, svg);
    unit.textContent = "mm";
    el("path", { class: "right", d: pathFor(spec.series, 0, x, y), "data-eye": "right" }, svg);
    el("path", { class: "left", d: pathFor(spec.series, 1, x, y), "data-eye": "left" }, svg);
    var head = el("line", { class: "playhead", x1: M.l, x2: M.l, y1: M.t, y2: H - M.b }, svg);
    fig.appendChild(svg);

    var legend = document.createElement("ul");
    legend.className = "legend";
    legend.innerHTML = '<li><span class="swatch right"></span>Right eye (OD)</li>' +
      '<li><span class="swatch left"></span>Left eye (OS)</li>' +
      (blinks.length ? '<li><span class="swatch blink"></span>Blink</li>' : "");
    fig.appendChild(legend);
    var keys = document.createElement("p");
    keys.id = id + "-keys";
    keys.className = "visually-hidden";
    keys.textContent = video ? "Click or use the left and right arrow keys to move through the video; space plays or pauses." : "";
    fig.appendChild(keys);
    container.appendChild(fig);

    function place(t) {
      var px = xt(Math.max(0, Math.min(duration, t)));
      head.setAttribute("x1", px);
      head.setAttribute("x2", px);
    }
    if (video) {
      svg.addEventListener("click", function (ev) {
        var box = svg.getBoundingClientRect();
        var vx = (ev.clientX - box.left) / box.width * W;
        var t = (vx - M.l) / (W - M.l - M.r) * duration;
        video.currentTime = Math.max(0, Math.min(duration, t));
      });
      fig.addEventListener("keydown", function (ev) {
        var step = ev.shiftKey ? 1 : 1 / fps;
        if (ev.key === "ArrowRight") video.currentTime = Math.min(duration, video.currentTime + step);
        else if (ev.key === "ArrowLeft") video.currentTime = Math.max(0, video.currentTime - step);
        else if (ev.key === "Home") video.currentTime = 0;
        else if (ev.key === "End") video.currentTime = duration;
        else if (ev.key === " " || ev.key === "Enter") { if (video.paused) video.play(); else video.pause(); }
        else return;
        ev.preventDefault();
      });
    }
    return place;
  }

  function setup(container) {
    var dataNode = document.getElementById(container.getAttribute("data-metrics"));
    if (!dataNode) return;
    var doc = JSON.parse(dataNode.textContent);
    var video = document.getElementById(container.getAttribute("data-video"));
    var artifact = container.id.replace(/^plots-/, "");
    var s = doc.series || {};
    container.innerHTML = "";
    var specs = [
      { title: "Eyelid aperture (mm)", series: s.aperture_mm || [] },
      { title: "Iris horizontal position (mm, + towards the subject's left)", series: s.iris_offset_h_mm || [] },
      { title: "Iris vertical position (mm)", series: s.iris_offset_v_mm || [] }
    ];
    var placers = specs.filter(function (sp) { return sp.series.length; }).map(function (sp, i) {
      return drawPlot(container, sp, doc, video, i, artifact);
    });
    if (video) {
      var raf = null;
      var update = function () { placers.forEach(function (p) { p(video.currentTime); }); };
      var loop = function () { update(); raf = video.paused ? null : requestAnimationFrame(loop); };
      video.addEventListener("timeupdate", update);
      video.addEventListener("seeked", update);
      video.addEventListener("play", function () { if (!raf) raf = requestAnimationFrame(loop); });
    }
    container.setAttribute("data-rendered", String(placers.length));
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll(".plots[data-metrics]"), setup);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
