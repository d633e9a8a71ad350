/** The demo page: plain HTML and JavaScript, no build step, no external resources. */
export const DEMO_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>realtime-governance-proxy demo</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
  main { max-width: 760px; margin: 24px auto; background: #fff; border-radius: 10px; padding: 20px 24px; box-shadow: 0 1px 4px #0002; }
  h1 { font-size: 20px; margin: 0 0 4px; }
  p.sub { margin: 0 0 16px; color: #5b6475; }
  label { display: block; font-weight: 600; margin: 10px 0 4px; }
  input[type=text], input[type=password] { width: 100%; box-sizing: border-box; padding: 8px; border: 1px solid #c6cbd5; border-radius: 6px; font: inherit; }
  .row { display: flex; gap: 10px; align-items: center; margin-top: 12px; }
  button { padding: 8px 18px; border: 0; border-radius: 6px; background: #2457d6; color: #fff; font: inherit; cursor: pointer; }
  button:disabled { background: #9aa6c0; }
  .turn { margin-top: 16px; padding: 10px 12px; border-radius: 8px; background: #f0f3fa; }
  .turn b { display: inline-block; width: 56px; color: #5b6475; }
  .error { color: #b3261e; }
  canvas { width: 100%; height: 80px; margin-top: 12px; background: #0f1a2e; border-radius: 6px; }
  #status { color: #5b6475; }
  ul#events { font: 12px/1.4 ui-monospace, monospace; color: #5b6475; max-height: 180px; overflow: auto; padding-left: 18px; }
</style>
</head>
<body>
<main>
  <h1>realtime-governance-proxy</h1>
  <p class="sub">One turn from the browser through the proxy: subprotocol auth with a tenant key, the answer played as audio.</p>
  <form id="form">
    <label for="key">Tenant key</label>
    <input id="key" type="password" autocomplete="off" placeholder="rpk_... (realtime-proxy keygen --browser)">
    <label for="text">You say</label>
    <input id="text" type="text" value="Hello from the browser.">
    <div class="row">
      <label style="margin:0;font-weight:400"><input id="say" type="checkbox" checked> make the simulator say it (<code>say:</code>)</label>
      <span style="flex:1"></span>
      <button id="go" type="submit">Talk</button>
    </div>
  </form>
  <div class="turn"><div><b>you</b><span id="you"></span></div><div><b>proxy</b><span id="answer"></span></div><div id="errors" class="error"></div></div>
  <canvas id="wave" width="1400" height="160"></canvas>
  <div class="row"><span id="status">idle</span></div>
  <ul id="events"></ul>
</main>
<script>
(() => {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get('key')) $('key').value = params.get('key');
  if (params.get('text')) $('text').value = params.get('text');
  const RATE = 24000;
  let audioCtx = null;

  function setState(state, text) {
    document.body.dataset.state = state;
    $('status').textContent = text;
  }
  function logEvent(type) {
    const li = document.createElement('li');
    li.textContent = type;
    $('events').appendChild(li);
  }
  function pcmToFloat(chunks) {
    let n = 0;
    for (const c of chunks) n += c.length >> 1;
    const out = new Float32Array(n);
    let i = 0;
    for (const c of chunks) {
      const view = new DataView(c.buffer, c.byteOffset, c.byteLength);
      for (let o = 0; o + 1 < c.length; o += 2) out[i++] = view.getInt16(o, true) / 32768;
    }
    return out;
  }
  function drawWave(samples) {
    const canvas = $('wave');
    const g = canvas.getContext('2d');
    g.fillStyle = '#0f1a2e';
    g.fillRect(0, 0, canvas.width, canvas.height);
    g.strokeStyle = '#5ec8f2';
    g.beginPath();
    const step = Math.max(1, Math.floor(samples.length / canvas.width));
    for (let x = 0; x < canvas.width; x++) {
      let peak = 0;
      for (let j = x * step; j < Math.min(samples.length, (x + 1) * step); j++) peak = Math.max(peak, Math.abs(samples[j]));
      const h = peak * canvas.height * 0.9;
      g.moveTo(x, (canvas.height - h) / 2);
      g.lineTo(x, (canvas.height + h) / 2);
    }
    g.stroke();
  }
  function play(samples) {
    if (samples.length === 0) return;
    audioCtx = audioCtx || new AudioContext({ sampleRate: RATE });
    const buffer = audioCtx.createBuffer(1, samples.length, RATE);
    buffer.copyToChannel(samples, 0);
    const src = audioCtx.createBufferSource();
    src.buffer = buffer;
    src.connect(audioCtx.destination);
    src.start();
    document.body.dataset.played = String(samples.length / RATE);
  }

  $('form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const key = $('key').value.trim();
    const typed = $('text').value;
    const text = $('say').checked ? 'say: ' + typed : typed;
    $('you').textContent = typed;
    $('answer').textContent = '';
    $('errors').textContent = '';
    $('events').textContent = '';
    // The page is served by the admin listener; sessions go to the client port of the same host. The
    // port is a number and nothing else: a URL's #port=1@other.example:443 must not move the key elsewhere.
    const portText = params.get('port') || '__CLIENT_PORT__';
    const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : 0;
    if (port < 1 || port > 65535) {
      $('errors').textContent = 'The client port must be a number from 1 to 65535 (#port=…); not connecting.';
      setState('refused', 'not connected');
      return;
    }
    const url = 'ws://' + location.hostname + ':' + port + '/v1/realtime?model=gpt-realtime';
    $('go').disabled = true;
    setState('connecting', 'connecting…');
    let ws;
    try {
      // Browsers cannot set headers on a WebSocket: the key travels as a subprotocol entry.
      ws = new WebSocket(url, ['realtime', 'openai-insecure-api-key.' + key]);
    } catch (err) {
      $('errors').textContent = 'Cannot connect: ' + err.message;
      $('go').disabled = false;
      setState('refused', 'not connected');
      return;
    }
    const chunks = [];
    ws.onopen = () => {
      setState('talking', 'connected, waiting for the answer…');
      ws.send(JSON.stringify({ type: 'session.update', session: { type: 'realtime', output_modalities: ['audio'], audio: { output: { format: { type: 'audio/pcm', rate: RATE } } } } }));
      ws.send(JSON.stringify({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } }));
      ws.send(JSON.stringify({ type: 'response.create' }));
    };
    ws.onmessage = (m) => {
      const e = JSON.parse(m.data);
      if (e.type !== 'response.output_audio.delta') logEvent(e.type);
      if (e.type === 'response.output_audio.delta') {
        const bin = atob(e.delta);
        const bytes = new Uint8Array(bin.length);
        for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
        chunks.push(bytes);
      } else if (e.type === 'response.output_audio_transcript.delta') {
        $('answer').textContent += e.delta;
      } else if (e.type === 'error') {
        $('errors').textContent += (e.error.code || 'error') + ': ' + e.error.message + ' ';
      } else if (e.type === 'rtproxy.notice') {
        // What the proxy did to the answer (a redaction, a response cancelled by policy): not an error.
        $('errors').textContent += 'notice ' + (e.notice.code || '') + ': ' + e.notice.message + ' ';
      } else if (e.type === 'response.done') {
        const samples = pcmToFloat(chunks);
        drawWave(samples);
        play(samples);
        setState('done', 'response ' + e.response.status + ': ' + (samples.length / RATE).toFixed(1) + ' s of audio');
        ws.close(1000);
      }
    };
    ws.onclose = (c) => {
      $('go').disabled = false;
      if (document.body.dataset.state !== 'done') setState('closed', 'closed ' + c.code + (c.reason ? ' ' + c.reason : ''));
    };
  });
  // The page's Content-Security-Policy lets it connect to its own host only (a CSP cannot name an
  // IPv6 address in Chromium: open the page as localhost or 127.0.0.1 then).
  document.addEventListener('securitypolicyviolation', (ev) => {
    $('errors').textContent += 'Blocked by the page Content-Security-Policy: ' + ev.blockedURI + ' (open the page as http://localhost:…/demo). ';
  });
  setState('idle', 'idle');
})();
</script>
</body>
</html>
`;
