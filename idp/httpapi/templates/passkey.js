// Passkeys (WebAuthn): the login page's "Sign in with a passkey" and the account page's "Add a
// passkey". The server's options come as JSON with binary members in base64url; the answer goes
// back the same way.
(function () {
  'use strict';
  function dec(s) {
    s = s.replace(/-/g, '+').replace(/_/g, '/');
    while (s.length % 4) s += '=';
    var b = atob(s), a = new Uint8Array(b.length);
    for (var i = 0; i < b.length; i++) a[i] = b.charCodeAt(i);
    return a.buffer;
  }
  function enc(buf) {
    if (!buf) return undefined;
    var a = new Uint8Array(buf), s = '';
    for (var i = 0; i < a.length; i++) s += String.fromCharCode(a[i]);
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }
  function creds(list) {
    return (list || []).map(function (c) { return { type: c.type, id: dec(c.id), transports: c.transports }; });
  }
  function credentialJSON(c) {
    var r = c.response, out = { id: c.id, rawId: enc(c.rawId), type: c.type, authenticatorAttachment: c.authenticatorAttachment || undefined,
      clientExtensionResults: c.getClientExtensionResults ? c.getClientExtensionResults() : {}, response: { clientDataJSON: enc(r.clientDataJSON) } };
    if (r.attestationObject) {
      out.response.attestationObject = enc(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    } else {
      out.response.authenticatorData = enc(r.authenticatorData);
      out.response.signature = enc(r.signature);
      out.response.userHandle = enc(r.userHandle);
    }
    return out;
  }
  function showError(msg) {
    var e = document.getElementById('passkey-error');
    if (e) { e.textContent = msg; e.hidden = false; }
  }
  async function answer(res) {
    var j = null;
    try { j = await res.json(); } catch (e) { }
    if (!res.ok) throw new Error(j && j.result ? j.result : 'The server refused the passkey (' + res.status + ').');
    return j;
  }
  // getOptions turns the server's CredentialAssertion into navigator.credentials.get's argument.
  function getOptions(o) {
    var pk = o.publicKey;
    pk.challenge = dec(pk.challenge);
    pk.allowCredentials = creds(pk.allowCredentials);
    return { publicKey: pk };
  }
  function createOptions(o) {
    var pk = o.publicKey;
    pk.challenge = dec(pk.challenge);
    pk.user.id = dec(pk.user.id);
    pk.excludeCredentials = creds(pk.excludeCredentials);
    return { publicKey: pk };
  }
  async function signIn(btn) {
    var form = btn.form || document.querySelector('form');
    var csrf = form.querySelector('input[name=csrf]').value, rd = form.querySelector('input[name=rd]').value;
    var res = await fetch(btn.dataset.begin, { method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ csrf: csrf }) });
    var opts = await answer(res);
    var cred = await navigator.credentials.get(getOptions(opts));
    res = await fetch(btn.dataset.finish + '?rd=' + encodeURIComponent(rd), { method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(credentialJSON(cred)) });
    var done = await answer(res);
    window.location.assign(done.redirect);
  }
  async function register(btn) {
    var h = { 'X-CSRF-Token': btn.dataset.csrf };
    var res = await fetch(btn.dataset.begin, { method: 'POST', credentials: 'same-origin', headers: h });
    var opts = await answer(res);
    var cred = await navigator.credentials.create(createOptions(opts));
    var name = document.getElementById('passkey-name');
    h['Content-Type'] = 'application/json';
    res = await fetch(btn.dataset.finish + '?name=' + encodeURIComponent(name ? name.value : ''), { method: 'POST',
      credentials: 'same-origin', headers: h, body: JSON.stringify(credentialJSON(cred)) });
    await answer(res);
    window.location.reload();
  }
  function wire(id, fn) {
    var btn = document.getElementById(id);
    if (!btn) return;
    if (!window.PublicKeyCredential) { btn.hidden = true; return; }
    btn.addEventListener('click', function () {
      btn.disabled = true;
      fn(btn).catch(function (e) { showError(e && e.message ? e.message : String(e)); }).finally(function () { btn.disabled = false; });
    });
  }
  function init() { wire('passkey', signIn); wire('add-passkey', register); }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init); else init();
})();
