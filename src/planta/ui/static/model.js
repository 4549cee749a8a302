// planta UI: the threshold slider of the model page. Loaded only by pages that have one, from
// this server (the CSP forbids inline script). Without it the page shows the current setting
// and the whole table; with it, a range input walks the same table.
(function () {
  function fill(text, values) {
    return text.replace(/\{(\w+)\}/g, function (all, key) {
      return Object.prototype.hasOwnProperty.call(values, key) ? values[key] : all;
    });
  }
  function setUp(box) {
    var rows = JSON.parse(box.getAttribute("data-rows"));
    var input = box.querySelector("input[type=range]");
    var out = box.querySelector("[data-slider-text]");
    var text = box.getAttribute("data-text");
    var current = box.getAttribute("data-current");
    var start = input.value;
    function show() {
      var r = rows[+input.value];
      out.textContent = fill(text, {pct: String(Math.round(r[0] * 1000) / 10), caught: r[1],
                                    missed: r[2], fa: r[3], real: r[4] === null ? "—" : r[4]}) +
        (input.value === start ? " (" + current + ")" : "");
    }
    input.addEventListener("input", show);
    box.querySelectorAll(".js-only").forEach(function (el) { el.hidden = false; });
    show();
  }
  document.querySelectorAll("[data-slider]").forEach(setUp);
})();
