// Served as a file so the pages' Content-Security-Policy can forbid inline scripts (script-src 'self').
// Speed, not function: the form works without this. Auto-advance after one digit, refuse others,
// and time the entry (speeders are flagged against the median).
const started = Date.now();
const answers = [...document.querySelectorAll('.answer')];
answers.forEach((box, i) => box.addEventListener('input', () => {
  box.value = box.value.replace(/[^0-5]/g, '').slice(0, 1);
  box.setAttribute('aria-invalid', box.value === '' ? 'true' : 'false');
  if (box.value !== '') (answers[i + 1] || document.getElementById('e')).focus();
}));
document.getElementById('keying').addEventListener('submit', () => {
  document.getElementById('entry_seconds').value = ((Date.now() - started) / 1000).toFixed(1);
});
