//! The vendor-compatible "001" RTC access token (REFERENCE §6).
//!
//! A token is `"001"` ‖ AppID (exactly 24 bytes) ‖ base64-standard(content), where
//!
//! ```text
//! content = u16le(len(msg)) ‖ msg ‖ u16le(len(sig)) ‖ sig
//! msg     = u32le nonce ‖ u32le issuedAt ‖ u32le expireAt (0 = never)
//!           ‖ u16le(len) roomId ‖ u16le(len) userId
//!           ‖ u16le count ‖ count × (u16le privilegeId ‖ u32le expireTs), sorted by id
//! sig     = HMAC-SHA256(key = AppKey as UTF-8, data = msg)
//! ```
//!
//! Login tokens carry an empty room id. [`AccessToken::serialize`] produces tokens
//! byte-identical to the vendor's generator; [`parse`] decodes without checking the
//! signature (it never panics, and allocates at most in proportion to its input);
//! [`verify`] decodes and checks everything a server must check.
//!
//! This module reads no clock and draws no random numbers (it also runs in the browser):
//! callers supply `nonce`, `issued_at` and the current time.
//!
//! ```
//! use rtm_protocol::token::{verify, AccessToken, Privilege};
//! let mut t = AccessToken::new("0123456789abcdef01234567", "room1", "user1");
//! t.nonce = 12345678;
//! t.issued_at = 1_700_000_000;
//! t.expire_time(1_700_086_400)
//!     .add_privilege(Privilege::PublishStream, 1_700_086_400)
//!     .add_privilege(Privilege::SubscribeStream, 0);
//! let s = t.serialize("secretkey");
//! let parsed = verify(&s, "0123456789abcdef01234567", "secretkey", "room1", "user1", 1_700_000_001)
//!     .unwrap();
//! assert_eq!(parsed.token, t);
//! ```

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The version prefix of every token this module understands.
pub const VERSION: &str = "001";

/// The length of an AppID, in bytes.
pub const APP_ID_LEN: usize = 24;

/// Why a token was rejected (or could not be built).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a token: too short, invalid base64, truncated or trailing content, ids not UTF-8,
    /// duplicate privileges.
    #[error("malformed token")]
    Malformed,
    /// The token starts with a version other than "001".
    #[error("unsupported token version")]
    WrongVersion,
    /// The token was issued for another AppID.
    #[error("token issued for another app")]
    WrongAppId,
    /// The HMAC does not match (wrong app key, or the token was altered).
    #[error("token signature does not match")]
    BadSignature,
    /// The token's `expire_at` is in the past.
    #[error("token expired")]
    Expired,
    /// The token was issued for another user.
    #[error("token issued for another user")]
    WrongUser,
    /// The token was issued for another room.
    #[error("token issued for another room")]
    WrongRoom,
    /// Building a token: the AppID is not exactly 24 bytes.
    #[error("app id must be exactly 24 bytes")]
    InvalidAppId,
    /// Building a token: a field does not fit its 16-bit length prefix.
    #[error("token field too long")]
    TooLong,
}

/// A privilege a token grants (REFERENCE §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
#[non_exhaustive]
pub enum Privilege {
    /// Publish audio, video and data; adding it also adds the three below.
    PublishStream = 0,
    /// Publish audio.
    PublishAudioStream = 1,
    /// Publish video.
    PublishVideoStream = 2,
    /// Publish data.
    PublishDataStream = 3,
    /// Subscribe to others' streams.
    SubscribeStream = 4,
}

impl Privilege {
    /// The privilege id carried in the token.
    pub fn id(self) -> u16 {
        self as u16
    }
}

/// The content of a "001" token, before signing or after parsing.
///
/// `expire_at` and the privilege expiry times are Unix seconds; 0 means "never".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccessToken {
    /// The AppID (exactly 24 bytes for a serializable token).
    pub app_id: String,
    /// The room id; empty for login tokens.
    pub room_id: String,
    /// The user id.
    pub user_id: String,
    /// A nonce chosen by the issuer (the vendor uses a random number).
    pub nonce: u32,
    /// When the token was issued (Unix seconds). Informational: [`verify`] ignores it.
    pub issued_at: u32,
    /// When the token expires (Unix seconds); 0 = never.
    pub expire_at: u32,
    /// Privilege id → expiry (Unix seconds, 0 = never).
    pub privileges: BTreeMap<u16, u32>,
}

impl AccessToken {
    /// A token for `user_id` in `room_id` (empty for a login token) of `app_id`, with nonce 0,
    /// `issued_at` 0, no expiry and no privileges. Set `nonce` and `issued_at` directly: this
    /// module reads no clock and has no random source.
    pub fn new(
        app_id: impl Into<String>,
        room_id: impl Into<String>,
        user_id: impl Into<String>,
    ) -> Self {
        AccessToken {
            app_id: app_id.into(),
            room_id: room_id.into(),
            user_id: user_id.into(),
            nonce: 0,
            issued_at: 0,
            expire_at: 0,
            privileges: BTreeMap::new(),
        }
    }

    /// Grants `privilege` until `expire_ts` (Unix seconds, 0 = never). As in the vendor's
    /// generator, [`Privilege::PublishStream`] also grants the audio, video and data privileges
    /// (ids 1, 2 and 3).
    pub fn add_privilege(&mut self, privilege: Privilege, expire_ts: u32) -> &mut Self {
        self.privileges.insert(privilege.id(), expire_ts);
        if privilege == Privilege::PublishStream {
            for p in [
                Privilege::PublishAudioStream,
                Privilege::PublishVideoStream,
                Privilege::PublishDataStream,
            ] {
                self.privileges.insert(p.id(), expire_ts);
            }
        }
        self
    }

    /// Sets the token's expiry (Unix seconds, 0 = never).
    pub fn expire_time(&mut self, expire_ts: u32) -> &mut Self {
        self.expire_at = expire_ts;
        self
    }

    /// Whether the token is expired at `now` (Unix seconds): `expire_at > 0 && now > expire_at`.
    pub fn is_expired(&self, now: u64) -> bool {
        self.expire_at > 0 && now > u64::from(self.expire_at)
    }

    /// The signed message (`msg` of REFERENCE §6).
    fn pack_msg(&self) -> Result<Vec<u8>, TokenError> {
        let mut msg = Vec::with_capacity(
            20 + self.room_id.len() + self.user_id.len() + 6 * self.privileges.len(),
        );
        msg.extend_from_slice(&self.nonce.to_le_bytes());
        msg.extend_from_slice(&self.issued_at.to_le_bytes());
        msg.extend_from_slice(&self.expire_at.to_le_bytes());
        put_bytes(&mut msg, self.room_id.as_bytes())?;
        put_bytes(&mut msg, self.user_id.as_bytes())?;
        put_u16(&mut msg, self.privileges.len())?;
        for (id, ts) in &self.privileges {
            msg.extend_from_slice(&id.to_le_bytes());
            msg.extend_from_slice(&ts.to_le_bytes());
        }
        Ok(msg)
    }

    /// Signs the token with `app_key` and returns its string form, or an error when the
    /// AppID is not exactly 24 bytes or a field does not fit its 16-bit length.
    pub fn try_serialize(&self, app_key: &str) -> Result<String, TokenError> {
        if self.app_id.len() != APP_ID_LEN {
            return Err(TokenError::InvalidAppId);
        }
        let msg = self.pack_msg()?;
        let sig = hmac_sha256(app_key.as_bytes(), &msg);
        let mut content = Vec::with_capacity(msg.len() + sig.len() + 4);
        put_bytes(&mut content, &msg)?;
        put_bytes(&mut content, &sig)?;
        let mut out = String::with_capacity(3 + APP_ID_LEN + content.len().div_ceil(3) * 4);
        out.push_str(VERSION);
        out.push_str(&self.app_id);
        STANDARD.encode_string(&content, &mut out);
        Ok(out)
    }

    /// Signs the token with `app_key` (HMAC-SHA256, key = the app key's UTF-8 bytes) and
    /// returns `"001" ‖ AppID ‖ base64(content)`, exactly as the vendor's generator does.
    ///
    /// # Panics
    ///
    /// When [`try_serialize`](Self::try_serialize) fails: the AppID is not 24 bytes, an id is
    /// longer than 65,535 bytes, or the privileges do not fit (none of which happens with
    /// valid ids of at most 128 bytes and the five known privileges).
    pub fn serialize(&self, app_key: &str) -> String {
        match self.try_serialize(app_key) {
            Ok(s) => s,
            Err(e) => panic!("cannot serialize access token: {e}"),
        }
    }
}

/// A decoded token: its content, its signature, and the bytes the signature covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ParsedToken {
    /// The token's content.
    pub token: AccessToken,
    /// The signature carried in the token (32 bytes when issued by a conforming generator).
    pub signature: Vec<u8>,
    /// The signed message, exactly as carried in the token.
    msg: Vec<u8>,
}

impl ParsedToken {
    /// Whether the signature is the HMAC-SHA256 of the message under `app_key`, compared in
    /// constant time.
    pub fn signature_matches(&self, app_key: &str) -> bool {
        let expected = hmac_sha256(app_key.as_bytes(), &self.msg);
        bool::from(expected.as_slice().ct_eq(&self.signature))
    }
}

/// The expiry (`expire_at`, Unix seconds, 0 = never) of a well-formed token, read from its
/// first bytes without decoding the rest, allocating, or checking anything else: for clients
/// that schedule a renewal (a client never verifies tokens). `None` when the token does not
/// start like a "001" token. Agrees with [`parse`] on every token `parse` accepts.
pub fn expire_at(token: &str) -> Option<u32> {
    let encoded = token.strip_prefix(VERSION)?.as_bytes().get(APP_ID_LEN..)?;
    // u16le msg length, then u32le nonce, u32le issuedAt, u32le expireAt: 14 bytes, in the
    // first 20 base64 characters (15 bytes).
    let mut head = [0u8; 15];
    for (chunk, out) in encoded.get(..20)?.chunks(4).zip(head.chunks_mut(3)) {
        let mut n: u32 = 0;
        for &c in chunk {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                _ => return None,
            };
            n = n << 6 | u32::from(v);
        }
        out.copy_from_slice(&n.to_be_bytes()[1..]);
    }
    if u16::from_le_bytes([head[0], head[1]]) < 12 {
        return None;
    }
    Some(u32::from_le_bytes([head[10], head[11], head[12], head[13]]))
}

/// Decodes a token without checking its signature, expiry or ids.
///
/// Errors: [`TokenError::WrongVersion`] when the token starts with three digits other than
/// "001", [`TokenError::Malformed`] for anything else that is not a well-formed token.
/// Never panics; allocates at most in proportion to `token.len()`.
pub fn parse(token: &str) -> Result<ParsedToken, TokenError> {
    let b = token.as_bytes();
    if !token.starts_with(VERSION) {
        return Err(if b.len() >= 3 && b[..3].iter().all(u8::is_ascii_digit) {
            TokenError::WrongVersion
        } else {
            TokenError::Malformed
        });
    }
    let app_id = token
        .get(VERSION.len()..VERSION.len() + APP_ID_LEN)
        .ok_or(TokenError::Malformed)?;
    let encoded = &token[VERSION.len() + APP_ID_LEN..];
    let content = STANDARD
        .decode(encoded)
        .map_err(|_| TokenError::Malformed)?;

    let mut r = Reader(&content);
    let msg = r.bytes()?;
    let signature = r.bytes()?;
    r.end()?;

    let mut m = Reader(msg);
    let nonce = m.u32()?;
    let issued_at = m.u32()?;
    let expire_at = m.u32()?;
    let room_id = m.string()?;
    let user_id = m.string()?;
    let count = m.u16()?;
    let mut privileges = BTreeMap::new();
    for _ in 0..count {
        let id = m.u16()?;
        let ts = m.u32()?;
        if privileges.insert(id, ts).is_some() {
            return Err(TokenError::Malformed);
        }
    }
    m.end()?;

    Ok(ParsedToken {
        token: AccessToken {
            app_id: app_id.to_owned(),
            room_id,
            user_id,
            nonce,
            issued_at,
            expire_at,
            privileges,
        },
        signature: signature.to_vec(),
        msg: msg.to_vec(),
    })
}

/// Decodes and checks a token, in this order: format ([`TokenError::Malformed`],
/// [`TokenError::WrongVersion`]), AppID ([`TokenError::WrongAppId`]), signature
/// ([`TokenError::BadSignature`], HMAC-SHA256 keyed with `app_key`, compared in constant
/// time), expiry at `now` in Unix seconds ([`TokenError::Expired`] when
/// `expire_at > 0 && now > expire_at`), user ([`TokenError::WrongUser`]) and room
/// ([`TokenError::WrongRoom`]; pass `""` for login tokens).
///
/// Privileges are not checked; they are in the returned token.
pub fn verify(
    token: &str,
    app_id: &str,
    app_key: &str,
    room_id: &str,
    user_id: &str,
    now: u64,
) -> Result<ParsedToken, TokenError> {
    let parsed = parse(token)?;
    if parsed.token.app_id != app_id {
        return Err(TokenError::WrongAppId);
    }
    if !parsed.signature_matches(app_key) {
        return Err(TokenError::BadSignature);
    }
    if parsed.token.is_expired(now) {
        return Err(TokenError::Expired);
    }
    if parsed.token.user_id != user_id {
        return Err(TokenError::WrongUser);
    }
    if parsed.token.room_id != room_id {
        return Err(TokenError::WrongRoom);
    }
    Ok(parsed)
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn put_u16(out: &mut Vec<u8>, n: usize) -> Result<(), TokenError> {
    let n = u16::try_from(n).map_err(|_| TokenError::TooLong)?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) -> Result<(), TokenError> {
    put_u16(out, b.len())?;
    out.extend_from_slice(b);
    Ok(())
}

/// A bounds-checked little-endian reader; every failure is [`TokenError::Malformed`].
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TokenError> {
        if self.0.len() < n {
            return Err(TokenError::Malformed);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16, TokenError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, TokenError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn bytes(&mut self) -> Result<&'a [u8], TokenError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    fn string(&mut self) -> Result<String, TokenError> {
        let b = self.bytes()?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| TokenError::Malformed)
    }

    fn end(&self) -> Result<(), TokenError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(TokenError::Malformed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const APP_ID: &str = "0123456789abcdef01234567";
    const APP_KEY: &str = "secretkey";
    const NOW: u64 = 1_700_000_001;
    const ROOM_TOKEN: &str = "0010123456789abcdef01234567OgBOYbwAAPFTZYBCVWUFAHJvb20xBQB1c2VyMQUAAACAQlVlAQCAQlVlAgCAQlVlAwCAQlVlBAAAAAAAIADbTMy6ijYSFigI7Eaz35YNOvfH07KBzJmWBcsGPp4mOg==";
    const LOGIN_TOKEN: &str = "0010123456789abcdef01234567FwABAAAAAPFTZQAAAAAAAAUAdXNlcjEAACAAfL8kkJUZhMO5ozsnps043DICx/J03emZUYGT6dJ1//U=";

    fn room_token() -> AccessToken {
        let mut t = AccessToken::new(APP_ID, "room1", "user1");
        t.nonce = 12_345_678;
        t.issued_at = 1_700_000_000;
        t.expire_time(1_700_086_400)
            .add_privilege(Privilege::PublishStream, 1_700_086_400)
            .add_privilege(Privilege::SubscribeStream, 0);
        t
    }

    fn login_token() -> AccessToken {
        let mut t = AccessToken::new(APP_ID, "", "user1");
        t.nonce = 1;
        t.issued_at = 1_700_000_000;
        t
    }

    /// Re-encodes `content` behind the prefix and AppID of a token.
    fn with_content(content: &[u8]) -> String {
        format!("{VERSION}{APP_ID}{}", STANDARD.encode(content))
    }

    fn content_of(token: &str) -> Vec<u8> {
        STANDARD.decode(&token[27..]).unwrap()
    }

    #[test]
    fn expire_at_reads_the_expiry_alone() {
        assert_eq!(expire_at(ROOM_TOKEN), Some(1_700_086_400));
        assert_eq!(expire_at(LOGIN_TOKEN), Some(0));
        for t in [
            "",
            "001",
            "002abc",
            &ROOM_TOKEN[..40],
            "0010123456789abcdef01234567!!!!AAAAAAAAAAAAAAAAAAAA",
        ] {
            assert_eq!(expire_at(t), None, "{t:?}");
        }
        for expire in [1, 0x7f, 0x80, 0xffff, 0x0100_0000, u32::MAX] {
            let mut t = room_token();
            t.expire_time(expire);
            let s = t.serialize(APP_KEY);
            assert_eq!(expire_at(&s), Some(parse(&s).unwrap().token.expire_at));
        }
    }

    #[test]
    fn vectors_serialize_exactly() {
        assert_eq!(room_token().serialize(APP_KEY), ROOM_TOKEN);
        assert_eq!(login_token().serialize(APP_KEY), LOGIN_TOKEN);
    }

    #[test]
    fn publish_stream_sets_four_privileges() {
        let t = room_token();
        let ids: Vec<u16> = t.privileges.keys().copied().collect();
        assert_eq!(ids, [0, 1, 2, 3, 4]);
        assert_eq!(t.privileges[&2], 1_700_086_400);
        assert_eq!(t.privileges[&4], 0);
    }

    #[test]
    fn vectors_verify() {
        let p = verify(ROOM_TOKEN, APP_ID, APP_KEY, "room1", "user1", NOW).unwrap();
        assert_eq!(p.token, room_token());
        assert_eq!(p.signature.len(), 32);
        let p = verify(LOGIN_TOKEN, APP_ID, APP_KEY, "", "user1", NOW).unwrap();
        assert_eq!(p.token, login_token());
        assert_eq!(parse(ROOM_TOKEN).unwrap().token, room_token());
    }

    #[test]
    fn flipped_signature_byte() {
        let mut c = content_of(ROOM_TOKEN);
        let last = c.len() - 1;
        c[last] ^= 1;
        let t = with_content(&c);
        assert_eq!(
            verify(&t, APP_ID, APP_KEY, "room1", "user1", NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn altered_message_fails_signature() {
        // Change the user id "user1" -> "user2" inside msg.
        let mut c = content_of(ROOM_TOKEN);
        let pos = c.windows(5).position(|w| w == b"user1").unwrap();
        c[pos + 4] = b'2';
        let t = with_content(&c);
        assert_eq!(
            verify(&t, APP_ID, APP_KEY, "room1", "user2", NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn wrong_app_key() {
        assert_eq!(
            verify(ROOM_TOKEN, APP_ID, "secretkez", "room1", "user1", NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn expired() {
        assert!(verify(ROOM_TOKEN, APP_ID, APP_KEY, "room1", "user1", 1_700_086_400).is_ok());
        assert_eq!(
            verify(ROOM_TOKEN, APP_ID, APP_KEY, "room1", "user1", 1_700_086_401),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn expire_zero_never_expires() {
        assert!(verify(LOGIN_TOKEN, APP_ID, APP_KEY, "", "user1", u64::MAX).is_ok());
    }

    #[test]
    fn wrong_user_room_app() {
        assert_eq!(
            verify(ROOM_TOKEN, APP_ID, APP_KEY, "room1", "user2", NOW),
            Err(TokenError::WrongUser)
        );
        assert_eq!(
            verify(ROOM_TOKEN, APP_ID, APP_KEY, "room2", "user1", NOW),
            Err(TokenError::WrongRoom)
        );
        assert_eq!(
            verify(LOGIN_TOKEN, APP_ID, APP_KEY, "room1", "user1", NOW),
            Err(TokenError::WrongRoom)
        );
        assert_eq!(
            verify(
                ROOM_TOKEN,
                "0123456789abcdef01234568",
                APP_KEY,
                "room1",
                "user1",
                NOW
            ),
            Err(TokenError::WrongAppId)
        );
        assert_eq!(
            verify(ROOM_TOKEN, "short", APP_KEY, "room1", "user1", NOW),
            Err(TokenError::WrongAppId)
        );
    }

    #[test]
    fn check_order() {
        // Wrong app id wins over a bad key; a bad key wins over expiry, user and room;
        // expiry wins over user and room; user wins over room.
        let other = "0123456789abcdef0123456X";
        assert_eq!(
            verify(ROOM_TOKEN, other, "x", "r", "u", u64::MAX),
            Err(TokenError::WrongAppId)
        );
        assert_eq!(
            verify(ROOM_TOKEN, APP_ID, "x", "r", "u", u64::MAX),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(ROOM_TOKEN, APP_ID, APP_KEY, "r", "u", u64::MAX),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(ROOM_TOKEN, APP_ID, APP_KEY, "r", "u", NOW),
            Err(TokenError::WrongUser)
        );
    }

    #[test]
    fn garbage_and_truncation() {
        for bad in [
            "",
            "0",
            "00",
            "001",
            "0010123456789abcdef0123456",
            "abc",
            "Bearer xyz",
            "001é123456789abcdef012345670",
        ] {
            assert_eq!(parse(bad), Err(TokenError::Malformed), "{bad:?}");
        }
        assert_eq!(parse("002").map(|_| ()), Err(TokenError::WrongVersion));
        let v2 = format!("002{}", &ROOM_TOKEN[3..]);
        assert_eq!(
            verify(&v2, APP_ID, APP_KEY, "room1", "user1", NOW),
            Err(TokenError::WrongVersion)
        );
        // Nothing after the AppID: empty content.
        assert_eq!(parse(&ROOM_TOKEN[..27]), Err(TokenError::Malformed));
        // Every truncation of the token string fails.
        for n in 0..ROOM_TOKEN.len() {
            assert!(parse(&ROOM_TOKEN[..n]).is_err(), "prefix {n}");
        }
        // Every truncation of the content fails, as does trailing content.
        let c = content_of(ROOM_TOKEN);
        for n in 0..c.len() {
            assert_eq!(parse(&with_content(&c[..n])), Err(TokenError::Malformed));
        }
        let mut long = c.clone();
        long.push(0);
        assert_eq!(parse(&with_content(&long)), Err(TokenError::Malformed));
    }

    #[test]
    fn not_base64() {
        for tail in ["!!!!", "AAA", "AA=A", "A===", "Og B", "OgB-"] {
            let t = format!("001{APP_ID}{tail}");
            assert_eq!(parse(&t), Err(TokenError::Malformed), "{tail:?}");
        }
        // URL-safe alphabet is not accepted.
        let url = LOGIN_TOKEN.replace('/', "_");
        assert_eq!(parse(&url), Err(TokenError::Malformed));
        // Missing padding is not accepted.
        let unpadded = LOGIN_TOKEN.trim_end_matches('=');
        assert_eq!(parse(unpadded), Err(TokenError::Malformed));
    }

    #[test]
    fn duplicate_privileges_and_bad_utf8() {
        let mut t = AccessToken::new(APP_ID, "r", "u");
        t.add_privilege(Privilege::SubscribeStream, 7);
        let mut msg = t.pack_msg().unwrap();
        // count 1 -> 2, then repeat the privilege entry.
        let n = msg.len();
        msg[n - 8] = 2;
        msg.extend_from_slice(&4u16.to_le_bytes());
        msg.extend_from_slice(&7u32.to_le_bytes());
        let mut c = Vec::new();
        put_bytes(&mut c, &msg).unwrap();
        put_bytes(&mut c, &hmac_sha256(APP_KEY.as_bytes(), &msg)).unwrap();
        assert_eq!(parse(&with_content(&c)), Err(TokenError::Malformed));

        let mut msg = AccessToken::new(APP_ID, "r", "u").pack_msg().unwrap();
        msg[14] = 0xff; // the room id byte
        let mut c = Vec::new();
        put_bytes(&mut c, &msg).unwrap();
        put_bytes(&mut c, &[0; 32]).unwrap();
        assert_eq!(parse(&with_content(&c)), Err(TokenError::Malformed));
    }

    #[test]
    fn serialize_limits() {
        let t = AccessToken::new("short", "", "u");
        assert_eq!(t.try_serialize(APP_KEY), Err(TokenError::InvalidAppId));
        let t = AccessToken::new(APP_ID, "r".repeat(70_000), "u");
        assert_eq!(t.try_serialize(APP_KEY), Err(TokenError::TooLong));
        let mut t = AccessToken::new(APP_ID, "", "u");
        t.privileges = (0..=u16::MAX).map(|i| (i, 0)).collect();
        assert_eq!(t.try_serialize(APP_KEY), Err(TokenError::TooLong));
    }

    #[test]
    fn roundtrip_utf8_ids() {
        let mut t = AccessToken::new(APP_ID, "ruum-é", "üser");
        t.nonce = u32::MAX;
        t.issued_at = 5;
        t.expire_time(9)
            .add_privilege(Privilege::PublishAudioStream, 3);
        let s = t.serialize("ключ");
        let p = verify(&s, APP_ID, "ключ", "ruum-é", "üser", 9).unwrap();
        assert_eq!(p.token, t);
        assert_eq!(
            verify(&s, APP_ID, "ключ", "ruum-é", "üser", 10),
            Err(TokenError::Expired)
        );
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Flip(usize, u8),
        Truncate(usize),
        Insert(usize, u8),
        Remove(usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), 1u8..).prop_map(|(i, b)| Mutation::Flip(i, b)),
            any::<usize>().prop_map(Mutation::Truncate),
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
            any::<usize>().prop_map(Mutation::Remove),
        ]
    }

    fn apply(mut v: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
        for m in ms {
            let len = v.len();
            match *m {
                Mutation::Flip(i, b) if len > 0 => v[i % len] ^= b,
                Mutation::Truncate(i) => v.truncate(i % (len + 1)),
                Mutation::Insert(i, b) => v.insert(i % (len + 1), b),
                Mutation::Remove(i) if len > 0 => {
                    v.remove(i % len);
                }
                _ => {}
            }
        }
        v
    }

    fn check_no_panic(s: &str) {
        let _ = parse(s);
        let _ = verify(s, APP_ID, APP_KEY, "room1", "user1", NOW);
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_strings(s in any::<String>()) {
            check_no_panic(&s);
        }

        #[test]
        fn parse_never_panics_on_token_like(s in "001[0-9a-f]{24}[A-Za-z0-9+/=]{0,200}") {
            check_no_panic(&s);
        }

        #[test]
        fn parse_never_panics_on_mutated_content(
            which in any::<bool>(),
            ms in proptest::collection::vec(mutation(), 1..6),
        ) {
            let base = if which { ROOM_TOKEN } else { LOGIN_TOKEN };
            let c = apply(content_of(base), &ms);
            let t = with_content(&c);
            check_no_panic(&t);
            // Only an unchanged token verifies.
            let room = if which { "room1" } else { "" };
            if verify(&t, APP_ID, APP_KEY, room, "user1", NOW).is_ok() {
                prop_assert_eq!(c, content_of(base));
            }
        }

        #[test]
        fn parse_never_panics_on_mutated_strings(
            which in any::<bool>(),
            ms in proptest::collection::vec(mutation(), 1..6),
        ) {
            let base = if which { ROOM_TOKEN } else { LOGIN_TOKEN };
            let bytes = apply(base.as_bytes().to_vec(), &ms);
            let s = String::from_utf8_lossy(&bytes);
            check_no_panic(&s);
        }

        #[test]
        fn serialize_parse_roundtrip(
            room in "[a-zA-Z0-9@._-]{0,128}",
            user in "[a-zA-Z0-9@._-]{1,128}",
            nonce in any::<u32>(),
            issued in any::<u32>(),
            expire in any::<u32>(),
            privs in proptest::collection::btree_map(any::<u16>(), any::<u32>(), 0..8),
        ) {
            let mut t = AccessToken::new(APP_ID, room.clone(), user.clone());
            t.nonce = nonce;
            t.issued_at = issued;
            t.expire_at = expire;
            t.privileges = privs;
            let s = t.serialize(APP_KEY);
            let p = verify(&s, APP_ID, APP_KEY, &room, &user, u64::from(expire)).unwrap();
            prop_assert_eq!(p.token, t);
        }
    }
}
