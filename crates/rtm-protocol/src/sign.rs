//! OpenAPI request signing: HMAC-SHA256, SigV4-like (REFERENCE §4).
//!
//! ```text
//! CanonicalRequest = METHOD \n path \n CanonicalQuery \n CanonicalHeaders \n SignedHeaders \n hex(sha256(body))
//! CredentialScope  = YYYYMMDD "/" region "/" service "/request"
//! StringToSign     = "HMAC-SHA256" \n X-Date \n CredentialScope \n hex(sha256(CanonicalRequest))
//! kSigning         = HMAC(HMAC(HMAC(HMAC(SK, YYYYMMDD), region), service), "request")
//! Authorization: HMAC-SHA256 Credential=<AK>/<CredentialScope>, SignedHeaders=<list>, Signature=<hex>
//! ```
//!
//! [`sign`] produces the `Authorization` header value a client sends; [`verify`] is the
//! gateway side: it recomputes the signature from the header set the request itself lists in
//! `SignedHeaders` (the vendor's official SDKs sign different sets), checks the `X-Date`
//! window and the body hash, and reports failures as the vendor's gateway error codes
//! ([`SignError`]).
//!
//! Canonicalization choices, where the vendor's two official signers differ or are silent:
//!
//! * Query: see [`canonical_query`]; `+` in a raw query means a space, as in the vendor's Go
//!   SDK (which sends spaces as `+` and signs them as `%20`).
//! * Path: percent-decoded, then each `/`-separated segment re-encoded with the RFC 3986
//!   unreserved set (the Go SDK's `normuri`); an empty path is `/`. Paths the official SDKs
//!   send (`/`) are unchanged.
//! * Header values: trimmed of surrounding whitespace, inner whitespace kept (Go SDK).
//! * Unknown `Authorization` components (the Node SDK's `SignedQueries=`) are ignored.
//!
//! No I/O and no clock: callers pass the current time.
//!
//! ```
//! use rtm_protocol::sign::{sign, verify, parse_x_date, SignRequest};
//! let body = br#"{"AppId":"0123456789abcdef01234567","From":"server","To":"u","Binary":false,"Message":"hi"}"#;
//! let x_date = "20240102T030405Z";
//! let query = "Action=SendUnicast&Version=2023-07-20";
//! let headers = [("Host", "rtc.volcengineapi.com"), ("X-Date", x_date)];
//! let req = SignRequest { method: "POST", path: "/", query, headers: &headers, body };
//! let auth = sign(&req, "AK", "SK", "cn-north-1", "rtc", x_date, &["host", "x-date"]);
//!
//! // What the server receives:
//! let received = [headers[0], headers[1], ("Authorization", auth.as_str())];
//! let req = SignRequest { headers: &received, ..req };
//! let now = parse_x_date(x_date).unwrap();
//! let ok = verify(&req, |ak| (ak == "AK").then(|| "SK".to_string()), now, 900).unwrap();
//! assert_eq!((ok.access_key.as_str(), ok.service.as_str()), ("AK", "rtc"));
//! ```

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The signing algorithm name, first word of the `Authorization` header.
pub const ALGORITHM: &str = "HMAC-SHA256";

/// The validity window of `X-Date` the vendor's docs mention, in seconds.
pub const DEFAULT_WINDOW_SECS: i64 = 900;

/// The request a signature covers, as received (or about to be sent).
#[derive(Debug, Clone, Copy)]
pub struct SignRequest<'a> {
    /// The HTTP method (compared upper-cased).
    pub method: &'a str,
    /// The path, as on the request line (may be percent-encoded; empty means `/`).
    pub path: &'a str,
    /// The raw query string without the leading `?` (may be percent-encoded).
    pub query: &'a str,
    /// All request headers, `(name, value)` as received; names match case-insensitively.
    pub headers: &'a [(&'a str, &'a str)],
    /// The request body.
    pub body: &'a [u8],
}

/// A parsed `Authorization` header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The access key (AK).
    pub access_key: String,
    /// The credential scope date, `YYYYMMDD`.
    pub date: String,
    /// The credential scope region, e.g. `cn-north-1`.
    pub region: String,
    /// The credential scope service, e.g. `rtc`.
    pub service: String,
    /// The signed header names, lower-cased, in the order given (non-empty, no duplicates,
    /// always containing `x-date`).
    pub signed_headers: Vec<String>,
    /// The signature, 64 lower-case hex digits.
    pub signature: String,
}

/// What [`verify`] establishes about an authentic request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRequest {
    /// The access key that signed the request.
    pub access_key: String,
    /// The region of the credential scope (the caller decides whether it is served).
    pub region: String,
    /// The service of the credential scope (the caller decides whether it is served).
    pub service: String,
    /// The instant of the request's `X-Date`, in Unix seconds.
    pub timestamp: i64,
}

/// The vendor's OpenAPI gateway errors (REFERENCE §3), one variant per code.
///
/// [`verify`] returns only `MissingAuthenticationToken`, `MissingSignature`,
/// `InvalidTimestamp`, `InvalidAccessKey` and `SignatureDoesNotMatch`; the other variants are
/// here so that a server can report every gateway error through [`code`](Self::code),
/// [`code_n`](Self::code_n) and [`http_status`](Self::http_status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// A required parameter is missing (100002, HTTP 400).
    #[error("a required parameter is missing")]
    MissingParameter,
    /// No `Authorization` header (100003, HTTP 401).
    #[error("the request carries no authentication")]
    MissingAuthenticationToken,
    /// The `Authorization` header is malformed or incomplete (100005, HTTP 401).
    #[error("the authorization header is malformed or incomplete")]
    MissingSignature,
    /// `X-Date` is missing, invalid or outside the validity window (100006, HTTP 403).
    #[error("X-Date is missing, invalid or outside the validity window")]
    InvalidTimestamp,
    /// Unknown `Action` or `Version` (100008, HTTP 404).
    #[error("unknown action or version")]
    InvalidActionOrVersion,
    /// Unknown access key (100009, HTTP 401).
    #[error("the access key is invalid")]
    InvalidAccessKey,
    /// The signature (or the signed body hash) does not match the request (100010, HTTP 401).
    #[error("the request signature does not match")]
    SignatureDoesNotMatch,
    /// The access key may not perform this request (100013, HTTP 403).
    #[error("access denied")]
    AccessDenied,
    /// A server-side failure (100014, HTTP 500).
    #[error("internal error")]
    InternalError,
}

impl SignError {
    /// The vendor's error `Code` string, e.g. `"SignatureDoesNotMatch"`.
    pub fn code(&self) -> &'static str {
        match self {
            SignError::MissingParameter => "MissingParameter",
            SignError::MissingAuthenticationToken => "MissingAuthenticationToken",
            SignError::MissingSignature => "MissingSignature",
            SignError::InvalidTimestamp => "InvalidTimestamp",
            SignError::InvalidActionOrVersion => "InvalidActionOrVersion",
            SignError::InvalidAccessKey => "InvalidAccessKey",
            SignError::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            SignError::AccessDenied => "AccessDenied",
            SignError::InternalError => "InternalError",
        }
    }

    /// The vendor's numeric `CodeN`, e.g. `100010`.
    pub fn code_n(&self) -> u32 {
        match self {
            SignError::MissingParameter => 100_002,
            SignError::MissingAuthenticationToken => 100_003,
            SignError::MissingSignature => 100_005,
            SignError::InvalidTimestamp => 100_006,
            SignError::InvalidActionOrVersion => 100_008,
            SignError::InvalidAccessKey => 100_009,
            SignError::SignatureDoesNotMatch => 100_010,
            SignError::AccessDenied => 100_013,
            SignError::InternalError => 100_014,
        }
    }

    /// The HTTP status the gateway answers with, e.g. `401`.
    pub fn http_status(&self) -> u16 {
        match self {
            SignError::MissingParameter => 400,
            SignError::MissingAuthenticationToken
            | SignError::MissingSignature
            | SignError::InvalidAccessKey
            | SignError::SignatureDoesNotMatch => 401,
            SignError::InvalidTimestamp | SignError::AccessDenied => 403,
            SignError::InvalidActionOrVersion => 404,
            SignError::InternalError => 500,
        }
    }
}

/// `hex(sha256(data))`, lower-case: the `X-Content-Sha256` value of a body.
pub fn hex_sha256(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// The signing key `HMAC(HMAC(HMAC(HMAC(sk, date), region), service), "request")`, with
/// `date` as `YYYYMMDD` and the secret key used raw (no prefix).
pub fn signing_key(sk: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(sk.as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"request")
}

/// The canonical form of a raw query string (without the leading `?`).
///
/// Each `&`-separated parameter is split at its first `=` (no `=` means an empty value; empty
/// parameters are dropped), names and values are decoded, the pairs are sorted by decoded
/// name then decoded value (bytewise), re-encoded per RFC 3986 (unreserved `A-Za-z0-9-_.~`
/// kept, every other byte `%XX` in upper case, so a space is `%20`) and joined as `k=v` with
/// `&`.
///
/// Decoding: `%XX` is the byte `XX`; a `%` not followed by two hex digits is a literal `%`
/// (and so is signed as `%25`, never silently dropped); `+` is a space, as in
/// `application/x-www-form-urlencoded` and in the vendor's Go SDK, which parses queries with
/// `url.ParseQuery`, sends spaces as `+` and signs them as `%20`. A literal plus must
/// therefore travel as `%2B` (which both official SDKs do); it is signed as `%2B`.
pub fn canonical_query(raw_query: &str) -> String {
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode_component(k, true), decode_component(v, true))
        })
        .collect();
    pairs.sort();
    let mut out = String::with_capacity(raw_query.len() + raw_query.len() / 2);
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_into(&mut out, k);
        out.push('=');
        encode_into(&mut out, v);
    }
    out
}

/// The canonical path: percent-decoded, each `/`-separated segment re-encoded with the
/// unreserved set; an empty path is `/`.
fn canonical_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let decoded = decode_component(path, false);
    let mut out = String::with_capacity(decoded.len());
    for (i, seg) in decoded.split(|&b| b == b'/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        encode_into(&mut out, seg);
    }
    out
}

/// The canonical request for `req` with `headers` = (lower-case name, trimmed value) pairs
/// sorted by name.
fn canonical_request(req: &SignRequest<'_>, headers: &[(String, &str)], body_hash: &str) -> String {
    let mut s = String::new();
    s.push_str(&req.method.to_ascii_uppercase());
    s.push('\n');
    s.push_str(&canonical_path(req.path));
    s.push('\n');
    s.push_str(&canonical_query(req.query));
    s.push('\n');
    for (name, value) in headers {
        s.push_str(name);
        s.push(':');
        s.push_str(value);
        s.push('\n');
    }
    s.push('\n');
    s.push_str(&signed_headers_line(headers));
    s.push('\n');
    s.push_str(body_hash);
    s
}

fn signed_headers_line(headers: &[(String, &str)]) -> String {
    headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";")
}

/// The hex signature of `canonical` under `sk` at `x_date` in `region`/`service`.
fn signature(
    canonical: &str,
    sk: &str,
    x_date: &str,
    date: &str,
    region: &str,
    service: &str,
) -> String {
    let string_to_sign = format!(
        "{ALGORITHM}\n{x_date}\n{date}/{region}/{service}/request\n{}",
        hex_sha256(canonical.as_bytes())
    );
    let key = signing_key(sk, date, region, service);
    hex(&hmac_sha256(&key, string_to_sign.as_bytes()))
}

/// Signs `req` and returns the full `Authorization` header value
/// (`HMAC-SHA256 Credential=<ak>/<scope>, SignedHeaders=<list>, Signature=<hex>`).
///
/// `x_date` is the request's `X-Date` (`YYYYMMDD'T'HHMMSS'Z'`, see [`format_x_date`]); its
/// first 8 characters are the credential date. `signed_headers` names the headers to sign, in
/// any case and order (they are lower-cased, sorted and de-duplicated); each takes the value
/// of the first header of that name in `req.headers`, trimmed. A listed `x-date` or
/// `x-content-sha256` that `req.headers` lacks takes `x_date` or [`hex_sha256`] of the body —
/// the request must still carry those headers to pass [`verify`]; any other listed header
/// that `req.headers` lacks is signed with an empty value, which [`verify`] rejects.
/// The body hash in the canonical request is always computed from `req.body`.
pub fn sign(
    req: &SignRequest<'_>,
    ak: &str,
    sk: &str,
    region: &str,
    service: &str,
    x_date: &str,
    signed_headers: &[&str],
) -> String {
    let body_hash = hex_sha256(req.body);
    let mut names: Vec<String> = signed_headers
        .iter()
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    let headers: Vec<(String, &str)> = names
        .into_iter()
        .map(|name| {
            let value = match req
                .headers
                .iter()
                .find(|(n, _)| n.trim().eq_ignore_ascii_case(&name))
            {
                Some((_, v)) => v.trim(),
                None if name == "x-date" => x_date,
                None if name == "x-content-sha256" => body_hash.as_str(),
                None => "",
            };
            (name, value)
        })
        .collect();
    let canonical = canonical_request(req, &headers, &body_hash);
    let date = x_date.get(..8).unwrap_or(x_date);
    let sig = signature(&canonical, sk, x_date, date, region, service);
    format!(
        "{ALGORITHM} Credential={ak}/{date}/{region}/{service}/request, SignedHeaders={}, Signature={sig}",
        signed_headers_line(&headers)
    )
}

/// Parses an `Authorization` header value.
///
/// The value is `HMAC-SHA256` followed by whitespace and comma-separated `Key=Value`
/// components: `Credential=<AK>/<YYYYMMDD>/<region>/<service>/request`,
/// `SignedHeaders=<name>;<name>...` (non-empty, no duplicates, must include `x-date`) and
/// `Signature=<64 hex digits>`, each exactly once; other components (such as the Node SDK's
/// `SignedQueries`) are ignored. Any deviation is [`SignError::MissingSignature`]. Never panics.
pub fn parse_authorization(value: &str) -> Result<Authorization, SignError> {
    const BAD: SignError = SignError::MissingSignature;
    let rest = value.trim().strip_prefix(ALGORITHM).ok_or(BAD)?;
    if !rest.starts_with([' ', '\t']) {
        return Err(BAD);
    }
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=').ok_or(BAD)?;
        let slot = match k.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.replace(v.trim()).is_some() {
            return Err(BAD);
        }
    }
    let (credential, signed, signature) = (
        credential.ok_or(BAD)?,
        signed.ok_or(BAD)?,
        signature.ok_or(BAD)?,
    );

    let mut scope = credential.split('/');
    let mut next = || scope.next().filter(|s| !s.is_empty()).ok_or(BAD);
    let (access_key, date, region, service, terminator) =
        (next()?, next()?, next()?, next()?, next()?);
    if terminator != "request" || scope.next().is_some() {
        return Err(BAD);
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BAD);
    }

    let mut signed_headers: Vec<String> = Vec::new();
    for name in signed.split(';') {
        let name = name.to_ascii_lowercase();
        if name.is_empty() || !name.bytes().all(is_token_byte) || signed_headers.contains(&name) {
            return Err(BAD);
        }
        signed_headers.push(name);
    }
    if !signed_headers.iter().any(|n| n == "x-date") {
        return Err(BAD);
    }

    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BAD);
    }

    Ok(Authorization {
        access_key: access_key.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers,
        signature: signature.to_ascii_lowercase(),
    })
}

/// Verifies a signed request, as the vendor's gateway does. Checks, in order:
///
/// 1. an `Authorization` header exists and is non-empty, else
///    [`SignError::MissingAuthenticationToken`]; it parses ([`parse_authorization`]) and
///    occurs once, else [`SignError::MissingSignature`];
/// 2. exactly one `X-Date` header, a valid `YYYYMMDD'T'HHMMSS'Z'` instant within
///    `window_secs` of `now_unix` (both directions, inclusive), else
///    [`SignError::InvalidTimestamp`];
/// 3. the credential date equals the date part of `X-Date`, else
///    [`SignError::SignatureDoesNotMatch`];
/// 4. `sk_lookup(access_key)` knows the access key, else [`SignError::InvalidAccessKey`];
/// 5. every header listed in `SignedHeaders` occurs exactly once, and a signed
///    `X-Content-Sha256` equals the hash of the body (case-insensitively), else
///    [`SignError::SignatureDoesNotMatch`];
/// 6. the signature recomputed over the listed headers matches (constant-time comparison),
///    else [`SignError::SignatureDoesNotMatch`].
///
/// Region and service are returned, not checked. Never panics.
pub fn verify(
    req: &SignRequest<'_>,
    sk_lookup: impl Fn(&str) -> Option<String>,
    now_unix: i64,
    window_secs: i64,
) -> Result<VerifiedRequest, SignError> {
    let auth = match unique_header(req.headers, "authorization") {
        Ok(Some(v)) if !v.trim().is_empty() => v,
        Ok(_) => return Err(SignError::MissingAuthenticationToken),
        Err(()) => return Err(SignError::MissingSignature),
    };
    let auth = parse_authorization(auth)?;

    let x_date = match unique_header(req.headers, "x-date") {
        Ok(Some(v)) => v.trim(),
        _ => return Err(SignError::InvalidTimestamp),
    };
    let timestamp = parse_x_date(x_date).ok_or(SignError::InvalidTimestamp)?;
    // A negative window admits no instant at all.
    let window = u64::try_from(window_secs).map_err(|_| SignError::InvalidTimestamp)?;
    if now_unix.abs_diff(timestamp) > window {
        return Err(SignError::InvalidTimestamp);
    }
    if auth.date.as_bytes() != &x_date.as_bytes()[..8] {
        return Err(SignError::SignatureDoesNotMatch);
    }

    let sk = sk_lookup(&auth.access_key).ok_or(SignError::InvalidAccessKey)?;

    let body_hash = hex_sha256(req.body);
    let mut names = auth.signed_headers.clone();
    names.sort();
    let mut headers: Vec<(String, &str)> = Vec::with_capacity(names.len());
    for name in names {
        let value = match unique_header(req.headers, &name) {
            Ok(Some(v)) => v.trim(),
            _ => return Err(SignError::SignatureDoesNotMatch),
        };
        if name == "x-content-sha256" && !value.eq_ignore_ascii_case(&body_hash) {
            return Err(SignError::SignatureDoesNotMatch);
        }
        headers.push((name, value));
    }

    let canonical = canonical_request(req, &headers, &body_hash);
    let expected = signature(
        &canonical,
        &sk,
        x_date,
        &auth.date,
        &auth.region,
        &auth.service,
    );
    if !bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes())) {
        return Err(SignError::SignatureDoesNotMatch);
    }
    Ok(VerifiedRequest {
        access_key: auth.access_key,
        region: auth.region,
        service: auth.service,
        timestamp,
    })
}

/// Parses an `X-Date` value, `YYYYMMDD'T'HHMMSS'Z'` (UTC), into Unix seconds. Rejects any
/// other shape and invalid dates or times (month 13, February 30 or 29 outside leap years,
/// hour 24, second 60). Never panics.
pub fn parse_x_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Formats Unix seconds as an `X-Date` value, `YYYYMMDD'T'HHMMSS'Z'` (UTC). Meaningful for
/// instants in the years 0 to 9999, the range [`parse_x_date`] reads.
pub fn format_x_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The value of the only header named `name` (case-insensitive): `Ok(None)` when absent,
/// `Err(())` when repeated.
fn unique_header<'a>(headers: &[(&str, &'a str)], name: &str) -> Result<Option<&'a str>, ()> {
    let mut found = None;
    for (n, v) in headers {
        if n.trim().eq_ignore_ascii_case(name) {
            if found.is_some() {
                return Err(());
            }
            found = Some(*v);
        }
    }
    Ok(found)
}

/// An RFC 9110 `tchar`: the bytes a header name may contain.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `s`; `%` without two hex digits stays literal; `+` is a space when
/// `plus_is_space`.
fn decode_component(s: &str, plus_is_space: bool) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = b.get(i + 1).copied().and_then(hex_val);
                let lo = b.get(i + 2).copied().and_then(hex_val);
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// Appends `bytes` percent-encoded per RFC 3986 (unreserved kept, upper-case hex).
fn encode_into(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const X_DATE: &str = "20240102T030405Z";
    const QUERY: &str = "Action=SendUnicast&Version=2023-07-20";
    const BODY: &[u8] = br#"{"AppId":"0123456789abcdef01234567","From":"server","To":"user1","Binary":false,"Message":"hello"}"#;
    const BODY_HASH: &str = "085659ac69dec929c1efd47f777e0d138ee4285aad16e0911fbb8cd25c5f7b30";
    const SIG_NODE: &str = "a15c1b8569ff91302de8b2c5e22fbbed4860b74247d929ce60e9427d32c11dec";
    const SIG_GO: &str = "d4dbc6070466471d9adc93acba50850f3bf4c8b1dda6c48ad742d510e2bac592";
    const NODE_SET: &[&str] = &["host", "x-content-sha256", "x-date"];
    const GO_SET: &[&str] = &["content-type", "host", "x-content-sha256", "x-date"];

    fn base_headers() -> Vec<(&'static str, &'static str)> {
        vec![
            ("Host", "rtc.volcengineapi.com"),
            ("Content-Type", "application/json"),
            ("X-Date", X_DATE),
            ("X-Content-Sha256", BODY_HASH),
        ]
    }

    fn req<'a>(headers: &'a [(&'a str, &'a str)]) -> SignRequest<'a> {
        SignRequest {
            method: "POST",
            path: "/",
            query: QUERY,
            headers,
            body: BODY,
        }
    }

    fn lookup(ak: &str) -> Option<String> {
        (ak == "AKTEST").then(|| "SKTEST".to_owned())
    }

    fn now() -> i64 {
        parse_x_date(X_DATE).unwrap()
    }

    fn authorization(set: &[&str]) -> String {
        let h = base_headers();
        sign(
            &req(&h),
            "AKTEST",
            "SKTEST",
            "cn-north-1",
            "rtc",
            X_DATE,
            set,
        )
    }

    /// The base headers plus `Authorization` for `set`.
    fn signed_headers(set: &[&str]) -> Vec<(&'static str, String)> {
        let mut h: Vec<(&str, String)> = base_headers()
            .into_iter()
            .map(|(n, v)| (n, v.to_owned()))
            .collect();
        h.push(("Authorization", authorization(set)));
        h
    }

    fn borrow<'a>(h: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
        h.iter().map(|(n, v)| (*n, v.as_str())).collect()
    }

    fn check(
        h: &[(&str, String)],
        r: impl Fn(SignRequest<'_>) -> SignRequest<'_>,
    ) -> Result<VerifiedRequest, SignError> {
        let b = borrow(h);
        verify(&r(req(&b)), lookup, now(), DEFAULT_WINDOW_SECS)
    }

    #[test]
    fn body_hash_vector() {
        assert_eq!(hex_sha256(BODY), BODY_HASH);
    }

    #[test]
    fn vectors_sign_exactly() {
        assert_eq!(
            authorization(NODE_SET),
            format!(
                "HMAC-SHA256 Credential=AKTEST/20240102/cn-north-1/rtc/request, \
                 SignedHeaders=host;x-content-sha256;x-date, Signature={SIG_NODE}"
            )
        );
        assert_eq!(
            authorization(GO_SET),
            format!(
                "HMAC-SHA256 Credential=AKTEST/20240102/cn-north-1/rtc/request, \
                 SignedHeaders=content-type;host;x-content-sha256;x-date, Signature={SIG_GO}"
            )
        );
        // Order and case of the requested names do not matter.
        assert!(authorization(&["X-Date", "HOST", "x-content-sha256", "host"]).ends_with(SIG_NODE));
    }

    #[test]
    fn sign_fills_missing_date_and_hash() {
        let h = [("Host", "rtc.volcengineapi.com")];
        let a = sign(
            &req(&h),
            "AKTEST",
            "SKTEST",
            "cn-north-1",
            "rtc",
            X_DATE,
            NODE_SET,
        );
        assert!(a.ends_with(SIG_NODE), "{a}");
    }

    #[test]
    fn vectors_verify() {
        for set in [NODE_SET, GO_SET] {
            let h = signed_headers(set);
            let v = check(&h, |r| r).unwrap();
            assert_eq!(
                v,
                VerifiedRequest {
                    access_key: "AKTEST".into(),
                    region: "cn-north-1".into(),
                    service: "rtc".into(),
                    timestamp: now(),
                }
            );
        }
    }

    #[test]
    fn verify_the_literal_vector_headers() {
        let auth = format!(
            "HMAC-SHA256 Credential=AKTEST/20240102/cn-north-1/rtc/request, \
             SignedHeaders=content-type;host;x-content-sha256;x-date, SignedQueries=Action;Version, \
             Signature={SIG_GO}"
        );
        let mut h = base_headers();
        h.push(("authorization", &auth));
        // Header name case and surrounding value whitespace do not matter.
        h[0] = ("HOST", "  rtc.volcengineapi.com ");
        assert!(verify(&req(&h), lookup, now(), 900).is_ok());
    }

    #[test]
    fn rejects_tampering() {
        let h = signed_headers(NODE_SET);
        assert_eq!(
            check(&h, |r| SignRequest { body: b"{}", ..r }),
            Err(SignError::SignatureDoesNotMatch)
        );
        assert_eq!(
            check(&h, |r| SignRequest {
                query: "Action=SendUnicast&Version=2023-07-21",
                ..r
            }),
            Err(SignError::SignatureDoesNotMatch)
        );
        assert_eq!(
            check(&h, |r| SignRequest {
                query: "Action=SendBroadcast&Version=2023-07-20",
                ..r
            }),
            Err(SignError::SignatureDoesNotMatch)
        );
        assert_eq!(
            check(&h, |r| SignRequest { method: "PUT", ..r }),
            Err(SignError::SignatureDoesNotMatch)
        );
        assert_eq!(
            check(&h, |r| SignRequest { path: "/x", ..r }),
            Err(SignError::SignatureDoesNotMatch)
        );
        // Reordered query and lower-case method are the same request.
        assert!(check(&h, |r| SignRequest {
            query: "Version=2023-07-20&Action=SendUnicast",
            method: "post",
            ..r
        })
        .is_ok());
        // An unsigned header may change; a signed one may not.
        let mut h2 = h.clone();
        h2[1].1 = "text/plain".into();
        assert!(check(&h2, |r| r).is_ok());
        let mut h3 = h.clone();
        h3[0].1 = "evil.example".into();
        assert_eq!(check(&h3, |r| r), Err(SignError::SignatureDoesNotMatch));
    }

    #[test]
    fn rejects_body_not_matching_signed_hash() {
        // The client signs a hash header that does not match the body it sends.
        let other = hex_sha256(b"{}");
        let hs = [
            ("Host", "rtc.volcengineapi.com"),
            ("X-Date", X_DATE),
            ("X-Content-Sha256", other.as_str()),
        ];
        let auth = sign(
            &req(&hs),
            "AKTEST",
            "SKTEST",
            "cn-north-1",
            "rtc",
            X_DATE,
            NODE_SET,
        );
        let mut h = hs.to_vec();
        h.push(("Authorization", &auth));
        assert_eq!(
            verify(&req(&h), lookup, now(), 900),
            Err(SignError::SignatureDoesNotMatch)
        );
        // Unsigned, the header is ignored.
        let auth = sign(
            &req(&hs),
            "AKTEST",
            "SKTEST",
            "cn-north-1",
            "rtc",
            X_DATE,
            &["host", "x-date"],
        );
        let mut h = hs.to_vec();
        h.push(("Authorization", &auth));
        assert!(verify(&req(&h), lookup, now(), 900).is_ok());
    }

    #[test]
    fn rejects_wrong_sk_and_unknown_ak() {
        let h = signed_headers(GO_SET);
        let b = borrow(&h);
        assert_eq!(
            verify(&req(&b), |_| Some("SKTEST2".into()), now(), 900),
            Err(SignError::SignatureDoesNotMatch)
        );
        assert_eq!(
            verify(&req(&b), |_| None, now(), 900),
            Err(SignError::InvalidAccessKey)
        );
    }

    #[test]
    fn timestamp_window() {
        let h = signed_headers(NODE_SET);
        let b = borrow(&h);
        let at = |t| verify(&req(&b), lookup, t, DEFAULT_WINDOW_SECS);
        assert!(at(now() + 900).is_ok());
        assert!(at(now() - 900).is_ok());
        assert_eq!(at(now() + 901), Err(SignError::InvalidTimestamp));
        assert_eq!(at(now() - 901), Err(SignError::InvalidTimestamp));
        assert_eq!(at(i64::MIN), Err(SignError::InvalidTimestamp));
        assert_eq!(at(i64::MAX), Err(SignError::InvalidTimestamp));
        assert_eq!(
            verify(&req(&b), lookup, now(), -5),
            Err(SignError::InvalidTimestamp)
        );
    }

    #[test]
    fn credential_date_must_match_x_date() {
        let h = base_headers();
        let a = sign(
            &req(&h),
            "AKTEST",
            "SKTEST",
            "cn-north-1",
            "rtc",
            X_DATE,
            NODE_SET,
        );
        let a = a.replace("AKTEST/20240102", "AKTEST/20240101");
        let mut h = base_headers();
        h.push(("Authorization", &a));
        assert_eq!(
            verify(&req(&h), lookup, now(), 900),
            Err(SignError::SignatureDoesNotMatch)
        );
    }

    #[test]
    fn missing_headers() {
        let h = signed_headers(GO_SET);
        let without = |name: &str| -> Vec<(&'static str, String)> {
            h.iter().filter(|(n, _)| *n != name).cloned().collect()
        };
        assert_eq!(
            check(&without("Authorization"), |r| r),
            Err(SignError::MissingAuthenticationToken)
        );
        assert_eq!(
            check(&without("X-Date"), |r| r),
            Err(SignError::InvalidTimestamp)
        );
        for name in ["Host", "Content-Type", "X-Content-Sha256"] {
            assert_eq!(
                check(&without(name), |r| r),
                Err(SignError::SignatureDoesNotMatch),
                "{name}"
            );
        }
        let mut empty = without("Authorization");
        empty.push(("Authorization", "  ".into()));
        assert_eq!(
            check(&empty, |r| r),
            Err(SignError::MissingAuthenticationToken)
        );
    }

    #[test]
    fn repeated_headers() {
        let h = signed_headers(NODE_SET);
        let mut twice = h.clone();
        twice.push(("host", "evil.example".into()));
        assert_eq!(check(&twice, |r| r), Err(SignError::SignatureDoesNotMatch));
        let mut twice = h.clone();
        twice.push(("x-date", X_DATE.into()));
        assert_eq!(check(&twice, |r| r), Err(SignError::InvalidTimestamp));
        let mut twice = h.clone();
        twice.push(h[4].clone());
        assert_eq!(check(&twice, |r| r), Err(SignError::MissingSignature));
    }

    #[test]
    fn bad_x_date() {
        for bad in [
            "2024-01-02T03:04:05Z",
            "20240102T030405",
            "20241302T030405Z",
            "",
        ] {
            let mut h = signed_headers(NODE_SET);
            h[2].1 = bad.into();
            assert_eq!(check(&h, |r| r), Err(SignError::InvalidTimestamp), "{bad}");
        }
    }

    #[test]
    fn malformed_authorization() {
        let good = authorization(NODE_SET);
        let sig = &good[good.len() - 64..];
        let cases = [
            "HMAC-SHA256".to_owned(),
            "Bearer xyz".to_owned(),
            "AWS4-HMAC-SHA256 Credential=AKTEST/20240102/cn-north-1/rtc/aws4_request, SignedHeaders=host;x-date, Signature=00".to_owned(),
            good.replacen("HMAC-SHA256 ", "HMAC-SHA256,", 1),
            good.replace("/request", "/requests"),
            good.replace("/request", "/request/x"),
            good.replace("AKTEST/", "/"),
            good.replace("20240102/", "2024012/"),
            good.replace("2024", "2O24"),
            good.replace("SignedHeaders=host;x-content-sha256;x-date", "SignedHeaders="),
            good.replace("SignedHeaders=host;x-content-sha256;x-date", "SignedHeaders=host;x-content-sha256"),
            good.replace("SignedHeaders=host;x-content-sha256;x-date", "SignedHeaders=host;;x-date"),
            good.replace("SignedHeaders=host;x-content-sha256;x-date", "SignedHeaders=host;x-date;HOST"),
            good.replace("SignedHeaders=host;x-content-sha256;x-date", "SignedHeaders=ho st;x-date"),
            good.replace(sig, &sig[1..]),
            good.replace(sig, &format!("{}g", &sig[1..])),
            format!("{good}, Signature={sig}"),
            good.replace(", Signature=", ", Sig="),
            good.replace("Credential", "credential"),
            good.replace(", SignedHeaders=", ", SignedHeaders"),
        ];
        for bad in &cases {
            assert_eq!(
                parse_authorization(bad),
                Err(SignError::MissingSignature),
                "{bad}"
            );
            let mut h = signed_headers(NODE_SET);
            h[4].1 = bad.clone();
            assert_eq!(check(&h, |r| r), Err(SignError::MissingSignature), "{bad}");
        }
    }

    #[test]
    fn parse_authorization_fields() {
        // An upper-case signature is accepted and normalized.
        let auth = authorization(GO_SET).replace(SIG_GO, &SIG_GO.to_uppercase());
        let a = parse_authorization(&auth).unwrap();
        assert_eq!(a.access_key, "AKTEST");
        assert_eq!(a.date, "20240102");
        assert_eq!(a.region, "cn-north-1");
        assert_eq!(a.service, "rtc");
        assert_eq!(a.signed_headers, GO_SET);
        assert_eq!(a.signature, SIG_GO);
        // Compact and spacious forms parse alike.
        let compact = format!(
            "HMAC-SHA256 Credential=AKTEST/20240102/cn-north-1/rtc/request,SignedHeaders=host;x-date,Signature={SIG_GO}"
        );
        let spacious = format!(
            "  HMAC-SHA256   Credential = AKTEST/20240102/cn-north-1/rtc/request ,  SignedHeaders=host;x-date , Signature={SIG_GO} "
        );
        assert_eq!(
            parse_authorization(&compact),
            parse_authorization(&spacious)
        );
        assert!(parse_authorization(&compact).is_ok());
    }

    #[test]
    fn error_codes() {
        let table = [
            (
                SignError::MissingParameter,
                "MissingParameter",
                100_002,
                400,
            ),
            (
                SignError::MissingAuthenticationToken,
                "MissingAuthenticationToken",
                100_003,
                401,
            ),
            (
                SignError::MissingSignature,
                "MissingSignature",
                100_005,
                401,
            ),
            (
                SignError::InvalidTimestamp,
                "InvalidTimestamp",
                100_006,
                403,
            ),
            (
                SignError::InvalidActionOrVersion,
                "InvalidActionOrVersion",
                100_008,
                404,
            ),
            (
                SignError::InvalidAccessKey,
                "InvalidAccessKey",
                100_009,
                401,
            ),
            (
                SignError::SignatureDoesNotMatch,
                "SignatureDoesNotMatch",
                100_010,
                401,
            ),
            (SignError::AccessDenied, "AccessDenied", 100_013, 403),
            (SignError::InternalError, "InternalError", 100_014, 500),
        ];
        for (e, code, n, status) in table {
            assert_eq!((e.code(), e.code_n(), e.http_status()), (code, n, status));
        }
    }

    #[test]
    fn canonical_query_cases() {
        let cases = [
            ("", ""),
            ("b=2&a=1", "a=1&b=2"),
            ("a=x%20y", "a=x%20y"),
            ("a=x+y", "a=x%20y"),
            ("a=x%2By", "a=x%2By"),
            ("a=x%2by", "a=x%2By"),
            ("a=%e4%b8%ad", "a=%E4%B8%AD"),
            ("a=中", "a=%E4%B8%AD"),
            ("a=~-._AZaz09", "a=~-._AZaz09"),
            ("a=!*'()", "a=%21%2A%27%28%29"),
            ("a", "a="),
            ("a=", "a="),
            ("a=1&a=0", "a=0&a=1"),
            ("&&a=1&", "a=1"),
            ("a=%zz&b=%4", "a=%25zz&b=%254"),
            ("a=b=c", "a=b%3Dc"),
            ("=v", "=v"),
            ("a%20b=1", "a%20b=1"),
            ("Z=1&a=1", "Z=1&a=1"),
        ];
        for (raw, want) in cases {
            assert_eq!(canonical_query(raw), want, "{raw:?}");
        }
        assert_eq!(canonical_query(QUERY), QUERY);
    }

    #[test]
    fn canonical_path_cases() {
        for (raw, want) in [
            ("", "/"),
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a b", "/a%20b"),
            ("/a%20b", "/a%20b"),
            ("/a+b", "/a%2Bb"),
            ("/%7euser", "/~user"),
        ] {
            assert_eq!(canonical_path(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn signing_key_is_chained_hmac() {
        let k = signing_key("SKTEST", "20240102", "cn-north-1", "rtc");
        let manual = hmac_sha256(
            &hmac_sha256(
                &hmac_sha256(&hmac_sha256(b"SKTEST", b"20240102"), b"cn-north-1"),
                b"rtc",
            ),
            b"request",
        );
        assert_eq!(k, manual);
    }

    #[test]
    fn x_date_parsing() {
        assert_eq!(parse_x_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_x_date(X_DATE), Some(1_704_164_645));
        assert_eq!(parse_x_date("20240229T235959Z"), Some(1_709_251_199));
        assert_eq!(parse_x_date("20000229T000000Z"), Some(951_782_400));
        assert_eq!(parse_x_date("19691231T235959Z"), Some(-1));
        assert_eq!(parse_x_date("99991231T235959Z"), Some(253_402_300_799));
        for bad in [
            "20230229T000000Z",
            "19000229T000000Z",
            "20240230T000000Z",
            "20240431T000000Z",
            "20240001T000000Z",
            "20241301T000000Z",
            "20240100T000000Z",
            "20240101T240000Z",
            "20240101T006000Z",
            "20240101T000060Z",
            "20240101 000000Z",
            "20240101T000000z",
            "20240101T000000",
            "20240101T0000000Z",
            "2024010+T000000Z",
            "-0240101T000000Z",
            "２0240101T00000Z",
            "",
        ] {
            assert_eq!(parse_x_date(bad), None, "{bad:?}");
        }
        assert_eq!(format_x_date(1_704_164_645), X_DATE);
        assert_eq!(format_x_date(0), "19700101T000000Z");
        assert_eq!(format_x_date(-1), "19691231T235959Z");
    }

    fn header_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "HMAC-SHA256 .{0,120}",
            "HMAC-SHA256 Credential=[A-Z/0-9a-z-]{0,40}, ?SignedHeaders=[a-zA-Z;-]{0,40}, ?Signature=[0-9a-fA-F]{0,70}",
            "[0-9]{8}T[0-9]{6}Z",
        ]
    }

    proptest! {
        #[test]
        fn x_date_roundtrip(t in -62_167_219_200i64..=253_402_300_799) {
            let s = format_x_date(t);
            prop_assert_eq!(parse_x_date(&s), Some(t));
        }

        #[test]
        fn parse_never_panics(s in header_strategy()) {
            let _ = parse_authorization(&s);
            let _ = parse_x_date(&s);
            let _ = canonical_query(&s);
            let _ = canonical_path(&s);
        }

        #[test]
        fn verify_never_panics(
            auth in header_strategy(),
            date in header_strategy(),
            extra in proptest::collection::vec(("[a-zA-Z-]{0,16}", any::<String>()), 0..4),
            query in any::<String>(),
            path in any::<String>(),
            body in proptest::collection::vec(any::<u8>(), 0..64),
            now in any::<i64>(),
            window in any::<i64>(),
        ) {
            let mut headers: Vec<(&str, &str)> =
                vec![("Authorization", auth.as_str()), ("X-Date", date.as_str())];
            headers.extend(extra.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            let r = SignRequest { method: "POST", path: &path, query: &query, headers: &headers, body: &body };
            let _ = verify(&r, |_| Some("SK".into()), now, window);
            let _ = verify(&r, |_| None, now, window);
        }

        #[test]
        fn sign_verify_roundtrip(
            query in "[a-zA-Z0-9=&%+ ._~-]{0,40}",
            body in proptest::collection::vec(any::<u8>(), 0..64),
            extra in "[ -~]{0,20}",
            skew in -900i64..=900,
        ) {
            let hash = hex_sha256(&body);
            let hs = [
                ("Host", "h.example"),
                ("X-Date", X_DATE),
                ("X-Content-Sha256", hash.as_str()),
                ("X-Extra", extra.as_str()),
            ];
            let r = SignRequest { method: "POST", path: "/", query: &query, headers: &hs, body: &body };
            let set = ["host", "x-date", "x-content-sha256", "x-extra"];
            let auth = sign(&r, "AKTEST", "SKTEST", "cn-north-1", "rtc", X_DATE, &set);
            let mut h = hs.to_vec();
            h.push(("Authorization", &auth));
            let r = SignRequest { headers: &h, ..r };
            prop_assert!(verify(&r, lookup, now() + skew, 900).is_ok());
        }
    }
}
