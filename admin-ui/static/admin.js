// Progressive enhancement only: copy buttons and confirm dialogs. Everything works without it.
document.addEventListener('DOMContentLoaded', () => {
  for (const b of document.querySelectorAll('button[data-copy]')) {
    b.addEventListener('click', async () => {
      const el = document.getElementById(b.dataset.copy);
      try { await navigator.clipboard.writeText(el.textContent.trim()); b.textContent = 'Copied'; }
      catch (e) { b.textContent = 'Select and copy by hand'; }
    });
  }
  for (const f of document.querySelectorAll('form[data-confirm]')) {
    f.addEventListener('submit', (ev) => { if (!window.confirm(f.dataset.confirm)) ev.preventDefault(); });
  }
});
