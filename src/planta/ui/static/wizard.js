// planta UI, training page: poll the progress JSON every second and show trials as they finish;
// reload once the run is over (the server draws the result). Without JavaScript the page
// refreshes itself (<noscript> meta refresh).
(function () {
  var box = document.getElementById("training");
  if (!box || box.getAttribute("data-status") !== "running") return;
  var url = box.getAttribute("data-poll");
  function text(id, value) { var el = document.getElementById(id); if (el) el.textContent = value; }
  function tick() {
    fetch(url, {credentials: "same-origin", cache: "no-store"}).then(function (r) {
      return r.json();
    }).then(function (run) {
      if (!run.ok || run.status !== "running") { window.location.reload(); return; }
      text("t-status", box.getAttribute("data-running")
        .replace("{elapsed}", run.elapsed_s).replace("{budget}", run.budget_s));
      text("t-message", run.message || "");
      text("t-count", box.getAttribute("data-count").replace("{n}", run.n_trials));
      var list = document.getElementById("t-trials");
      var line = box.getAttribute("data-trial");
      list.textContent = "";
      run.trials.slice().reverse().forEach(function (tr) {
        var li = document.createElement("li");
        li.textContent = line.replace("{n}", tr.n).replace("{estimator}", tr.estimator)
          .replace("{score}", tr.score.toPrecision(4)).replace("{best}", tr.best.toPrecision(4))
          .replace("{elapsed}", tr.elapsed_s);
        list.appendChild(li);
      });
      setTimeout(tick, 1000);
    }).catch(function () { setTimeout(tick, 2000); });
  }
  setTimeout(tick, 1000);
})();
