//! An access token with its expiry, and the rule for when to stop reusing it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Reuse a token while more than this many seconds of it remain (buildx keeps a
/// helper's answer for 4 min 50 s)…
pub const MARGIN_SECS: u64 = 300;
/// …unless its whole lifetime is shorter than this, in which case it is reused
/// while more than half of it remains.
pub const SHORT_LIFETIME_SECS: u64 = 600;

/// The longest lifetime believed from an endpoint (Google's maximum is 12 h).
pub const MAX_LIFETIME_SECS: u64 = 12 * 3600;

/// How far a token's expiry may lie beyond its lifetime before the clock is
/// suspected of having gone back.
const CLOCK_SLACK_SECS: u64 = 60;

/// A Google OAuth access token. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// The bearer token handed to docker.
    pub secret: String,
    /// Unix time (our clock) at which it stops working; `None` if unknown.
    pub expires_at: Option<u64>,
    /// Its whole lifetime in seconds when it was minted.
    pub lifetime: u64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("secret", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// Seconds since the Unix epoch on our clock.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Token {
    /// A token that expires `expires_in` seconds from now (on our clock, so a
    /// server whose `Date` is skewed does not matter).
    pub fn expiring_in(secret: String, expires_in: u64) -> Self {
        // Google's tokens live at most 12 h; anything longer is not believed.
        let expires_in = expires_in.min(MAX_LIFETIME_SECS);
        Token {
            secret,
            expires_at: Some(now().saturating_add(expires_in)),
            lifetime: expires_in,
        }
    }

    /// Seconds that must remain for the token to be handed out again.
    pub fn min_remaining(lifetime: u64) -> u64 {
        if lifetime < SHORT_LIFETIME_SECS {
            lifetime / 2
        } else {
            MARGIN_SECS
        }
    }

    /// Whether the token may still be reused at time `at`. A token that claims to
    /// outlive its own lifetime (the clock went back since it was minted: a VM
    /// resumed, NTP stepped) is not trusted either.
    pub fn is_fresh_at(&self, at: u64) -> bool {
        match self.expires_at {
            Some(exp) => {
                let left = exp.saturating_sub(at);
                self.lifetime <= MAX_LIFETIME_SECS
                    && left > Self::min_remaining(self.lifetime)
                    && left <= self.lifetime.saturating_add(CLOCK_SLACK_SECS)
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(expires_at: u64, lifetime: u64) -> Token {
        Token {
            secret: "s".into(),
            expires_at: Some(expires_at),
            lifetime,
        }
    }

    #[test]
    fn hour_token_is_reused_until_five_minutes_remain() {
        let t = tok(10_000, 3600);
        assert!(t.is_fresh_at(10_000 - 301));
        assert!(!t.is_fresh_at(10_000 - 300));
        assert!(!t.is_fresh_at(10_001));
    }

    #[test]
    fn short_token_is_reused_while_more_than_half_remains() {
        let t = tok(1_300, 300);
        assert!(t.is_fresh_at(1_000));
        assert!(t.is_fresh_at(1_149));
        assert!(!t.is_fresh_at(1_150));
    }

    #[test]
    fn absurd_lifetimes_are_clamped_not_overflowed() {
        let t = Token::expiring_in("s".into(), u64::MAX);
        assert_eq!(t.lifetime, MAX_LIFETIME_SECS);
        assert!(t.is_fresh_at(now()));
        // A cache file with absurd numbers is judged (and refused) without overflowing.
        assert!(!tok(u64::MAX, u64::MAX).is_fresh_at(0));
    }

    #[test]
    fn a_token_from_the_future_is_not_trusted() {
        // Minted with 3600 s to live, yet 100000 s remain: the clock went back.
        let t = tok(1_000 + 100_000, 3600);
        assert!(!t.is_fresh_at(1_000));
        assert!(
            tok(1_000 + 3_600 + 30, 3600).is_fresh_at(1_000),
            "slack for rounding"
        );
    }

    #[test]
    fn unknown_expiry_is_never_reused() {
        let t = Token {
            secret: "s".into(),
            expires_at: None,
            lifetime: 0,
        };
        assert!(!t.is_fresh_at(0));
    }

    #[test]
    fn debug_hides_the_secret() {
        let t = Token::expiring_in("ya29.very-secret".into(), 60);
        assert!(!format!("{t:?}").contains("very-secret"));
    }
}
