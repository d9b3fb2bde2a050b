//! The "001" token parser and verifier on arbitrary strings: they never panic, a token that
//! parses re-serializes to one that parses to the same content, and a token only verifies for
//! the app, key, user and room it was signed for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtm_protocol::token::{self, TokenError};

const APP: &str = "0123456789abcdef01234567";
const KEY: &str = "fuzzappkey";

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    // Arbitrary input: any outcome but a panic.
    let now = 1_700_000_000;
    let verified = token::verify(s, APP, KEY, "", "u", now);
    let parsed = token::parse(s);
    if let Err(e) = &parsed {
        assert!(
            matches!(e, TokenError::Malformed | TokenError::WrongVersion),
            "{e:?}"
        );
        assert_eq!(verified.as_ref().err(), Some(e));
        return;
    }
    let parsed = parsed.unwrap();
    // A fuzzer does not forge HMAC-SHA256: a token that verifies must carry the real MAC.
    if verified.is_ok() {
        assert!(parsed.signature_matches(KEY));
    }

    // Re-sign what was parsed (when it fits a token) and read it back.
    let t = parsed.token;
    if t.app_id.len() != token::APP_ID_LEN {
        return;
    }
    let Ok(signed) = t.try_serialize(KEY) else {
        return;
    };
    let back = token::parse(&signed).expect("a serialized token parses");
    assert_eq!(back.token, t);
    assert!(back.signature_matches(KEY));
    assert!(!back.signature_matches("another key"));
    if t.app_id == APP && !t.is_expired(now) {
        assert!(token::verify(&signed, APP, KEY, &t.room_id, &t.user_id, now).is_ok());
        let other_room = format!("{}x", t.room_id);
        assert_eq!(
            token::verify(&signed, APP, KEY, &other_room, &t.user_id, now).err(),
            Some(TokenError::WrongRoom)
        );
    }
});
