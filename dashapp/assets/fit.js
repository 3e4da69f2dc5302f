/* Crisis pathway planner: fit maps and mark wide tables to the screen they are on.
 *
 * Maps: the server draws each map for a typical width and records the footprint's
 * bounds in layout.meta.fit_bounds; once a map is drawn (and when the window changes
 * width) its view is refitted to the map's real size, so a phone shows the whole
 * footprint instead of a cropped middle. A map the user has zoomed is left alone until
 * a new figure arrives.
 *
 * Tables: a table wider than its panel gets the class "has-more" (a fading right edge
 * and the "scroll sideways" cue) until it is scrolled to its end.
 */
(function () {
  "use strict";

  function mercator(lat) {
    var clamped = Math.max(Math.min(lat, 85), -85);
    return Math.log(Math.tan(Math.PI / 4 + (clamped * Math.PI) / 360));
  }

  function fitView(bounds, width, height) {
    var west = bounds[0], south = bounds[1], east = bounds[2], north = bounds[3];
    var lonSpan = Math.max(east - west, 1e-3);
    var ySpan = Math.max(mercator(north) - mercator(south), 1e-5);
    var zLon = Math.log2((width * 360) / (512 * lonSpan));
    var zLat = Math.log2((height * 2 * Math.PI) / (512 * ySpan));
    var midY = (mercator(north) + mercator(south)) / 2;
    var lat = (2 * Math.atan(Math.exp(midY)) - Math.PI / 2) * (180 / Math.PI);
    return {center: {lon: (west + east) / 2, lat: lat}, zoom: Math.max(Math.min(zLon, zLat) - 0.15, 1)};
  }

  function fitMap(gd) {
    var layout = gd.layout || {};
    var full = gd._fullLayout;
    var bounds = layout.meta && layout.meta.fit_bounds;
    if (!bounds || !full || !full.map || !full._size || !window.Plotly) {
      return;
    }
    var dom = full.map.domain || {x: [0, 1], y: [0, 1]};
    var width = full._size.w * (dom.x[1] - dom.x[0]);
    var height = full._size.h * (dom.y[1] - dom.y[0]);
    if (width < 50 || height < 50) {
      return;
    }
    var key = JSON.stringify(bounds) + "|" + Math.round(width) + "x" + Math.round(height);
    if (gd.dataset.fitted === key) {
      return;
    }
    gd.dataset.fitted = key;
    var view = fitView(bounds, width, height);
    // a wide footprint on a narrow screen needs less height: give the page back the rest
    // (up to the height the server drew), keeping the colour bar and legend under the map
    var meta = layout.meta;
    if (meta.height && meta.below_px) {
      var ySpan = mercator(bounds[3]) - mercator(bounds[1]);
      var needed = Math.max(220, (ySpan * 512 * Math.pow(2, view.zoom)) / (2 * Math.PI) + 40);
      var target = Math.min(meta.height, Math.round(needed + meta.below_px + full.margin.t));
      if (Math.abs(target - full.height) > 30) {
        // the view is fitted when the map has been redrawn at its new size
        window.Plotly.relayout(gd, {height: target});
        return;
      }
    }
    var map = full.map._subplot && full.map._subplot.map;
    var now = map && map.getZoom ? map.getZoom() : full.map.zoom;
    if (typeof now === "number" && Math.abs(now - view.zoom) < 0.02) {
      return;
    }
    window.Plotly.relayout(gd, {"map.center": view.center, "map.zoom": view.zoom});
  }

  function watchGraphs() {
    var graphs = document.querySelectorAll(".js-plotly-plot");
    for (var i = 0; i < graphs.length; i++) {
      var gd = graphs[i];
      if (!gd._fitWatched && gd.on) {
        gd._fitWatched = true;
        // a new figure from the server: fit it once it is drawn
        gd.on("plotly_afterplot", (function (g) {
          return function () {
            // Dash hands over a new layout object with each new figure; our own
            // relayout (and the user's zooming) changes the same object in place
            if (g._fitFigure !== g.layout) {
              g._fitFigure = g.layout;
              delete g.dataset.fitted;
            }
            fitMap(g);
          };
        })(gd));
        fitMap(gd);
      }
    }
  }

  function markTables() {
    var wraps = document.querySelectorAll(".table-wrap");
    for (var i = 0; i < wraps.length; i++) {
      var wrap = wraps[i];
      var box = wrap.querySelector(".dash-spreadsheet-container") || wrap.querySelector(".table-scroll");
      if (!box) {
        continue;
      }
      var more = box.scrollWidth - box.clientWidth - box.scrollLeft > 4;
      var wide = box.scrollWidth - box.clientWidth > 4;
      wrap.classList.toggle("has-more", more);
      wrap.classList.toggle("is-wide", wide);
      if (!box._cueWatched) {
        box._cueWatched = true;
        box.addEventListener("scroll", markTables, {passive: true});
      }
    }
  }

  var lastWidth = window.innerWidth;
  window.addEventListener("resize", function () {
    if (window.innerWidth === lastWidth) {
      return;
    }
    lastWidth = window.innerWidth;
    var graphs = document.querySelectorAll(".js-plotly-plot");
    for (var i = 0; i < graphs.length; i++) {
      delete graphs[i].dataset.fitted;
      fitMap(graphs[i]);
    }
    markTables();
  });

  // on a phone the step links scroll sideways: keep the current step in view
  var lastStep = null;
  function showStep() {
    var active = document.querySelector(".nav-inner .nav-link.active");
    if (active && active !== lastStep) {
      lastStep = active;
      var nav = active.parentElement;
      if (nav.scrollWidth > nav.clientWidth) {
        nav.scrollLeft = active.offsetLeft - (nav.clientWidth - active.offsetWidth) / 2;
      }
    }
  }

  window.setInterval(function () {
    watchGraphs();
    markTables();
    showStep();
  }, 600);
})();
