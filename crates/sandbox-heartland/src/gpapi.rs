//! GP-API under `/ucp`: access tokens, transactions and their follow-ups, stored payment methods,
//! batch close, and settlement reporting (transactions and deposits). Shapes, codes and statuses
//! follow reference §1–§3; where the reference marks an HTTP status UNCONFIRMED we use the
//! obvious one (401 auth, 400 data, 404 not found, 409 duplicate, 502 downstream) and say so in
//! README.md.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::Timestamp;
use rand::Rng;
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};

use crate::Error;
use crate::card::{self, CardInfo, Outcome};
use crate::state::{
    Action, Batch, BatchClose, Deposit, DepositView, Kind, Outgoing, Sandbox, State as St, Status,
    StoredCard, Txn, ts_ms,
};

const MAX_AMOUNT: i64 = 1_000_000_000_000;

pub(crate) const TRA_NAME: &str = "Transaction_Processing";
pub(crate) const DAA_NAME: &str = "Settlement Reporting";
pub(crate) const TKA_NAME: &str = "Tokenization";
pub(crate) const DIA_NAME: &str = "Dispute Management";

pub(crate) fn router() -> Router<Sandbox> {
    Router::new()
        .route("/ucp/accesstoken", post(access_token))
        .route(
            "/ucp/transactions",
            post(create_transaction).get(list_transactions),
        )
        .route("/ucp/transactions/{id}", get(get_transaction))
        .route("/ucp/transactions/{id}/{action}", post(follow_up))
        .route("/ucp/payment-methods", post(tokenize))
        .route(
            "/ucp/payment-methods/{id}",
            get(get_payment_method).delete(delete_payment_method),
        )
        .route("/ucp/batches/{id}", post(close_batch))
        .route("/ucp/settlement/transactions", get(settlement_transactions))
        .route("/ucp/settlement/deposits", get(list_deposits))
        .route("/ucp/settlement/deposits/{id}", get(get_deposit))
        .fallback(|| async {
            error_response(&Error::gp(
                404,
                "RESOURCE_NOT_FOUND",
                "40008",
                "Requested resource does not exist",
            ))
        })
}

// ---------------------------------------------------------------- wire helpers

pub(crate) fn error_response(e: &Error) -> Response {
    let (status, body) = match e {
        Error::GpApi {
            status,
            code,
            detailed,
            description,
        } => (
            *status,
            json!({"error_code": code, "detailed_error_code": detailed, "detailed_error_description": description}),
        ),
        Error::Invalid(m) => (
            400,
            json!({"error_code": "INVALID_REQUEST_DATA", "detailed_error_code": "40213", "detailed_error_description": m}),
        ),
        other => (
            500,
            json!({"error_code": "SYSTEM_ERROR", "detailed_error_code": "50000", "detailed_error_description": other.to_string()}),
        ),
    };
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(body)).into_response()
}

fn reply(r: Result<Value, Error>) -> Response {
    match r {
        // SDKs only treat 200/204 as success, so every success is a 200.
        Ok(v) => (StatusCode::OK, axum::Json(v)).into_response(),
        Err(e) => error_response(&e),
    }
}

/// Parses a body whatever its Content-Type (the SDKs send `Content-Type: charset=UTF-8`).
fn body_json(b: &Bytes) -> Result<Value, Error> {
    if b.iter().all(|c| c.is_ascii_whitespace()) {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_slice(b).map_err(|e| {
        Error::gp(
            400,
            "INVALID_REQUEST_DATA",
            "40043",
            format!("Request body is not valid JSON: {e}"),
        )
    })?;
    if !v.is_object() {
        return Err(Error::gp(
            400,
            "INVALID_REQUEST_DATA",
            "40043",
            "Request body must be a JSON object",
        ));
    }
    Ok(v)
}

pub(crate) fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect()
    })
    .unwrap_or_default()
}

/// First non-empty value of a query parameter (SDKs send empty values for unset filters).
fn q<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

fn missing(field: &str) -> Error {
    Error::gp(
        400,
        "MANDATORY_DATA_MISSING",
        "40005",
        format!("Request expects the following fields {field}"),
    )
}

fn str_field<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().filter(|s| !s.is_empty())
}

/// Minor-unit amount from `"1999"` or `1999`.
fn amount_field(v: &Value, key: &str) -> Result<Option<i64>, Error> {
    let bad = || {
        Error::gp(
            400,
            "INVALID_REQUEST_DATA",
            "40043",
            format!("Invalid value provided in the input field - {key}"),
        )
    };
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse::<i64>().map(Some).map_err(|_| bad()),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(bad),
        Some(_) => Err(bad()),
    }
    .and_then(|a| match a {
        // Bounded (10^12 minor units) so percentage and fee arithmetic cannot overflow.
        Some(a) if !(0..=MAX_AMOUNT).contains(&a) => Err(bad()),
        other => Ok(other),
    })
}

impl Sandbox {
    /// Checks `X-GP-Version` and the bearer token.
    fn gp_auth(&self, h: &HeaderMap) -> Result<(), Error> {
        self.gp_version(h)?;
        let token = h
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim().to_string());
        let invalid = || Error::gp(401, "NOT_AUTHENTICATED", "40001", "Invalid access token");
        let token = token.ok_or_else(invalid)?;
        let st = self.lock();
        match st.gp.tokens.get(&token) {
            Some(exp) if *exp > Timestamp::now() => Ok(()),
            _ => Err(invalid()),
        }
    }

    fn gp_version(&self, h: &HeaderMap) -> Result<(), Error> {
        if self.inner.cfg.require_gp_version && h.get("x-gp-version").is_none() {
            return Err(Error::gp(
                400,
                "MANDATORY_DATA_MISSING",
                "40005",
                "Request expects the following header X-GP-Version",
            ));
        }
        Ok(())
    }

    pub(crate) fn account_id(&self, prefix: &str) -> String {
        let h = Sha256::digest(format!("{}:{prefix}", self.inner.cfg.merchant_id).as_bytes());
        format!("{prefix}_{}", &hex::encode(h)[..32])
    }

    fn system(&self) -> Value {
        json!({"mid": "8800000001", "hierarchy": "000-00-000-001", "name": self.inner.cfg.merchant_name, "dba": "Heartsuite Demo Store"})
    }
}

// ---------------------------------------------------------------- access token

async fn access_token(State(sb): State<Sandbox>, h: HeaderMap, body: Bytes) -> Response {
    reply(
        sb.gp_version(&h)
            .and_then(|_| body_json(&body))
            .and_then(|b| sb.issue_token(&b)),
    )
}

impl Sandbox {
    pub(crate) fn issue_token(&self, b: &Value) -> Result<Value, Error> {
        let cfg = &self.inner.cfg;
        let app_id = str_field(b, &["app_id"]).ok_or_else(|| missing("app_id"))?;
        let nonce = str_field(b, &["nonce"]).ok_or_else(|| missing("nonce"))?;
        let secret = str_field(b, &["secret"]).ok_or_else(|| missing("secret"))?;
        let grant = str_field(b, &["grant_type"]).ok_or_else(|| missing("grant_type"))?;
        if grant != "client_credentials" {
            return Err(Error::gp(
                400,
                "INVALID_REQUEST_DATA",
                "40213",
                "grant_type must be client_credentials",
            ));
        }
        let expected = hex::encode(Sha512::digest(format!("{nonce}{}", cfg.app_key).as_bytes()));
        if app_id != cfg.app_id || !secret.eq_ignore_ascii_case(&expected) {
            return Err(Error::gp(
                403,
                "ACTION_NOT_AUTHORIZED",
                "40004",
                "Credentials not recognized to create access token.",
            ));
        }
        let ttl = match (
            b.get("seconds_to_expire"),
            str_field(b, &["interval_to_expire"]),
        ) {
            (Some(v), _) if !v.is_null() => {
                let s = v
                    .as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()));
                match s {
                    Some(s) if (60..=604_800).contains(&s) => s,
                    _ => {
                        return Err(Error::gp(
                            400,
                            "INVALID_REQUEST_DATA",
                            "40213",
                            "Invalid value provided in the input field - seconds_to_expire",
                        ));
                    }
                }
            }
            (_, Some(iv)) => match iv {
                "5_MINUTES" => 300,
                "10_MINUTES" => 600,
                "30_MINUTES" => 1800,
                "1_HOUR" => 3600,
                "3_HOURS" => 10_800,
                "6_HOURS" => 21_600,
                "12_HOURS" => 43_200,
                "DAY" => 86_400,
                "WEEK" => 604_800,
                _ => {
                    return Err(Error::gp(
                        400,
                        "INVALID_REQUEST_DATA",
                        "40213",
                        "Invalid value provided in the input field - interval_to_expire",
                    ));
                }
            },
            _ => cfg.token_ttl_secs,
        };
        let now = Timestamp::now();
        // Tokens are bearer secrets: random, not derived from the (public) seed.
        let token: String = {
            let mut rng = rand::rng();
            (0..28)
                .map(|_| {
                    char::from(
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                            [rng.random_range(0..62)],
                    )
                })
                .collect()
        };
        let exp = now
            .checked_add(jiff::SignedDuration::from_secs(ttl))
            .unwrap_or(now);
        self.lock().gp.tokens.insert(token.clone(), exp);
        Ok(json!({
            "token": token,
            "type": "Bearer",
            "app_id": cfg.app_id,
            "app_name": "heartsuite-sandbox",
            "time_created": ts_ms(now),
            "seconds_to_expire": ttl,
            "email": "sandbox@heartsuite.invalid",
            "scope": {
                "merchant_id": cfg.merchant_id,
                "merchant_name": cfg.merchant_name,
                "accounts": [
                    {"id": self.account_id("TRA"), "name": TRA_NAME},
                    {"id": self.account_id("DAA"), "name": DAA_NAME},
                    {"id": self.account_id("TKA"), "name": TKA_NAME},
                    {"id": self.account_id("DIA"), "name": DIA_NAME},
                ]
            }
        }))
    }
}

// ---------------------------------------------------------------- transactions

/// Where the card comes from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Card {
        card: CardInfo,
        exp_month: String,
        exp_year: String,
    },
    Token(String),
}

/// A parsed `POST /transactions`; the generator builds these directly.
#[derive(Debug, Clone)]
pub(crate) struct NewTxn {
    pub kind: Kind,
    pub capture_mode: String,
    pub amount: i64,
    pub currency: String,
    pub country: String,
    pub channel: String,
    pub reference: Option<String>,
    pub description: Option<String>,
    pub order_reference: Option<String>,
    pub entry_mode: String,
    pub name: Option<String>,
    pub funding: String,
    pub source: Source,
    pub store: bool,
    pub status_url: Option<String>,
    pub account: Option<(Option<String>, Option<String>)>,
}

impl NewTxn {
    /// A card sale as the generator issues it; the PAN is reduced at once.
    pub(crate) fn card_sale(
        number: &str,
        amount: i64,
        currency: &str,
        capture_later: bool,
        card_present: bool,
    ) -> Result<Self, Error> {
        let card = card::inspect(number).map_err(|m| Error::Invalid(m.to_string()))?;
        Ok(NewTxn {
            kind: Kind::Sale,
            capture_mode: if capture_later { "LATER" } else { "AUTO" }.into(),
            amount,
            currency: currency.into(),
            country: if currency == "CAD" { "CA" } else { "US" }.into(),
            channel: if card_present { "CP" } else { "CNP" }.into(),
            reference: None,
            description: None,
            order_reference: None,
            entry_mode: if card_present { "CHIP" } else { "ECOM" }.into(),
            name: None,
            funding: "CREDIT".into(),
            source: Source::Card {
                card,
                exp_month: "12".into(),
                exp_year: "30".into(),
            },
            store: false,
            status_url: None,
            account: None,
        })
    }
}

fn parse_new_txn(b: &Value) -> Result<NewTxn, Error> {
    let kind = match str_field(b, &["type"]) {
        Some("SALE") => Kind::Sale,
        Some("REFUND") => Kind::Refund,
        Some(other) => {
            return Err(Error::gp(
                400,
                "INVALID_REQUEST_DATA",
                "40213",
                format!("Invalid value provided in the input field - type: {other}"),
            ));
        }
        None => return Err(missing("type")),
    };
    let amount = amount_field(b, "amount")?.ok_or_else(|| missing("amount"))?;
    if amount == 0 {
        return Err(Error::gp(
            400,
            "INVALID_REQUEST_DATA",
            "40043",
            "Invalid value provided in the input field - amount",
        ));
    }
    let currency = str_field(b, &["currency"]).ok_or_else(|| missing("currency"))?;
    heartsuite_core::money::parse_currency(currency).map_err(|_| {
        Error::gp(
            400,
            "INVALID_REQUEST_DATA",
            "40213",
            format!("Invalid value provided in the input field - currency: {currency}"),
        )
    })?;
    let capture_mode = str_field(b, &["capture_mode"])
        .unwrap_or("AUTO")
        .to_string();
    if !matches!(capture_mode.as_str(), "AUTO" | "LATER" | "MULTIPLE") {
        return Err(Error::gp(
            400,
            "INVALID_REQUEST_DATA",
            "40213",
            "Invalid value provided in the input field - capture_mode",
        ));
    }
    let pm = b
        .get("payment_method")
        .filter(|v| v.is_object())
        .ok_or_else(|| missing("payment_method"))?;
    let source = if let Some(id) = str_field(pm, &["id"]) {
        Source::Token(id.to_string())
    } else {
        let number = str_field(pm, &["card", "number"])
            .ok_or_else(|| missing("payment_method.card.number"))?;
        let card = card::inspect(number)
            .map_err(|m| Error::gp(400, "INVALID_REQUEST_DATA", "40085", m))?;
        Source::Card {
            card,
            exp_month: str_field(pm, &["card", "expiry_month"])
                .unwrap_or("")
                .to_string(),
            exp_year: str_field(pm, &["card", "expiry_year"])
                .unwrap_or("")
                .to_string(),
        }
    };
    let channel = str_field(b, &["channel"]).unwrap_or("CNP").to_string();
    Ok(NewTxn {
        kind,
        capture_mode,
        amount,
        currency: currency.to_ascii_uppercase(),
        country: str_field(b, &["country"]).unwrap_or("US").to_string(),
        entry_mode: str_field(pm, &["entry_mode"])
            .unwrap_or(if channel == "CP" { "CHIP" } else { "ECOM" })
            .to_string(),
        channel,
        reference: str_field(b, &["reference"]).map(str::to_string),
        description: str_field(b, &["description"]).map(str::to_string),
        order_reference: str_field(b, &["order", "reference"]).map(str::to_string),
        name: str_field(pm, &["name"]).map(str::to_string),
        funding: str_field(pm, &["card", "funding"])
            .unwrap_or("CREDIT")
            .to_string(),
        source,
        store: str_field(pm, &["storage_mode"]) == Some("ON_SUCCESS"),
        status_url: str_field(b, &["notifications", "status_url"]).map(str::to_string),
        account: Some((
            str_field(b, &["account_id"]).map(str::to_string),
            str_field(b, &["account_name"]).map(str::to_string),
        )),
    })
}

fn idem_key(h: &HeaderMap) -> Option<String> {
    h.get("x-gp-idempotency")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

async fn create_transaction(State(sb): State<Sandbox>, h: HeaderMap, body: Bytes) -> Response {
    reply((|| {
        sb.gp_auth(&h)?;
        let req = parse_new_txn(&body_json(&body)?)?;
        sb.create_txn(req, idem_key(&h).as_deref(), Timestamp::now())
    })())
}

async fn follow_up(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    reply((|| {
        sb.gp_auth(&h)?;
        let b = body_json(&body)?;
        let amount = amount_field(&b, "amount")?;
        let key = idem_key(&h);
        let now = Timestamp::now();
        match action.as_str() {
            "capture" => sb.capture(&id, amount, key.as_deref(), now),
            "refund" => sb.refund(&id, amount, key.as_deref(), now),
            "reversal" => sb.reverse(&id, amount, key.as_deref(), now),
            _ => Err(Error::gp(
                404,
                "RESOURCE_NOT_FOUND",
                "40008",
                format!("Requested action {action} does not exist"),
            )),
        }
    })())
}

async fn get_transaction(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    reply((|| {
        sb.gp_auth(&h)?;
        // py 2.0.8 asks for `/transactions/TRN_x?`; tolerate an encoded `?` too.
        let id = id.trim_end_matches('?');
        let st = sb.lock();
        let t = find_txn(&st, id)?;
        Ok(sb.txn_json(&st, t, false))
    })())
}

fn not_found_txn(id: &str) -> Error {
    Error::gp(
        404,
        "RESOURCE_NOT_FOUND",
        "40118",
        format!("Transactions {id} not found at this /ucp/transactions/{id}"),
    )
}

fn find_txn<'a>(st: &'a St, id: &str) -> Result<&'a Txn, Error> {
    st.gp
        .txn_by_id
        .get(id)
        .and_then(|i| st.gp.txns.get(*i))
        .ok_or_else(|| not_found_txn(id))
}

fn check_idem(st: &St, key: Option<&str>) -> Result<(), Error> {
    if let Some(id) = key.and_then(|k| st.gp.idem.get(k)) {
        return Err(Error::gp(
            409,
            "DUPLICATE_ACTION",
            "40039",
            format!("Idempotency Key seen before: id={id}"),
        ));
    }
    Ok(())
}

/// Short deterministic codes derived from an id (authcode, brand reference, ARN).
fn derived(id: &str, salt: &str, len: usize, digits_only: bool) -> String {
    let h = Sha256::digest(format!("{id}:{salt}").as_bytes());
    let alphabet: &[u8] = if digits_only {
        b"0123456789"
    } else {
        b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    };
    h.iter()
        .cycle()
        .take(len)
        .map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()]))
        .collect()
}

impl Sandbox {
    fn open_batch(&self, st: &mut St, currency: &str) -> String {
        if let Some(id) = st.gp.open_batch.get(currency) {
            return id.clone();
        }
        let id = st.id(self.inner.cfg.seed, "BAT");
        st.gp.batch_by_id.insert(id.clone(), st.gp.batches.len());
        st.gp.batches.push(Batch {
            id: id.clone(),
            currency: currency.into(),
            closed_at: None,
            txn_ids: vec![],
            deposit_id: None,
        });
        st.gp.open_batch.insert(currency.into(), id.clone());
        id
    }

    fn add_to_batch(&self, st: &mut St, idx: usize) {
        let currency = st.gp.txns[idx].currency.clone();
        let bid = self.open_batch(st, &currency);
        let tid = st.gp.txns[idx].id.clone();
        if let Some(b) = st
            .gp
            .batch_by_id
            .get(&bid)
            .copied()
            .and_then(|i| st.gp.batches.get_mut(i))
        {
            b.txn_ids.push(tid);
        }
        st.gp.txns[idx].batch_id = bid;
    }

    fn action(&self, st: &mut St, kind: &'static str, at: Timestamp, ok: bool) -> Action {
        Action {
            id: st.id(self.inner.cfg.seed, "ACT"),
            kind,
            time_created: at,
            result_code: if ok { "SUCCESS" } else { "DECLINED" },
        }
    }

    /// Sends the `status_url` notification for a transaction, signed like GP-API does.
    fn notify(&self, st: &mut St, idx: usize) {
        let Some(t) = st.gp.txns.get(idx) else { return };
        let Some(url) = t.status_url.clone() else {
            return;
        };
        let body = json!({
            "id": t.id, "status": t.status.as_str(), "type": t.kind.as_str(), "amount": t.amount.to_string(),
            "currency": t.currency, "reference": t.reference, "time_created": ts_ms(t.action.time_created),
        });
        // Minified bytes, signed exactly as sent.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut signed = bytes.clone();
        signed.extend_from_slice(self.inner.cfg.app_key.as_bytes());
        let sig = hex::encode(Sha512::digest(&signed));
        let out = Outgoing {
            event: "status_url".into(),
            url,
            body: bytes,
            headers: vec![
                ("content-type", "application/json".into()),
                ("x-gp-signature", sig),
            ],
        };
        self.send(st, out);
    }

    pub(crate) fn create_txn(
        &self,
        req: NewTxn,
        idem: Option<&str>,
        at: Timestamp,
    ) -> Result<Value, Error> {
        let mut st = self.lock();
        let idx = self.create_txn_locked(&mut st, req, idem, at)?;
        Ok(self.txn_json(&st, &st.gp.txns[idx], false))
    }

    pub(crate) fn create_txn_locked(
        &self,
        st: &mut St,
        req: NewTxn,
        idem: Option<&str>,
        at: Timestamp,
    ) -> Result<usize, Error> {
        check_idem(st, idem)?;
        if let Some((acc_id, acc_name)) = &req.account {
            let id_ok = acc_id
                .as_deref()
                .is_none_or(|i| i == self.account_id("TRA"));
            let name_ok = acc_name.as_deref().is_none_or(|n| n == TRA_NAME);
            if !id_ok || !name_ok {
                return Err(Error::gp(
                    403,
                    "ACTION_NOT_AUTHORIZED",
                    "40004",
                    "Merchant configuration does not exist for the account provided",
                ));
            }
        }
        let (card, token_id) = match &req.source {
            Source::Card { card, .. } => (card.clone(), None),
            Source::Token(id) => match st.gp.pmts.get(id) {
                Some(p) if p.active => (p.card.clone(), Some(id.clone())),
                _ => {
                    return Err(Error::gp(
                        404,
                        "RESOURCE_NOT_FOUND",
                        "40116",
                        format!("payment_method {id} not found at this /ucp/payment-methods/{id}"),
                    ));
                }
            },
        };
        if card.outcome == Outcome::CommError {
            return Err(Error::gp(
                502,
                "SYSTEM_ERROR_DOWNSTREAM",
                "50018",
                "The downstream system (issuer) did not respond",
            ));
        }
        let seed = self.inner.cfg.seed;
        let id = st.id(seed, "TRN");
        let approved = card.outcome == Outcome::Approve;
        let result = match card.outcome {
            Outcome::Decline(code) => code,
            _ => "00",
        };
        let status = match (approved, req.kind, req.capture_mode.as_str()) {
            (false, _, _) => Status::Declined,
            (true, Kind::Sale, "AUTO") | (true, Kind::Refund, _) => Status::Captured,
            (true, Kind::Sale, _) => Status::Preauthorized,
        };
        let action_kind = match (req.kind, status) {
            (Kind::Refund, _) => "REFUND",
            (_, Status::Preauthorized) => "PREAUTHORIZE",
            _ => "AUTHORIZE",
        };
        let action = self.action(st, action_kind, at, approved);
        let mut token_id = token_id;
        if approved
            && req.store
            && token_id.is_none()
            && let Source::Card {
                card,
                exp_month,
                exp_year,
            } = &req.source
        {
            let pid = st.id(seed, "PMT");
            st.gp.pmts.insert(
                pid.clone(),
                StoredCard {
                    id: pid.clone(),
                    time_created: at,
                    card: card.clone(),
                    exp_month: exp_month.clone(),
                    exp_year: exp_year.clone(),
                    name: req.name.clone(),
                    reference: id.clone(),
                    active: true,
                },
            );
            token_id = Some(pid);
        }
        let reference = match req.reference {
            Some(r) => r,
            None => derived(&id, "ref", 12, false),
        };
        let txn = Txn {
            authcode: if approved {
                derived(&id, "auth", 6, false)
            } else {
                String::new()
            },
            brand_reference: derived(&id, "bref", 15, false),
            arn: derived(&id, "arn", 23, true),
            id: id.clone(),
            time_created: at,
            kind: req.kind,
            status,
            channel: req.channel,
            capture_mode: req.capture_mode,
            amount: req.amount,
            authorized: req.amount,
            refunded: 0,
            currency: req.currency,
            country: req.country,
            reference,
            description: req.description,
            order_reference: req.order_reference,
            entry_mode: req.entry_mode,
            cardholder: req.name,
            card,
            funding: req.funding,
            token_id,
            result: result.to_string(),
            action,
            batch_id: String::new(),
            deposit_id: None,
            parent_id: None,
            status_url: req.status_url,
            chargeback: false,
        };
        let idx = st.gp.txns.len();
        st.gp.txn_by_id.insert(id.clone(), idx);
        st.gp.txns.push(txn);
        if status == Status::Captured {
            self.add_to_batch(st, idx);
        }
        if let Some(k) = idem {
            st.gp.idem.insert(k.to_string(), id);
        }
        self.notify(st, idx);
        Ok(idx)
    }

    pub(crate) fn capture(
        &self,
        id: &str,
        amount: Option<i64>,
        idem: Option<&str>,
        at: Timestamp,
    ) -> Result<Value, Error> {
        let mut st = self.lock();
        let idx = self.capture_locked(&mut st, id, amount, idem, at)?;
        Ok(self.txn_json(&st, &st.gp.txns[idx], false))
    }

    pub(crate) fn capture_locked(
        &self,
        st: &mut St,
        id: &str,
        amount: Option<i64>,
        idem: Option<&str>,
        at: Timestamp,
    ) -> Result<usize, Error> {
        check_idem(st, idem)?;
        let idx = *st.gp.txn_by_id.get(id).ok_or_else(|| not_found_txn(id))?;
        let t = &st.gp.txns[idx];
        if t.status != Status::Preauthorized {
            return Err(Error::gp(
                400,
                "INVALID_REQUEST_DATA",
                "40090",
                format!(
                    "{id} has status {} and cannot be captured",
                    t.status.as_str()
                ),
            ));
        }
        if t.capture_mode == "MULTIPLE" {
            return self.capture_part_locked(st, idx, amount, idem, at);
        }
        let amount = amount.unwrap_or(t.authorized);
        // GP-API allows capturing up to 115% of the authorization (tips).
        if amount == 0 || amount * 100 > t.authorized * 115 {
            return Err(Error::gp(
                400,
                "INVALID_REQUEST_DATA",
                "50020",
                "Capture amount exceeds 115% of the authorized amount",
            ));
        }
        let action = self.action(st, "CAPTURE", at, true);
        let t = &mut st.gp.txns[idx];
        t.amount = amount;
        t.status = Status::Captured;
        t.action = action;
        self.add_to_batch(st, idx);
        if let Some(k) = idem {
            st.gp.idem.insert(k.to_string(), id.to_string());
        }
        self.notify(st, idx);
        Ok(idx)
    }

    /// One capture of a `capture_mode: MULTIPLE` authorization (a shipment of part of an
    /// order): its own `CAPTURED` transaction whose parent is the authorization, which stays
    /// `PREAUTHORIZED` for the rest. The captures together may not exceed the authorized amount
    /// (no tip allowance). UNCONFIRMED against the live GP-API: the SDKs only show that
    /// `MULTIPLE` exists; one transaction per capture is how each shipment settles on its own.
    fn capture_part_locked(
        &self,
        st: &mut St,
        pidx: usize,
        amount: Option<i64>,
        idem: Option<&str>,
        at: Timestamp,
    ) -> Result<usize, Error> {
        let p = &st.gp.txns[pidx];
        let captured: i64 = st
            .gp
            .txns
            .iter()
            .filter(|c| c.kind == Kind::Sale && c.parent_id.as_deref() == Some(p.id.as_str()))
            .map(|c| c.amount)
            .sum();
        let left = p.authorized - captured;
        let amount = amount.unwrap_or(left);
        if amount <= 0 || amount > left {
            return Err(Error::gp(
                400,
                "INVALID_REQUEST_DATA",
                "50020",
                format!(
                    "Capture amount {amount} exceeds the {left} left of the authorization {}",
                    p.id
                ),
            ));
        }
        let cid = st.id(self.inner.cfg.seed, "TRN");
        let action = self.action(st, "CAPTURE", at, true);
        let p = &st.gp.txns[pidx];
        let txn = Txn {
            id: cid.clone(),
            time_created: at,
            status: Status::Captured,
            amount,
            authorized: amount,
            refunded: 0,
            arn: derived(&cid, "arn", 23, true),
            action,
            batch_id: String::new(),
            deposit_id: None,
            parent_id: Some(p.id.clone()),
            chargeback: false,
            ..p.clone()
        };
        let idx = st.gp.txns.len();
        st.gp.txn_by_id.insert(cid.clone(), idx);
        st.gp.txns.push(txn);
        self.add_to_batch(st, idx);
        if let Some(k) = idem {
            st.gp.idem.insert(k.to_string(), cid);
        }
        self.notify(st, idx);
        Ok(idx)
    }

    pub(crate) fn refund(
        &self,
        id: &str,
        amount: Option<i64>,
        idem: Option<&str>,
        at: Timestamp,
    ) -> Result<Value, Error> {
        let mut st = self.lock();
        let idx = self.refund_locked(&mut st, id, amount, idem, at)?;
        Ok(self.txn_json(&st, &st.gp.txns[idx], false))
    }

    /// A linked refund: a new `REFUND` transaction, limited to what was captured and not yet refunded.
    pub(crate) fn refund_locked(
        &self,
        st: &mut St,
        id: &str,
        amount: Option<i64>,
        idem: Option<&str>,
        at: Timestamp,
    ) -> Result<usize, Error> {
        check_idem(st, idem)?;
        let pidx = *st.gp.txn_by_id.get(id).ok_or_else(|| not_found_txn(id))?;
        let p = &st.gp.txns[pidx];
        if p.kind != Kind::Sale
            || !matches!(
                p.status,
                Status::Captured | Status::Batched | Status::Funded
            )
        {
            return Err(Error::gp(
                400,
                "INVALID_REQUEST_DATA",
                "40090",
                format!(
                    "{id} has status {} and cannot be refunded",
                    p.status.as_str()
                ),
            ));
        }
        let remaining = p.amount - p.refunded;
        let amount = amount.unwrap_or(remaining);
        if amount == 0 || amount > remaining {
            return Err(Error::gp(
                400,
                "INVALID_REQUEST_DATA",
                "40087",
                "You may only refund up to 100% of the original amount",
            ));
        }
        let seed = self.inner.cfg.seed;
        let rid = st.id(seed, "TRN");
        let action = self.action(st, "REFUND", at, true);
        let p = &st.gp.txns[pidx];
        let txn = Txn {
            id: rid.clone(),
            time_created: at,
            kind: Kind::Refund,
            status: Status::Captured,
            amount,
            authorized: amount,
            refunded: 0,
            reference: derived(&rid, "ref", 12, false),
            authcode: derived(&rid, "auth", 6, false),
            brand_reference: derived(&rid, "bref", 15, false),
            arn: derived(&rid, "arn", 23, true),
            result: "00".into(),
            action,
            batch_id: String::new(),
            deposit_id: None,
            parent_id: Some(p.id.clone()),
            chargeback: false,
            ..p.clone()
        };
        st.gp.txns[pidx].refunded += amount;
        let idx = st.gp.txns.len();
        st.gp.txn_by_id.insert(rid.clone(), idx);
        st.gp.txns.push(txn);
        self.add_to_batch(st, idx);
        if let Some(k) = idem {
            st.gp.idem.insert(k.to_string(), rid);
        }
        self.notify(st, idx);
        Ok(idx)
    }

    pub(crate) fn reverse(
        &self,
        id: &str,
        amount: Option<i64>,
        idem: Option<&str>,
        at: Timestamp,
    ) -> Result<Value, Error> {
        let mut st = self.lock();
        let idx = self.reverse_locked(&mut st, id, amount, idem, at)?;
        Ok(self.txn_json(&st, &st.gp.txns[idx], false))
    }

    /// Voids an authorization or an unbatched capture; only in full.
    pub(crate) fn reverse_locked(
        &self,
        st: &mut St,
        id: &str,
        amount: Option<i64>,
        idem: Option<&str>,
        at: Timestamp,
    ) -> Result<usize, Error> {
        check_idem(st, idem)?;
        let idx = *st.gp.txn_by_id.get(id).ok_or_else(|| not_found_txn(id))?;
        let t = &st.gp.txns[idx];
        if !matches!(t.status, Status::Preauthorized | Status::Captured) {
            return Err(Error::gp(
                400,
                "INVALID_REQUEST_DATA",
                "40090",
                format!(
                    "{id} has status {} and cannot be reversed",
                    t.status.as_str()
                ),
            ));
        }
        if t.refunded > 0 {
            return Err(Error::gp(
                400,
                "INVALID_REQUEST_DATA",
                "40090",
                format!("{id} has refunds and cannot be reversed"),
            ));
        }
        if amount.is_some_and(|a| a != t.amount) {
            return Err(Error::gp(
                400,
                "INVALID_REQUEST_DATA",
                "40214",
                "Partial reversal is not supported",
            ));
        }
        let (batch_id, parent) = (t.batch_id.clone(), t.parent_id.clone());
        let amt = t.amount;
        let action = self.action(st, "REVERSAL", at, true);
        if let Some(b) = st
            .gp
            .batch_by_id
            .get(&batch_id)
            .copied()
            .and_then(|i| st.gp.batches.get_mut(i))
        {
            b.txn_ids.retain(|x| x != id);
        }
        // Reversing a refund gives the amount back to the parent's refundable balance.
        if let Some(pidx) = parent.and_then(|p| st.gp.txn_by_id.get(&p).copied()) {
            st.gp.txns[pidx].refunded -= amt;
        }
        let t = &mut st.gp.txns[idx];
        t.status = Status::Reversed;
        t.batch_id = String::new();
        t.action = action;
        if let Some(k) = idem {
            st.gp.idem.insert(k.to_string(), id.to_string());
        }
        self.notify(st, idx);
        Ok(idx)
    }

    /// A transaction as GP-API renders it; `settlement` adds the settlement-report fields.
    pub(crate) fn txn_json(&self, st: &St, t: &Txn, settlement: bool) -> Value {
        let cfg = &self.inner.cfg;
        let mut card = json!({
            "brand": t.card.brand,
            "masked_number_last4": t.card.masked_last4(),
            "authcode": t.authcode,
            "brand_reference": t.brand_reference,
            "funding": t.funding,
            "cvv_result": "MATCHED",
            "avs_address_result": "MATCHED",
            "avs_postal_code_result": "MATCHED",
            "avs_action": "",
        });
        let mut pm = json!({
            "result": t.result,
            "message": card::result_message(&t.result),
            "entry_mode": t.entry_mode,
            "name": t.cardholder.clone().unwrap_or_default(),
        });
        if let Some(tok) = &t.token_id {
            pm["id"] = json!(tok);
        }
        let mut v = json!({
            "id": t.id,
            "time_created": ts_ms(t.time_created),
            "type": t.kind.as_str(),
            "status": t.status.as_str(),
            "channel": t.channel,
            "capture_mode": t.capture_mode,
            "amount": t.amount.to_string(),
            "currency": t.currency,
            "country": t.country,
            "merchant_id": cfg.merchant_id,
            "merchant_name": cfg.merchant_name,
            "account_id": self.account_id("TRA"),
            "account_name": TRA_NAME,
            "reference": t.reference,
            "batch_id": t.batch_id,
        });
        if let Some(d) = &t.description {
            v["description"] = json!(d);
        }
        if let Some(o) = &t.order_reference {
            v["order"] = json!({"reference": o});
            v["order_reference"] = json!(o);
        }
        if let Some(p) = &t.parent_id {
            v["parent_resource_id"] = json!(p);
        }
        if settlement {
            card["arn"] = json!(t.arn);
            card["masked_number_first6last4"] = json!(t.card.masked_first6last4());
            let batch = st
                .gp
                .batch_by_id
                .get(&t.batch_id)
                .and_then(|i| st.gp.batches.get(*i));
            v["batch_time_created"] = json!(
                batch
                    .and_then(|b| b.closed_at)
                    .map(ts_ms)
                    .unwrap_or_default()
            );
            let dep = t
                .deposit_id
                .as_ref()
                .and_then(|d| st.gp.deposit_by_id.get(d))
                .and_then(|i| st.gp.deposits.get(*i));
            v["deposit_id"] = json!(dep.map(|d| d.id.clone()).unwrap_or_default());
            v["deposit_status"] = json!(dep.map(|d| d.status).unwrap_or(""));
            v["deposit_time_created"] = json!(dep.map(|d| d.date.to_string()).unwrap_or_default());
            v["deposit_amount"] = json!(dep.map(|d| d.net.abs().to_string()).unwrap_or_default());
            v["system"] = self.system();
            v["account_id"] = json!(self.account_id("DAA"));
            v["account_name"] = json!(DAA_NAME);
        }
        pm["card"] = card;
        v["payment_method"] = pm;
        v["action"] = json!({
            "id": t.action.id,
            "type": t.action.kind,
            "time_created": ts_ms(t.action.time_created),
            "result_code": t.action.result_code,
            "app_id": cfg.app_id,
            "app_name": "heartsuite-sandbox",
        });
        v
    }
}

// ---------------------------------------------------------------- lists

struct Paging {
    page: usize,
    page_size: usize,
    order: String,
    order_by: String,
}

fn paging(p: &[(String, String)], default_order_by: &str) -> Result<Paging, Error> {
    let num = |k: &str, d: usize| -> Result<usize, Error> {
        match q(p, k) {
            None => Ok(d),
            Some(s) => s.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                Error::gp(
                    400,
                    "INVALID_REQUEST_DATA",
                    "40213",
                    format!("Invalid value provided in the input field - {k}"),
                )
            }),
        }
    };
    let page_size = num("page_size", 5)?;
    if page_size > 1000 {
        return Err(Error::gp(
            400,
            "INVALID_REQUEST_DATA",
            "40213",
            "page_size must not exceed 1000",
        ));
    }
    let order = q(p, "order").unwrap_or("DESC").to_ascii_uppercase();
    if order != "ASC" && order != "DESC" {
        return Err(Error::gp(
            400,
            "INVALID_REQUEST_DATA",
            "40213",
            "order must be ASC or DESC",
        ));
    }
    Ok(Paging {
        page: num("page", 1)?,
        page_size,
        order,
        order_by: q(p, "order_by")
            .unwrap_or(default_order_by)
            .to_ascii_uppercase(),
    })
}

fn page_of<T>(items: Vec<T>, pg: &Paging) -> Vec<T> {
    items
        .into_iter()
        .skip((pg.page - 1).saturating_mul(pg.page_size))
        .take(pg.page_size)
        .collect()
}

fn parse_date(s: &str, key: &str) -> Result<jiff::civil::Date, Error> {
    s.get(..10).and_then(|d| d.parse().ok()).ok_or_else(|| {
        Error::gp(
            400,
            "INVALID_REQUEST_DATA",
            "40213",
            format!("Invalid value provided in the input field - {key}"),
        )
    })
}

fn utc_date(t: Timestamp) -> jiff::civil::Date {
    t.to_zoned_datetime(jiff::tz::TimeZone::UTC).date()
}

fn in_range(
    d: Option<jiff::civil::Date>,
    p: &[(String, String)],
    from: &str,
    to: &str,
) -> Result<bool, Error> {
    if let Some(f) = q(p, from) {
        let f = parse_date(f, from)?;
        if d.is_none_or(|d| d < f) {
            return Ok(false);
        }
    }
    if let Some(t) = q(p, to) {
        let t = parse_date(t, to)?;
        if d.is_none_or(|d| d > t) {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn list_transactions(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    reply(
        sb.gp_auth(&h)
            .and_then(|_| sb.list_txns(&query_pairs(raw.as_deref()), false)),
    )
}

async fn settlement_transactions(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    reply(
        sb.gp_auth(&h)
            .and_then(|_| sb.list_txns(&query_pairs(raw.as_deref()), true)),
    )
}

impl Sandbox {
    fn list_txns(&self, p: &[(String, String)], settlement: bool) -> Result<Value, Error> {
        let pg = paging(p, "TIME_CREATED")?;
        let st = self.lock();
        let mut hits: Vec<&Txn> = Vec::new();
        for t in &st.gp.txns {
            if settlement && !matches!(t.status, Status::Batched | Status::Funded) {
                continue;
            }
            let eq = |k: &str, v: &str| q(p, k).is_none_or(|f| f.eq_ignore_ascii_case(v));
            let dep = t
                .deposit_id
                .as_ref()
                .and_then(|d| st.gp.deposit_by_id.get(d))
                .and_then(|i| st.gp.deposits.get(*i));
            let batch = st
                .gp
                .batch_by_id
                .get(&t.batch_id)
                .and_then(|i| st.gp.batches.get(*i));
            let ok = eq("id", &t.id)
                && eq("type", t.kind.as_str())
                && eq("channel", &t.channel)
                && eq("amount", &t.amount.to_string())
                && eq("currency", &t.currency)
                && eq("status", t.status.as_str())
                && eq("reference", &t.reference)
                && eq("batch_id", &t.batch_id)
                && eq("brand", &t.card.brand)
                && eq("number_last4", &t.card.last4)
                && eq("authcode", &t.authcode)
                && eq("entry_mode", &t.entry_mode)
                && eq("brand_reference", &t.brand_reference)
                && eq("deposit_id", dep.map(|d| d.id.as_str()).unwrap_or(""))
                && eq("deposit_status", dep.map(|d| d.status).unwrap_or(""))
                && eq("arn", if settlement { &t.arn } else { "" })
                && in_range(
                    Some(utc_date(t.time_created)),
                    p,
                    "from_time_created",
                    "to_time_created",
                )?
                && in_range(
                    dep.map(|d| d.date),
                    p,
                    "from_deposit_time_created",
                    "to_deposit_time_created",
                )?
                && in_range(
                    batch.and_then(|b| b.closed_at).map(utc_date),
                    p,
                    "from_batch_time_created",
                    "to_batch_time_created",
                )?;
            if ok {
                hits.push(t);
            }
        }
        match pg.order_by.as_str() {
            "STATUS" => hits.sort_by(|a, b| {
                a.status
                    .as_str()
                    .cmp(b.status.as_str())
                    .then(a.time_created.cmp(&b.time_created))
            }),
            "TYPE" => hits.sort_by(|a, b| {
                a.kind
                    .as_str()
                    .cmp(b.kind.as_str())
                    .then(a.time_created.cmp(&b.time_created))
            }),
            "ID" => hits.sort_by(|a, b| a.id.cmp(&b.id)),
            "DEPOSIT_ID" => hits.sort_by(|a, b| {
                a.deposit_id
                    .cmp(&b.deposit_id)
                    .then(a.time_created.cmp(&b.time_created))
            }),
            // Stable sort on creation order keeps equal timestamps in insertion order.
            _ => hits.sort_by_key(|t| t.time_created),
        }
        if pg.order == "DESC" {
            hits.reverse();
        }
        let total = hits.len();
        let items: Vec<Value> = page_of(hits, &pg)
            .into_iter()
            .map(|t| self.txn_json(&st, t, settlement))
            .collect();
        let (acc_id, acc_name) = if settlement {
            (self.account_id("DAA"), DAA_NAME)
        } else {
            (self.account_id("TRA"), TRA_NAME)
        };
        Ok(json!({
            "merchant_id": self.inner.cfg.merchant_id,
            "merchant_name": self.inner.cfg.merchant_name,
            "account_id": acc_id,
            "account_name": acc_name,
            "total_record_count": total,
            "current_page_size": items.len(),
            "paging": {"page": pg.page, "page_size": pg.page_size, "order": pg.order, "order_by": pg.order_by},
            "transactions": items,
        }))
    }
}

// ---------------------------------------------------------------- payment methods

async fn tokenize(State(sb): State<Sandbox>, h: HeaderMap, body: Bytes) -> Response {
    reply((|| {
        sb.gp_auth(&h)?;
        let b = body_json(&body)?;
        let number = str_field(&b, &["card", "number"]).ok_or_else(|| missing("card.number"))?;
        let card = card::inspect(number)
            .map_err(|m| Error::gp(400, "INVALID_REQUEST_DATA", "40085", m))?;
        let mut st = sb.lock();
        let idem = idem_key(&h);
        check_idem(&st, idem.as_deref())?;
        let id = st.id(sb.inner.cfg.seed, "PMT");
        let pm = StoredCard {
            id: id.clone(),
            time_created: Timestamp::now(),
            card,
            exp_month: str_field(&b, &["card", "expiry_month"])
                .unwrap_or("")
                .into(),
            exp_year: str_field(&b, &["card", "expiry_year"]).unwrap_or("").into(),
            name: str_field(&b, &["name"]).map(str::to_string),
            reference: str_field(&b, &["reference"]).unwrap_or("").into(),
            active: true,
        };
        let v = sb.pmt_json(&pm);
        st.gp.pmts.insert(id.clone(), pm);
        if let Some(k) = idem {
            st.gp.idem.insert(k, id);
        }
        Ok(v)
    })())
}

async fn get_payment_method(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    reply(sb.gp_auth(&h).and_then(|_| {
        let st = sb.lock();
        st.gp
            .pmts
            .get(&id)
            .filter(|p| p.active)
            .map(|p| sb.pmt_json(p))
            .ok_or_else(|| pmt_not_found(&id))
    }))
}

async fn delete_payment_method(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    reply(sb.gp_auth(&h).and_then(|_| {
        let mut st = sb.lock();
        let p = st
            .gp
            .pmts
            .get_mut(&id)
            .filter(|p| p.active)
            .ok_or_else(|| pmt_not_found(&id))?;
        p.active = false;
        let mut v = sb.pmt_json(p);
        v["status"] = json!("DELETED");
        Ok(v)
    }))
}

fn pmt_not_found(id: &str) -> Error {
    Error::gp(
        404,
        "RESOURCE_NOT_FOUND",
        "40116",
        format!("payment_method {id} not found at this /ucp/payment-methods/{id}"),
    )
}

impl Sandbox {
    fn pmt_json(&self, p: &StoredCard) -> Value {
        json!({
            "id": p.id,
            "time_created": ts_ms(p.time_created),
            "status": "ACTIVE",
            "usage_mode": "MULTIPLE",
            "reference": p.reference,
            "name": p.name.clone().unwrap_or_default(),
            "merchant_id": self.inner.cfg.merchant_id,
            "merchant_name": self.inner.cfg.merchant_name,
            "account_id": self.account_id("TKA"),
            "account_name": TKA_NAME,
            "card": {
                "brand": p.card.brand,
                "masked_number_last4": p.card.masked_last4(),
                "number_last4": p.card.last4,
                "expiry_month": p.exp_month,
                "expiry_year": p.exp_year,
            },
            "action": {"id": format!("ACT_{}", &p.id[4..]), "type": "PAYMENT_METHOD_CREATE", "result_code": "SUCCESS"},
        })
    }
}

// ---------------------------------------------------------------- batches and deposits

async fn close_batch(State(sb): State<Sandbox>, h: HeaderMap, Path(id): Path<String>) -> Response {
    reply(sb.gp_auth(&h).and_then(|_| {
        let at = Timestamp::now();
        let mut st = sb.lock();
        let c = sb.close_batch_locked(&mut st, &id, at)?;
        let action = sb.action(&mut st, "CLOSE", at, true);
        Ok(sb.batch_close_json(&st, &c, &action))
    }))
}

impl Sandbox {
    fn batch_close_json(&self, st: &St, c: &BatchClose, action: &Action) -> Value {
        let mut brands: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        if let Some(b) = st
            .gp
            .batch_by_id
            .get(&c.id)
            .and_then(|i| st.gp.batches.get(*i))
        {
            for t in b
                .txn_ids
                .iter()
                .filter_map(|t| st.gp.txn_by_id.get(t))
                .filter_map(|i| st.gp.txns.get(*i))
            {
                let e = brands.entry(t.card.brand.as_str()).or_default();
                e.0 += 1;
                e.1 += if t.kind == Kind::Refund {
                    -t.amount
                } else {
                    t.amount
                };
            }
        }
        json!({
            "id": c.id,
            "time_created": ts_ms(action.time_created),
            "status": "CLOSED",
            "amount": c.net_amount.to_string(),
            "currency": c.currency,
            "transaction_count": c.transaction_count,
            "merchant_id": self.inner.cfg.merchant_id,
            "merchant_name": self.inner.cfg.merchant_name,
            "account_id": self.account_id("TRA"),
            "account_name": TRA_NAME,
            "host_breakdown": [],
            "sales": {"count": c.sales_count, "amount": c.sales_amount.to_string()},
            "refunds": {"count": c.refunds_count, "amount": c.refunds_amount.to_string()},
            "brand_breakdown": brands.iter().map(|(b, (n, a))| json!({"brand": b, "count": n, "amount": a.to_string()})).collect::<Vec<_>>(),
            "action": {"id": action.id, "type": "CLOSE", "time_created": ts_ms(action.time_created), "result_code": "SUCCESS",
                       "app_id": self.inner.cfg.app_id, "app_name": "heartsuite-sandbox"},
        })
    }

    pub(crate) fn close_batch_locked(
        &self,
        st: &mut St,
        id: &str,
        at: Timestamp,
    ) -> Result<BatchClose, Error> {
        let bidx = *st.gp.batch_by_id.get(id).ok_or_else(|| {
            Error::gp(
                400,
                "INVALID_REQUEST_DATA",
                "40213",
                format!("Invalid value provided in the input field - batch_id {id}"),
            )
        })?;
        if st.gp.batches[bidx].closed_at.is_some() {
            return Err(Error::gp(
                400,
                "ACTION_FAILED",
                "500010",
                format!("Batch {id} is already closed"),
            ));
        }
        let ids = st.gp.batches[bidx].txn_ids.clone();
        let mut c = BatchClose {
            id: id.to_string(),
            currency: st.gp.batches[bidx].currency.clone(),
            transaction_count: 0,
            sales_count: 0,
            sales_amount: 0,
            refunds_count: 0,
            refunds_amount: 0,
            net_amount: 0,
        };
        let mut kept = Vec::new();
        for tid in ids {
            let Some(t) = st
                .gp
                .txn_by_id
                .get(&tid)
                .copied()
                .and_then(|i| st.gp.txns.get_mut(i))
            else {
                continue;
            };
            if t.status != Status::Captured {
                continue;
            }
            t.status = Status::Batched;
            c.transaction_count += 1;
            match t.kind {
                Kind::Sale => {
                    c.sales_count += 1;
                    c.sales_amount += t.amount;
                }
                Kind::Refund => {
                    c.refunds_count += 1;
                    c.refunds_amount += t.amount;
                }
            }
            kept.push(tid);
        }
        c.net_amount = c.sales_amount - c.refunds_amount;
        let b = &mut st.gp.batches[bidx];
        b.txn_ids = kept;
        b.closed_at = Some(at);
        if st.gp.open_batch.get(&c.currency).is_some_and(|o| o == id) {
            st.gp.open_batch.remove(&c.currency);
        }
        Ok(c)
    }

    /// Closes every open batch (one per currency) — the end-of-day close.
    pub fn close_open_batches(&self, at: Timestamp) -> Vec<BatchClose> {
        let mut st = self.lock();
        self.close_open_batches_locked(&mut st, at)
    }

    pub(crate) fn close_open_batches_locked(&self, st: &mut St, at: Timestamp) -> Vec<BatchClose> {
        let open: Vec<String> = st.gp.open_batch.values().cloned().collect();
        open.iter()
            .filter_map(|id| self.close_batch_locked(st, id, at).ok())
            .collect()
    }

    /// Closes one batch by id (what `POST /ucp/batches/{id}` does).
    pub fn close_batch(&self, id: &str, at: Timestamp) -> Result<BatchClose, Error> {
        let mut st = self.lock();
        self.close_batch_locked(&mut st, id, at)
    }

    /// Funds every closed batch that has no deposit yet (one deposit per batch), dated `date`,
    /// and releases deposits held `DELAYED` once the delay fault is off. Returns the deposits
    /// created or released.
    pub fn fund_deposits(&self, date: jiff::civil::Date) -> Vec<DepositView> {
        let mut st = self.lock();
        self.fund_deposits_locked(&mut st, date)
    }

    pub(crate) fn fund_deposits_locked(
        &self,
        st: &mut St,
        date: jiff::civil::Date,
    ) -> Vec<DepositView> {
        let cfg = &self.inner.cfg;
        let delayed = st.faults.delay_deposits;
        let mut out = Vec::new();
        if !delayed {
            for di in 0..st.gp.deposits.len() {
                if st.gp.deposits[di].status == "DELAYED" {
                    st.gp.deposits[di].status = "FUNDED";
                    let batch_ids = st.gp.deposits[di].batch_ids.clone();
                    set_batch_txn_status(st, &batch_ids, Status::Funded);
                    out.push(DepositView::from(&st.gp.deposits[di]));
                }
            }
        }
        let pending: Vec<usize> = (0..st.gp.batches.len())
            .filter(|i| {
                st.gp.batches[*i].closed_at.is_some() && st.gp.batches[*i].deposit_id.is_none()
            })
            .collect();
        for bidx in pending {
            let b = st.gp.batches[bidx].clone();
            let id = st.id(cfg.seed, "DEP");
            let mut rng = self.chargeback_rng(&b.id);
            let mut d = Deposit {
                id: id.clone(),
                date,
                status: if delayed { "DELAYED" } else { "FUNDED" },
                currency: b.currency.clone(),
                batch_ids: vec![b.id.clone()],
                sales_count: 0,
                sales_amount: 0,
                refunds_count: 0,
                refunds_amount: 0,
                fees_amount: 0,
                fees_by_brand: BTreeMap::new(),
                chargebacks_count: 0,
                chargebacks_amount: 0,
                net: 0,
            };
            for tid in &b.txn_ids {
                let Some(t) = st
                    .gp
                    .txn_by_id
                    .get(tid)
                    .copied()
                    .and_then(|i| st.gp.txns.get_mut(i))
                else {
                    continue;
                };
                t.deposit_id = Some(id.clone());
                if !delayed {
                    t.status = Status::Funded;
                }
                match t.kind {
                    Kind::Sale => {
                        d.sales_count += 1;
                        d.sales_amount += t.amount;
                        let fee = cfg.fees.fee_for(&t.card.brand, t.amount);
                        d.fees_amount += fee;
                        *d.fees_by_brand.entry(t.card.brand.clone()).or_default() += fee;
                        // Seeded per batch: the same day always draws the same chargebacks.
                        if rng.random_range(0..1_000_000u32) < cfg.chargeback_ppm {
                            t.chargeback = true;
                            d.chargebacks_count += 1;
                            d.chargebacks_amount += t.amount;
                        }
                    }
                    Kind::Refund => {
                        d.refunds_count += 1;
                        d.refunds_amount += t.amount;
                    }
                }
            }
            d.net = d.sales_amount - d.refunds_amount - d.fees_amount - d.chargebacks_amount;
            st.gp.batches[bidx].deposit_id = Some(id.clone());
            st.gp.deposit_by_id.insert(id, st.gp.deposits.len());
            out.push(DepositView::from(&d));
            st.gp.deposits.push(d);
        }
        out
    }

    /// All deposits so far.
    pub fn deposits(&self) -> Vec<DepositView> {
        self.lock()
            .gp
            .deposits
            .iter()
            .map(DepositView::from)
            .collect()
    }

    fn deposit_json(&self, d: &Deposit) -> Value {
        json!({
            "id": d.id,
            "time_created": d.date.to_string(),
            "status": d.status,
            "funding_type": if d.net >= 0 { "CREDIT" } else { "DEBIT" },
            "amount": d.net.abs().to_string(),
            "currency": d.currency,
            "aggregation_model": "H-Level",
            "bank_transfer": {"masked_account_number_last4": "XXXXXXXX4321", "bank": {"code": "XXXXX0001"}},
            "system": self.system(),
            "sales": {"count": d.sales_count, "amount": d.sales_amount.to_string()},
            "refunds": {"count": d.refunds_count, "amount": (-d.refunds_amount).to_string()},
            "discounts": {"count": 0, "amount": "0"},
            "tax": {"count": 0, "amount": "0"},
            "disputes": {
                "chargebacks": {"count": d.chargebacks_count, "amount": d.chargebacks_amount.to_string()},
                "reversals": {"count": 0, "amount": "0"},
            },
            "fees": {"amount": d.fees_amount.to_string()},
            "merchant_id": self.inner.cfg.merchant_id,
            "merchant_name": self.inner.cfg.merchant_name,
            "account_id": self.account_id("DAA"),
            "account_name": DAA_NAME,
            "action": {"id": format!("ACT_{}", &d.id[4..]), "type": "DEPOSIT_SINGLE", "result_code": "SUCCESS"},
        })
    }
}

fn set_batch_txn_status(st: &mut St, batch_ids: &[String], status: Status) {
    for bid in batch_ids {
        let ids = st
            .gp
            .batch_by_id
            .get(bid)
            .and_then(|i| st.gp.batches.get(*i))
            .map(|b| b.txn_ids.clone())
            .unwrap_or_default();
        for tid in ids {
            if let Some(t) = st
                .gp
                .txn_by_id
                .get(&tid)
                .copied()
                .and_then(|i| st.gp.txns.get_mut(i))
            {
                t.status = status;
            }
        }
    }
}

async fn list_deposits(
    State(sb): State<Sandbox>,
    h: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    reply(sb.gp_auth(&h).and_then(|_| {
        let p = query_pairs(raw.as_deref());
        let pg = paging(&p, "TIME_CREATED")?;
        let st = sb.lock();
        let mut hits = Vec::new();
        for d in &st.gp.deposits {
            let eq = |k: &str, v: &str| q(&p, k).is_none_or(|f| f.eq_ignore_ascii_case(v));
            if eq("id", &d.id)
                && eq("status", d.status)
                && eq("amount", &d.net.abs().to_string())
                && eq("masked_account_number_last4", "4321")
                && eq("system.mid", "8800000001")
                && in_range(Some(d.date), &p, "from_time_created", "to_time_created")?
            {
                hits.push(d);
            }
        }
        match pg.order_by.as_str() {
            "ID" => hits.sort_by(|a, b| a.id.cmp(&b.id)),
            "STATUS" => hits.sort_by(|a, b| a.status.cmp(b.status)),
            "AMOUNT" => hits.sort_by_key(|d| d.net),
            _ => hits.sort_by_key(|d| d.date),
        }
        if pg.order == "DESC" {
            hits.reverse();
        }
        let total = hits.len();
        let items: Vec<Value> = page_of(hits, &pg).into_iter().map(|d| sb.deposit_json(d)).collect();
        Ok(json!({
            "merchant_id": sb.inner.cfg.merchant_id,
            "merchant_name": sb.inner.cfg.merchant_name,
            "account_id": sb.account_id("DAA"),
            "account_name": DAA_NAME,
            "total_record_count": total,
            "current_page_size": items.len(),
            "paging": {"page": pg.page, "page_size": pg.page_size, "order": pg.order, "order_by": pg.order_by},
            "deposits": items,
        }))
    }))
}

async fn get_deposit(State(sb): State<Sandbox>, h: HeaderMap, Path(id): Path<String>) -> Response {
    reply(sb.gp_auth(&h).and_then(|_| {
        let id = id.trim_end_matches('?');
        let st = sb.lock();
        st.gp
            .deposit_by_id
            .get(id)
            .and_then(|i| st.gp.deposits.get(*i))
            .map(|d| sb.deposit_json(d))
            .ok_or_else(|| {
                Error::gp(
                    404,
                    "RESOURCE_NOT_FOUND",
                    "40118",
                    format!("Deposits {id} not found at this /ucp/settlement/deposits/{id}"),
                )
            })
    }))
}
