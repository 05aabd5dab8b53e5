// relaykey settings page: talks to /v1 with the pasted API key, which lives only in this
// page's memory (no storage, no cookies). No external resources are loaded.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const state = { key: null, account: null, editing: null };

  class ApiFailure extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const init = { method, cache: "no-store", headers: { Authorization: `Bearer ${state.key}` } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiFailure(0, "The server cannot be reached.");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    if (!response.ok) {
      const message = data && data.error ? data.error.message : `HTTP ${response.status}`;
      throw new ApiFailure(response.status, message);
    }
    return data;
  }

  function setError(el, message) {
    el.textContent = message || "";
    el.hidden = !message;
  }

  function formError(dialog) {
    return dialog.querySelector(".form-error");
  }

  function when(seconds) {
    if (seconds === null || seconds === undefined) return "never";
    return new Date(seconds * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  function lines(text) {
    return text.split(/[\s,]+/).map((s) => s.trim()).filter((s) => s.length > 0);
  }

  // `label` repeats the column header, shown before the value on phone-width screens.
  function td(label, text) {
    const cell = document.createElement("td");
    cell.textContent = text;
    cell.dataset.label = label;
    return cell;
  }

  // An imported credential's last 5 characters are not known until its first login: its mask
  // shows none, and says why.
  function maskedCell(label, last5, imported) {
    const cell = document.createElement("td");
    cell.dataset.label = label;
    const code = document.createElement("code");
    if (imported) {
      code.textContent = "•••••";
      code.setAttribute("aria-label", "imported, not used yet");
      code.title = "Imported: the last 5 characters show after the first login";
      cell.append(code, " imported");
    } else {
      code.textContent = `•••••${last5}`;
      code.setAttribute("aria-label", `ending in ${last5.split("").join(" ")}`);
      cell.appendChild(code);
    }
    return cell;
  }

  function button(label, aria, onClick, className) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.setAttribute("aria-label", aria);
    if (className) b.className = className;
    b.addEventListener("click", onClick);
    return b;
  }

  function actions(buttons) {
    const cell = document.createElement("td");
    cell.className = "actions";
    buttons.forEach((b) => cell.appendChild(b));
    return cell;
  }

  // ---- rendering ----

  function renderKeys(keys) {
    const body = $("apikeys-table").tBodies[0];
    body.replaceChildren();
    $("apikeys-count").textContent = `(${keys.length} of 15)`;
    $("new-apikey").disabled = keys.length >= 15;
    for (const k of keys) {
      const row = document.createElement("tr");
      row.dataset.id = k.id;
      const own = state.account && k.id === state.account.key_id;
      row.append(
        td("Name", k.name + (own ? " (this key)" : "")),
        maskedCell("Key", k.last5),
        td("Permissions", k.permissions.join(", ")),
        td("Restriction", k.allow.length ? k.allow.join(", ") : "any"),
        td("Created", when(k.created_at)),
        td("Last used", when(k.last_used_at)),
      );
      const del = button("Delete", `Delete API key ${k.name}`, () => confirmDeleteKey(k), "danger delete");
      if (own) {
        del.disabled = true;
        del.title = "A key cannot delete itself";
      }
      row.append(
        actions([
          button("Edit", `Edit API key ${k.name}`, () => openKeyDialog(k), "secondary edit"),
          button("Change", `Change the secret of API key ${k.name}`, () => confirmChangeKey(k), "secondary change"),
          del,
        ]),
      );
      body.appendChild(row);
    }
  }

  function renderCredentials(creds) {
    const body = $("smtp-table").tBodies[0];
    body.replaceChildren();
    $("smtp-count").textContent = `(${creds.length} of 15)`;
    $("new-smtp").disabled = creds.length >= 15;
    for (const c of creds) {
      const row = document.createElement("tr");
      row.dataset.id = c.id;
      row.append(
        td("Username", c.username),
        maskedCell("Password", c.last5, c.imported),
        td("Restriction", c.allow.length ? c.allow.join(", ") : "any"),
        td("Created", when(c.created_at)),
        td("Last used", when(c.last_used_at)),
        actions([
          button("Edit", `Edit SMTP credential ${c.username}`, () => openSmtpDialog(c), "secondary edit"),
          button("Change", `Change the password of ${c.username}`, () => confirmChangeCredential(c), "secondary change"),
          button("Delete", `Delete SMTP credential ${c.username}`, () => confirmDeleteCredential(c), "danger delete"),
        ]),
      );
      body.appendChild(row);
    }
  }

  // The TXT record a pending domain must publish, each part labelled, with a copy button.
  function recordCell(s) {
    const cell = document.createElement("td");
    cell.dataset.label = "DNS record";
    if (!s.dns) {
      cell.textContent = s.verified ? "" : "ask the operator";
      return cell;
    }
    const box = document.createElement("div");
    box.className = "record";
    for (const [name, value, cls] of [["Name", s.dns.name, "record-name"], ["Type", s.dns.type, "record-type"], ["Value", s.dns.value, "record-value"]]) {
      const label = document.createElement("span");
      label.textContent = name;
      const code = document.createElement("code");
      code.className = cls;
      code.textContent = value;
      box.append(label, code);
    }
    box.appendChild(button("Copy value", `Copy the TXT value for ${s.unicode}`, () => copyText(s.dns.value, `The TXT value for ${s.unicode} is on the clipboard.`), "secondary copy-record"));
    cell.appendChild(box);
    return cell;
  }

  // Everything a verified or pending domain publishes (GET /v1/senders/{domain}/dns): its
  // verification record, its DKIM keys' records and an SPF suggestion, each with a copy button.
  async function showDnsRecords(s) {
    const records = await api("GET", `/v1/senders/${encodeURIComponent(s.entry)}/dns`);
    const list = $("dns-list");
    list.replaceChildren();
    $("dns-title").textContent = `DNS records for ${s.unicode}`;
    const rows = [];
    if (records.verification) rows.push(["Domain verification", records.verification]);
    for (const k of records.dkim) rows.push([`DKIM ${k.algorithm} key, selector ${k.selector} (${k.state})`, k.dns]);
    rows.push(["SPF (suggested)", records.spf]);
    for (const [what, rec] of rows) {
      const item = document.createElement("div");
      item.className = "record dns-record";
      const title = document.createElement("strong");
      title.textContent = what;
      title.className = "dns-record-purpose";
      item.appendChild(title);
      for (const [name, value, cls] of [["Name", rec.name, "dns-record-name"], ["Type", rec.type, "dns-record-type"], ["Value", rec.value, "dns-record-value"]]) {
        const label = document.createElement("span");
        label.textContent = name;
        const code = document.createElement("code");
        code.className = cls;
        code.textContent = value;
        item.append(label, code);
      }
      item.appendChild(button("Copy value", `Copy the ${what} TXT value`, () => copyText(rec.value, `The ${what} TXT value is on the clipboard.`), "secondary copy-dns-record"));
      list.appendChild(item);
    }
    $("dns-panel").hidden = false;
    $("dns-title").scrollIntoView({ block: "nearest" });
  }

  function renderSenders(senders) {
    const body = $("senders-table").tBodies[0];
    body.replaceChildren();
    $("senders-count").textContent = `(${senders.length})`;
    for (const s of senders) {
      const row = document.createElement("tr");
      row.dataset.entry = s.entry;
      const shown = s.unicode === s.entry ? s.entry : `${s.unicode} (${s.entry})`;
      const status = td("Status", s.verified ? "Verified" : "Pending");
      status.className = s.verified ? "status-verified" : "status-pending";
      row.append(td(s.kind === "domain" ? "Domain" : "Address", shown), status, recordCell(s));
      const buttons = [];
      if (s.kind === "domain") {
        buttons.push(button("DNS records", `Show every DNS record for ${s.unicode}`, () => showDnsRecords(s), "secondary dns-records"));
      }
      if (!s.verified && s.dns) {
        buttons.push(button("Verify", `Verify ${s.unicode} now`, () => verifySender(s), "secondary verify"));
      }
      const del = button("Remove", `Remove sender ${s.unicode}`, () => confirmRemoveSender(s), "danger delete");
      if (state.account && s.entry === state.account.email) {
        del.disabled = true;
        del.title = "The account's own address stays";
      }
      buttons.push(del);
      row.appendChild(actions(buttons));
      body.appendChild(row);
    }
  }

  async function refresh() {
    const [account, keys, creds, senders] = await Promise.all([
      api("GET", "/v1/account"),
      api("GET", "/v1/api-keys"),
      api("GET", "/v1/smtp-credentials"),
      api("GET", "/v1/senders"),
    ]);
    state.account = account;
    $("account-email").textContent = account.email;
    renderKeys(keys);
    renderCredentials(creds);
    renderSenders(senders);
  }

  function showSettings(visible) {
    $("connect-section").hidden = visible;
    $("account-line").hidden = !visible;
    $("apikeys-section").hidden = !visible;
    $("smtp-section").hidden = !visible;
    $("senders-section").hidden = !visible;
    $("senders-status").textContent = "";
    $("dns-panel").hidden = true;
  }

  // A 401 means the pasted key is gone (changed or deleted): back to the sign-in form.
  function handleFailure(e, where) {
    if (e instanceof ApiFailure && e.status === 401) {
      forget("The API key was not accepted (it may have been changed or deleted).");
      return;
    }
    setError(where, e.message);
  }

  function forget(message) {
    state.key = null;
    state.account = null;
    document.querySelectorAll("dialog[open]").forEach((d) => d.close());
    showSettings(false);
    setError($("error"), message);
    $("key-input").focus();
  }

  // ---- dialogs ----

  function openDialog(dialog, focus) {
    setError(formError(dialog), "");
    dialog.showModal();
    if (focus) focus.focus();
  }

  function showSecret(label, value) {
    $("secret-label").textContent = label;
    $("secret-value").value = value;
    $("copy-status").textContent = "";
    $("secret-dialog").showModal();
    $("secret-value").select();
    $("copy-secret").focus();
  }

  async function copySecret() {
    const input = $("secret-value");
    try {
      await navigator.clipboard.writeText(input.value);
    } catch (e) {
      input.select();
      document.execCommand("copy");
    }
    $("copy-status").textContent = "Copied to the clipboard.";
  }

  async function copyText(text, done) {
    try {
      await navigator.clipboard.writeText(text);
      $("senders-status").textContent = done;
    } catch (e) {
      $("senders-status").textContent = "The clipboard is not available: select the value and copy it.";
    }
  }

  let pending = null;
  function confirmAction(title, text, label, action) {
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-yes").textContent = label;
    pending = action;
    openDialog($("confirm-dialog"), $("confirm-no"));
  }

  function openKeyDialog(key) {
    state.editing = key || null;
    const form = $("apikey-form");
    form.reset();
    $("apikey-dialog-title").textContent = key ? `Edit API key ${key.name}` : "Create API key";
    $("apikey-save").textContent = key ? "Save" : "Create";
    $("apikey-name").value = key ? key.name : "";
    // A new key starts with what the signed-in key holds: it cannot give more.
    const held = state.account ? state.account.permissions : [];
    for (const box of form.querySelectorAll("input[name=perm]")) {
      box.checked = key ? key.permissions.includes(box.value) : held.includes(box.value);
    }
    $("apikey-allow").value = key ? key.allow.join("\n") : "";
    openDialog($("apikey-dialog"), $("apikey-name"));
  }

  function openSmtpDialog(cred) {
    state.editing = cred || null;
    $("smtp-form").reset();
    $("smtp-dialog-title").textContent = cred ? `Edit SMTP credential ${cred.username}` : "Create SMTP credential";
    $("smtp-save").textContent = cred ? "Save" : "Create";
    $("smtp-username-field").hidden = Boolean(cred);
    $("smtp-allow").value = cred ? cred.allow.join("\n") : "";
    openDialog($("smtp-dialog"), cred ? $("smtp-allow") : $("smtp-username"));
  }

  async function saveKey() {
    const form = $("apikey-form");
    const body = {
      name: $("apikey-name").value,
      permissions: [...form.querySelectorAll("input[name=perm]:checked")].map((b) => b.value),
      allow: lines($("apikey-allow").value),
    };
    if (state.editing) {
      // Send only what changed: a key may rename another key that holds more than it does.
      const same = (a, b) => a.length === b.length && a.every((x) => b.includes(x));
      if (same(body.permissions, state.editing.permissions)) delete body.permissions;
      if (same(body.allow, state.editing.allow)) delete body.allow;
      await api("PATCH", `/v1/api-keys/${state.editing.id}`, body);
      $("apikey-dialog").close();
    } else {
      const created = await api("POST", "/v1/api-keys", body);
      $("apikey-dialog").close();
      showSecret(`API key "${created.name}"`, created.key);
    }
    await refresh();
  }

  async function saveCredential() {
    const allow = lines($("smtp-allow").value);
    if (state.editing) {
      await api("PATCH", `/v1/smtp-credentials/${state.editing.id}`, { allow });
      $("smtp-dialog").close();
    } else {
      const body = { allow };
      const username = $("smtp-username").value.trim();
      if (username) body.username = username;
      const created = await api("POST", "/v1/smtp-credentials", body);
      $("smtp-dialog").close();
      showSecret(`Password for ${created.username}`, created.password);
    }
    await refresh();
  }

  function openSenderDialog() {
    $("sender-form").reset();
    openDialog($("sender-dialog"), $("sender-domain"));
  }

  async function saveSender() {
    const added = await api("POST", "/v1/senders", { domain: $("sender-domain").value.trim() });
    $("sender-dialog").close();
    await refresh();
    $("senders-status").textContent = `${added.unicode} is pending: publish its TXT record, then press Verify.`;
    const copy = document.querySelector(`#senders-table tr[data-entry="${CSS.escape(added.entry)}"] button.copy-record`);
    if (copy) copy.focus();
  }

  async function verifySender(s) {
    $("senders-status").textContent = `Looking up ${s.dns.name}…`;
    try {
      const result = await api("POST", `/v1/senders/${encodeURIComponent(s.entry)}/verify`);
      await refresh();
      $("senders-status").textContent = result.verified
        ? `${result.unicode} is verified: you can send from it now.`
        : `${result.unicode} is not verified yet: ${result.check ? result.check.message : "no matching record"}.`;
    } catch (e) {
      handleFailure(e, $("error"));
      $("senders-status").textContent = "";
    }
  }

  function confirmRemoveSender(s) {
    confirmAction(`Remove sender ${s.unicode}?`, "Mail from it is refused at once, and another account may claim it.", "Remove", async () => {
      await api("DELETE", `/v1/senders/${encodeURIComponent(s.entry)}`);
      $("confirm-dialog").close();
      await refresh();
    });
  }

  function confirmChangeKey(k) {
    const own = state.account && k.id === state.account.key_id;
    confirmAction(
      `Change API key ${k.name}?`,
      "A new secret replaces the current one, which stops working at once." +
        (own ? " This is the key you signed in with; the page switches to the new one." : ""),
      "Change secret",
      async () => {
        const changed = await api("POST", `/v1/api-keys/${k.id}/change`);
        if (own) state.key = changed.key;
        $("confirm-dialog").close();
        showSecret(`API key "${changed.name}"`, changed.key);
        await refresh();
      },
    );
  }

  function confirmDeleteKey(k) {
    confirmAction(`Delete API key ${k.name}?`, "Programs using it stop working at once.", "Delete", async () => {
      await api("DELETE", `/v1/api-keys/${k.id}`);
      $("confirm-dialog").close();
      await refresh();
    });
  }

  function confirmChangeCredential(c) {
    confirmAction(
      `Change the password of ${c.username}?`,
      "A new password replaces the current one, which stops working at once.",
      "Change password",
      async () => {
        const changed = await api("POST", `/v1/smtp-credentials/${c.id}/change`);
        $("confirm-dialog").close();
        showSecret(`Password for ${changed.username}`, changed.password);
        await refresh();
      },
    );
  }

  function confirmDeleteCredential(c) {
    confirmAction(`Delete SMTP credential ${c.username}?`, "Mail clients using it stop working at once.", "Delete", async () => {
      await api("DELETE", `/v1/smtp-credentials/${c.id}`);
      $("confirm-dialog").close();
      await refresh();
    });
  }

  // Runs a dialog's submit action; failures stay in the dialog, next to the form.
  function onSubmit(dialogId, formEl, action) {
    formEl.addEventListener("submit", async (event) => {
      event.preventDefault();
      const dialog = $(dialogId);
      setError(formError(dialog), "");
      try {
        await action();
      } catch (e) {
        handleFailure(e, formError(dialog));
      }
    });
  }

  function init() {
    $("connect-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      setError($("error"), "");
      state.key = $("key-input").value.trim();
      try {
        await refresh();
        $("key-input").value = "";
        showSettings(true);
        if (!state.account.permissions.includes("manage")) {
          setError($("error"), "This key lacks the manage permission: you can look, not change.");
        }
        $("new-apikey").focus();
      } catch (e) {
        state.key = null;
        setError($("error"), e instanceof ApiFailure && e.status === 401 ? "The API key was not accepted." : e.message);
      }
    });
    $("disconnect").addEventListener("click", () => forget(""));
    $("new-apikey").addEventListener("click", () => openKeyDialog(null));
    $("new-smtp").addEventListener("click", () => openSmtpDialog(null));
    $("new-sender").addEventListener("click", openSenderDialog);
    $("copy-secret").addEventListener("click", copySecret);
    $("secret-dialog").addEventListener("close", () => {
      $("secret-value").value = "";
    });
    onSubmit("apikey-dialog", $("apikey-form"), saveKey);
    onSubmit("smtp-dialog", $("smtp-form"), saveCredential);
    onSubmit("sender-dialog", $("sender-form"), saveSender);
    onSubmit("confirm-dialog", $("confirm-dialog").querySelector("form"), async () => {
      if (pending) await pending();
    });
    document.querySelectorAll("[data-close]").forEach((b) => b.addEventListener("click", () => b.closest("dialog").close()));
    $("secret-dialog").querySelector("form").addEventListener("submit", () => $("secret-dialog").close());
  }

  document.addEventListener("DOMContentLoaded", init);
})();
