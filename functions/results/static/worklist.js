// The worklist: a hospital's recent bone age results from the results API, no framework, no CDN.
// Sign-in: the authorization code grant with PKCE (RFC 7636, S256) against Cognito's hosted UI (or the
// local server's stand-in), never the implicit grant (RFC 9700): the page keeps a random code_verifier
// and state in sessionStorage, the hosted UI returns a one-time code in the query, and the page redeems
// it with the verifier at the token endpoint. The ID token never appears in a URL; it is kept in
// sessionStorage for this tab only and sent as a Bearer token.
"use strict";

const FLAG_TEXT = {   // the wording of boneage.clinical.text.FLAG_TEXT, so page, report and e-mail agree
  delayed: "delayed (below -2 SD)",
  advanced: "advanced (above +2 SD)",
  within_normal_limits: "within normal limits (-2 to +2 SD)",
};
const REFRESH_MS = 30000;
const $ = (id) => document.getElementById(id);
let nextToken = null;
let refreshTimer = null;

const PENDING = ["pkce_verifier", "pkce_state"];   // sessionStorage keys of a sign-in under way
const RETURN_PARAMS = ["code", "state", "error", "error_description"];

class SignInError extends Error {}

function base64url(bytes) {
  let binary = "";
  for (const b of new Uint8Array(bytes)) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(byteCount) {      // base64url: only RFC 7636's unreserved characters
  return base64url(crypto.getRandomValues(new Uint8Array(byteCount)));
}

async function signInConfig() {
  const response = await fetch("/config.json", { cache: "no-store" });
  if (!response.ok) throw new SignInError("The sign-in settings could not be loaded.");
  const config = await response.json();
  if (!config.authorizeUrl || !config.tokenUrl || !config.clientId || !config.redirectUri) {
    throw new SignInError("Sign-in is not configured for this worklist.");
  }
  return config;
}

async function signIn() {
  $("sign-in-message").textContent = "";
  try {
    const config = await signInConfig();
    const verifier = randomString(48), state = randomString(24);    // 64 and 32 characters
    const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
    sessionStorage.setItem("pkce_verifier", verifier);
    sessionStorage.setItem("pkce_state", state);
    const params = new URLSearchParams({
      response_type: "code", client_id: config.clientId, redirect_uri: config.redirectUri, scope: config.scope,
      state, code_challenge: challenge, code_challenge_method: "S256",
    });
    location.assign(config.authorizeUrl + "?" + params.toString());
  } catch (e) {
    $("sign-in-message").textContent = e instanceof SignInError ? e.message : "Sign-in could not start.";
  }
}

// Back from the hosted UI with ?code=&state= (or ?error=): check the state, redeem the code, and take
// the code and state out of the address bar and history before anything else can read them.
async function completeSignIn() {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return;
  const clean = new URLSearchParams(location.search);
  for (const name of RETURN_PARAMS) clean.delete(name);
  history.replaceState(null, "", location.pathname + (clean.toString() ? "?" + clean.toString() : ""));
  const [verifier, expected] = PENDING.map((key) => sessionStorage.getItem(key));
  for (const key of PENDING) sessionStorage.removeItem(key);   // one attempt per sign-in
  if (params.has("error")) throw new SignInError(`The sign-in service refused the sign-in (${params.get("error")}).`);
  if (!verifier || !expected || params.get("state") !== expected) {
    throw new SignInError("This sign-in answer does not belong to a sign-in started in this tab (state mismatch); nothing was signed in.");
  }
  const config = await signInConfig();
  let response;
  try {
    response = await fetch(config.tokenUrl, {
      method: "POST", credentials: "omit", cache: "no-store",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "authorization_code", client_id: config.clientId,
                                  code: params.get("code"), redirect_uri: config.redirectUri, code_verifier: verifier }),
    });
  } catch (e) {
    throw new SignInError("The sign-in service could not be reached.");
  }
  let body = {};
  try { body = await response.json(); } catch (e) { /* not JSON */ }
  if (!response.ok || typeof body.id_token !== "string") {
    const why = typeof body.error === "string" ? body.error : "HTTP " + response.status;
    throw new SignInError(`The sign-in service did not issue a token (${why}).`);
  }
  sessionStorage.setItem("id_token", body.id_token);
}

function token() {
  const value = sessionStorage.getItem("id_token");
  if (!value) return null;
  const claims = decodeClaims(value);
  if (!claims || claims.exp * 1000 <= Date.now()) { sessionStorage.removeItem("id_token"); return null; }
  return value;
}

function decodeClaims(jwt) {   // display only: the API gateway checks the signature
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part));
  } catch (e) { return null; }
}

function signedOut(message) {
  show("signed-out");
  $("sign-out").hidden = true;
  $("sign-in-message").textContent = message || "";
}

function show(id) {
  for (const view of ["signed-out", "list-view", "detail-view"]) $(view).hidden = view !== id;
}

async function api(path, accept) {
  const value = token();
  if (!value) { signedOut(); throw new Error("signed out"); }
  const response = await fetch(path, { headers: { Authorization: "Bearer " + value, Accept: accept || "application/json" } });
  if (response.status === 401) { sessionStorage.removeItem("id_token"); signedOut(); throw new Error("signed out"); }
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).message || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response.json();
}

function yearsMonths(months) {
  if (months === null || months === undefined) return "";
  const whole = Math.round(months);
  const sign = whole < 0 ? "-" : "";
  const y = Math.floor(Math.abs(whole) / 12), m = Math.abs(whole) % 12;
  return `${sign}${y} y ${m} m`;
}

function signed(value, digits) {
  return value === null || value === undefined ? "" : (value >= 0 ? "+" : "") + value.toFixed(digits);
}

function text(tag, content, className) {
  const el = document.createElement(tag);
  if (content !== undefined && content !== null) el.textContent = content;
  if (className) el.className = className;
  return el;
}

function cell(...children) {
  const td = document.createElement("td");
  for (const child of children) if (child) td.append(child);
  return td;
}

function flag(result) {
  if (!result.interpretation) return null;
  const el = text("span", FLAG_TEXT[result.interpretation] || result.interpretation, "flag flag-" + result.interpretation);
  return el;
}

function statusCell(result) {
  if (result.status === "completed") return cell(text("span", "completed"));
  const el = text("span", result.status, "status-" + result.status);
  const why = result.reason ? text("span", `${result.reason}: ${result.message || ""}`, "sub") : null;
  return cell(el, why);
}

function boneAgeCell(result) {
  if (result.bone_age_months === null || result.bone_age_months === undefined) return cell();
  const interval = result.bone_age_interval_months;
  const range = interval ? text("span", `${yearsMonths(interval[0])} to ${yearsMonths(interval[1])}`, "sub") : null;
  const td = cell(text("span", yearsMonths(result.bone_age_months)), range);
  td.className = "num";
  return td;
}

function sdsCell(result) {
  if (result.sds === null || result.sds === undefined) {
    return cell(result.status === "completed" ? text("span", "not given", "sub") : null);
  }
  const interval = result.sds_interval;
  const td = cell(text("span", signed(result.sds, 2)),
                  interval ? text("span", `${signed(interval[0], 1)} to ${signed(interval[1], 1)}`, "sub") : null);
  td.className = "num";
  return td;
}

function when(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

function row(result) {
  const tr = document.createElement("tr");
  tr.dataset.uploadId = result.upload_id;
  const reference = cell(text("span", result.study_reference || "no study reference"),
                         result.demo_model ? text("span", "DEMO", "demo") : null);
  const chrono = cell(text("span", yearsMonths(result.chronological_age_months)));
  chrono.className = "num";
  const open = text("button", "Details");
  open.type = "button";
  open.setAttribute("aria-label", `Details of ${result.study_reference || "this result"}`);
  open.addEventListener("click", () => openDetail(result.upload_id));
  tr.append(cell(text("time", when(result.created_at))), reference, statusCell(result), boneAgeCell(result),
            chrono, sdsCell(result), cell(flag(result)), cell(open));
  return tr;
}

function filterQuery() {
  const params = new URLSearchParams();
  for (const [name, value] of new FormData($("filters"))) if (value) params.set(name, value);
  return params;
}

async function loadList(append) {
  const params = filterQuery();
  if (append && nextToken) params.set("next", nextToken);
  $("message").textContent = "Loading...";
  $("results").setAttribute("aria-busy", "true");
  try {
    const page = await api("/results?" + params.toString());
    const body = $("results").tBodies[0];
    if (!append) body.replaceChildren();
    for (const result of page.results) body.append(row(result));
    nextToken = page.next;
    $("more").hidden = !nextToken;
    $("message").textContent = body.rows.length ? "" : "No results match these filters.";
    $("updated").textContent = "Updated " + new Date().toLocaleTimeString();
  } catch (e) {
    if (e.message !== "signed out") $("message").textContent = "Could not load results: " + e.message;
  } finally {
    $("results").removeAttribute("aria-busy");
  }
}

function field(list, label, value, node) {
  if ((value === null || value === undefined || value === "") && !node) return;
  list.append(text("dt", label));
  const dd = text("dd", node ? null : value);
  if (node) dd.append(node);
  list.append(dd);
}

async function openDetail(uploadId) {
  show("detail-view");
  stopRefresh();
  const fields = $("detail-fields");
  fields.replaceChildren();
  $("report-figure").hidden = true;
  $("detail-message").textContent = "Loading...";
  $("detail-view").focus();
  try {
    const r = await api("/results/" + encodeURIComponent(uploadId));
    $("detail-title").textContent = "Result " + (r.study_reference || "without study reference") + (r.demo_model ? " (DEMO)" : "");
    field(fields, "Time", when(r.created_at));
    field(fields, "Status", r.status + (r.reason ? ` - ${r.reason}: ${r.message}` : ""));
    if (r.bone_age_months !== null && r.bone_age_months !== undefined) {
      const i = r.bone_age_interval_months;
      field(fields, "Bone age", `${yearsMonths(r.bone_age_months)} (${r.bone_age_months.toFixed(1)} months)` +
            (i ? `, 90 % interval ${yearsMonths(i[0])} to ${yearsMonths(i[1])}` : ""));
    }
    field(fields, "Chronological age", yearsMonths(r.chronological_age_months));
    field(fields, "Sex", r.sex === "M" ? "male" : r.sex === "F" ? "female" : "");
    if (r.sds !== null && r.sds !== undefined) {
      const i = r.sds_interval;
      field(fields, "SDS (Greulich & Pyle)", signed(r.sds, 2) + (i ? ` (${signed(i[0], 1)} to ${signed(i[1], 1)})` : ""));
    } else if (r.sds_reason) {
      field(fields, "SDS", "not given: " + r.sds_reason);
    }
    field(fields, "Interpretation", null, flag(r));
    if (r.predicted_adult_height_cm) field(fields, "Predicted adult height", r.predicted_adult_height_cm.toFixed(1) + " cm");
    field(fields, "Model", r.model_version + (r.demo_model ? " - demonstration model, not for clinical use" : ""));
    if (r.warnings && r.warnings.length) field(fields, "Warnings", r.warnings.join("; "));
    $("detail-message").textContent = "";
    if (r.has_report) {
      const link = await api("/results/" + encodeURIComponent(uploadId) + "/report", "application/json");
      const img = $("report-image");
      img.alt = "Bone age report of " + (r.study_reference || "this study") + ", with the SDS chart";
      img.src = link.url;
      $("report-figure").hidden = false;
    } else {
      $("detail-message").textContent = "This result has no report image.";
    }
  } catch (e) {
    if (e.message !== "signed out") $("detail-message").textContent = "Could not load the result: " + e.message;
  }
}

function backToList() {
  show("list-view");
  startRefresh();
  loadList(false);
}

function startRefresh() {
  stopRefresh();
  if ($("auto-refresh").checked) refreshTimer = setInterval(() => loadList(false), REFRESH_MS);
}

function stopRefresh() {
  if (refreshTimer) clearInterval(refreshTimer);
  refreshTimer = null;
}

async function start() {
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); loadList(false); });
  $("more").addEventListener("click", () => loadList(true));
  $("back").addEventListener("click", backToList);
  $("auto-refresh").addEventListener("change", startRefresh);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("detail-view").hidden) backToList();
  });
  $("sign-out").addEventListener("click", () => { sessionStorage.removeItem("id_token"); stopRefresh(); signedOut(); });
  $("sign-in").addEventListener("click", signIn);
  try {
    await completeSignIn();
  } catch (e) {
    signedOut(e instanceof SignInError ? e.message : "Sign-in failed; please sign in again.");
    return;
  }
  const value = token();
  if (!value) { signedOut(); return; }
  const claims = decodeClaims(value) || {};
  $("hospital").textContent = "- " + (claims["custom:hospital_id"] || "");
  $("sign-out").hidden = false;
  show("list-view");
  startRefresh();
  loadList(false);
}

document.addEventListener("DOMContentLoaded", start);
