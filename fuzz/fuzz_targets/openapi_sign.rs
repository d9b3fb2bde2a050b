//! The OpenAPI request parser: `parse_authorization` and `verify` with arbitrary headers,
//! query and body never panic; a request signed by `sign` always verifies, and verifies no
//! longer once its body, query or a signed header changes.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rtm_protocol::sign::{
    self, format_x_date, hex_sha256, parse_authorization, parse_x_date, SignError, SignRequest,
};

const NOW: i64 = 1_704_164_645;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    body: &'a [u8],
    /// Used raw as the Authorization header in the first half.
    authorization: &'a str,
    /// Seconds between the request's X-Date and the server's clock.
    skew: i16,
    ak: &'a str,
    flip: u16,
}

fn lookup(ak: &str) -> Option<String> {
    (!ak.is_empty() && ak.len() < 64).then(|| format!("sk-{ak}"))
}

fuzz_target!(|inp: Input<'_>| {
    // 1. Arbitrary input.
    let _ = parse_authorization(inp.authorization);
    let _ = parse_x_date(inp.query);
    let mut headers = inp.headers.clone();
    headers.push(("Authorization", inp.authorization));
    let req = SignRequest {
        method: inp.method,
        path: inp.path,
        query: inp.query,
        headers: &headers,
        body: inp.body,
    };
    if let Err(e) = sign::verify(&req, lookup, NOW, sign::DEFAULT_WINDOW_SECS) {
        // Only the documented errors of verify.
        assert!(matches!(
            e,
            SignError::MissingAuthenticationToken
                | SignError::MissingSignature
                | SignError::InvalidTimestamp
                | SignError::InvalidAccessKey
                | SignError::SignatureDoesNotMatch
        ));
    }

    // 2. A correctly signed request with arbitrary method, path, query, extra headers, body.
    let ak: String = inp.ak.chars().filter(char::is_ascii_alphanumeric).collect();
    let Some(sk) = lookup(&ak) else {
        return;
    };
    let reserved = ["authorization", "x-date", "x-content-sha256"];
    let mut headers: Vec<(&str, &str)> = inp
        .headers
        .iter()
        .copied()
        .filter(|(n, _)| !reserved.iter().any(|r| n.trim().eq_ignore_ascii_case(r)))
        .collect();
    let x_date = format_x_date(NOW + i64::from(inp.skew));
    let hash = hex_sha256(inp.body);
    headers.push(("X-Date", &x_date));
    headers.push(("X-Content-Sha256", &hash));
    let method = if inp.method.is_empty() {
        "POST"
    } else {
        inp.method
    };
    let req = SignRequest {
        method,
        path: inp.path,
        query: inp.query,
        headers: &headers,
        body: inp.body,
    };
    let auth = sign::sign(
        &req,
        &ak,
        &sk,
        "cn-north-1",
        "rtc",
        &x_date,
        &["x-date", "x-content-sha256"],
    );
    let parsed = parse_authorization(&auth).expect("sign() produces a parsable header");
    assert_eq!(parsed.access_key, ak);
    let mut signed_headers = headers.clone();
    signed_headers.push(("Authorization", &auth));
    let req = SignRequest {
        headers: &signed_headers,
        ..req
    };
    let ok = sign::verify(&req, lookup, NOW, sign::DEFAULT_WINDOW_SECS);
    let in_window = i64::from(inp.skew).abs() <= sign::DEFAULT_WINDOW_SECS;
    if in_window {
        let v = ok.unwrap_or_else(|e| panic!("a signed request fails to verify: {e:?}"));
        assert_eq!(v.access_key, ak);
    } else {
        assert_eq!(ok.err(), Some(SignError::InvalidTimestamp));
        return;
    }

    // 3. Any change to the body is caught.
    let mut body = inp.body.to_vec();
    if body.is_empty() {
        body.push(0);
    } else {
        let i = usize::from(inp.flip) % body.len();
        body[i] ^= 1 << (inp.flip % 8);
    }
    let tampered = SignRequest { body: &body, ..req };
    assert_eq!(
        sign::verify(&tampered, lookup, NOW, sign::DEFAULT_WINDOW_SECS).err(),
        Some(SignError::SignatureDoesNotMatch)
    );
    // An unknown key is told apart from a bad signature.
    assert_eq!(
        sign::verify(&req, |_| None, NOW, sign::DEFAULT_WINDOW_SECS).err(),
        Some(SignError::InvalidAccessKey)
    );
});
