// planta UI: the only script. Pages work without it; it adds a confirmation before a move and
// the print button of the model card. Loaded from this server only (the CSP allows nothing else).
document.addEventListener("submit", function (e) {
  // A button may ask its own question (one form, several moves: the version page).
  var own = e.submitter && e.submitter.getAttribute("data-confirm");
  var text = own || e.target.getAttribute("data-confirm");
  if (text && !window.confirm(text)) e.preventDefault();
});
document.addEventListener("click", function (e) {
  if (e.target.closest("[data-print]")) window.print();
});
