// Shows what the demo upstream received, including the X-Forwarded-* headers rampart set.
fetch('/api/echo', { headers: { 'Accept': 'application/json' } })
  .then((r) => r.json())
  .then((j) => { document.getElementById('echo').textContent = JSON.stringify(j, null, 2); })
  .catch((e) => { document.getElementById('echo').textContent = 'error: ' + e; });
