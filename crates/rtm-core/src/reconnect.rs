//! When to reconnect: a pure, swappable policy. The engine asks it for the delay before each
//! attempt and passes in the randomness, so a policy is a plain function of its inputs.

/// Why the connection ended without the engine asking for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LostCause {
    /// The transport closed (or failed to open), with this WebSocket close code.
    Closed(u16),
    /// The server sent a frame this client cannot decode.
    ProtocolError,
    /// Nothing arrived within the heartbeat bound, or a probe went unanswered.
    Heartbeat,
}

/// Decides how long to wait before a reconnect attempt.
///
/// ```
/// use rtm_core::{Backoff, LostCause, ReconnectPolicy};
/// let p = Backoff::default();
/// // Full jitter: the delay is `random` times the capped exponential bound.
/// assert_eq!(p.next_delay(1, 0, LostCause::Closed(1006), 0.5), Some(250));
/// assert_eq!(p.next_delay(4, 9_000, LostCause::Heartbeat, 0.5), Some(2_000));
/// assert_eq!(p.next_delay(30, 600_000, LostCause::Heartbeat, 0.999), Some(29_970));
/// ```
pub trait ReconnectPolicy {
    /// The delay in ms before attempt `attempt` (1 for the first attempt after a loss), when
    /// `elapsed_ms` have passed since the connection was lost for `cause`. `random` is
    /// uniform in `[0, 1)`. `None` gives up: the engine reports `RECONNECT_FAILED` and
    /// disconnects.
    fn next_delay(
        &self,
        attempt: u32,
        elapsed_ms: u64,
        cause: LostCause,
        random: f64,
    ) -> Option<u64>;
}

/// Exponential backoff with full jitter: `random × min(max_ms, base_ms × 2^(attempt − 1))`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    /// The bound of the first attempt, in ms (default 500).
    pub base_ms: u64,
    /// The largest bound, in ms (default 30,000).
    pub max_ms: u64,
    /// Give up once this long has passed since the loss (default: never).
    pub give_up_after_ms: Option<u64>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base_ms: 500,
            max_ms: 30_000,
            give_up_after_ms: None,
        }
    }
}

impl ReconnectPolicy for Backoff {
    fn next_delay(
        &self,
        attempt: u32,
        elapsed_ms: u64,
        _cause: LostCause,
        random: f64,
    ) -> Option<u64> {
        if self.give_up_after_ms.is_some_and(|g| elapsed_ms >= g) {
            return None;
        }
        let shift = attempt.saturating_sub(1).min(32);
        let bound = self.base_ms.saturating_mul(1u64 << shift).min(self.max_ms);
        Some((random.clamp(0.0, 1.0) * bound as f64) as u64)
    }
}

/// A small deterministic generator (xorshift64*) for the jitter: the engine holds no source
/// of randomness, it is seeded from outside ([`Engine::seed_random`](crate::Engine::seed_random)).
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        // splitmix64 of the seed: nearby seeds give unrelated streams, and never state 0.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 0x9E37_79B9_7F4A_7C15 } else { z })
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}
