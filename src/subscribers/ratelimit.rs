//! How many sign-ups one client may ask for: `governor`'s keyed GCRA limiter
//! (`subscribers.max_requests_per_ip_per_hour`, refilling one request every
//! hour / N), keyed by the client's address: an IPv4 address, or the /64
//! network of an IPv6 one (one subscriber line gets a /64 or more, so
//! single IPv6 addresses cost an attacker nothing).
//!
//! Memory is bounded: keys whose state is as good as fresh are dropped
//! once there are [`MAX_KEYS`]; should that not be enough (an attacker
//! with more networks than that within the hour), the table starts over,
//! which lets a few requests through rather than growing without end.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

/// Keys kept before old ones are swept: about 5 MB of table.
pub const MAX_KEYS: usize = 100_000;

type Keyed<C> =
    RateLimiter<IpAddr, DashMapStateStore<IpAddr>, C, NoOpMiddleware<<C as Clock>::Instant>>;

pub struct SignupLimiter<C: Clock = DefaultClock> {
    /// `None` when the limit is 0: every request is refused.
    quota: Option<Quota>,
    clock: C,
    max_keys: usize,
    keyed: ArcSwap<Keyed<C>>,
}

impl SignupLimiter<DefaultClock> {
    pub fn per_hour(n: u32) -> SignupLimiter {
        SignupLimiter::with_clock(n, DefaultClock::default(), MAX_KEYS)
    }
}

impl<C: Clock + Clone> SignupLimiter<C> {
    pub fn with_clock(per_hour: u32, clock: C, max_keys: usize) -> SignupLimiter<C> {
        let quota = NonZeroU32::new(per_hour).map(Quota::per_hour);
        let keyed = ArcSwap::from_pointee(fresh(quota, &clock));
        SignupLimiter {
            quota,
            clock,
            max_keys,
            keyed,
        }
    }

    /// Takes one request of `ip`'s allowance; `Err` with how long until the
    /// next one is allowed.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let Some(quota) = self.quota else {
            return Err(Duration::from_secs(3600));
        };
        let keyed = self.keyed.load_full();
        let result = keyed
            .check_key(&key(ip))
            .map_err(|until| until.wait_time_from(self.clock.now()));
        if keyed.len() > self.max_keys {
            self.sweep(&keyed, quota);
        }
        result
    }

    /// Keys currently held.
    pub fn len(&self) -> usize {
        self.keyed.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn sweep(&self, keyed: &Arc<Keyed<C>>, quota: Quota) {
        keyed.retain_recent();
        keyed.shrink_to_fit();
        if keyed.len() > self.max_keys {
            tracing::warn!(
                keys = keyed.len(),
                "sign-up requests from more than {} networks within the hour; the per-address limits start over",
                self.max_keys
            );
            self.keyed.store(Arc::new(fresh(Some(quota), &self.clock)));
        }
    }
}

fn fresh<C: Clock + Clone>(quota: Option<Quota>, clock: &C) -> Keyed<C> {
    // Without a quota nothing is ever checked; any quota makes the table.
    let quota = quota.unwrap_or_else(|| Quota::per_hour(NonZeroU32::MIN));
    RateLimiter::dashmap_with_clock(quota, clock.clone())
}

/// The address an allowance belongs to: IPv4 as it is, IPv6 by its /64.
pub fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(network))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_addresses_share_their_64_and_ipv4_stands_alone() {
        assert_eq!(key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(key(ip("2001:db8:1:2:ffff::9")), key(ip("2001:db8:1:2::1")));
        assert_ne!(key(ip("2001:db8:1:3::1")), key(ip("2001:db8:1:2::1")));
        assert_eq!(key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(key(ip("192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn n_per_hour_per_network_then_one_more_each_hour_over_n() {
        let clock = FakeRelativeClock::default();
        let limiter = SignupLimiter::with_clock(3, clock.clone(), MAX_KEYS);
        for i in 0..3 {
            assert!(limiter.check(ip(&format!("2001:db8::{i}"))).is_ok(), "{i}");
        }
        let wait = limiter.check(ip("2001:db8::ffff")).unwrap_err();
        assert!(
            wait <= Duration::from_secs(1200) && wait > Duration::ZERO,
            "{wait:?}"
        );
        assert!(limiter.check(ip("2001:db8:0:1::1")).is_ok(), "another /64");
        assert!(limiter.check(ip("192.0.2.1")).is_ok());
        clock.advance(Duration::from_secs(1200));
        assert!(limiter.check(ip("2001:db8::5")).is_ok(), "refilled one");
        assert!(limiter.check(ip("2001:db8::5")).is_err());
    }

    #[test]
    fn the_table_stays_bounded_under_a_flood_of_networks() {
        let clock = FakeRelativeClock::default();
        let limiter = SignupLimiter::with_clock(10, clock.clone(), 1000);
        for i in 0..10_000u32 {
            let _ = limiter.check(IpAddr::from(i.to_be_bytes()));
            assert!(limiter.len() <= 1001, "{} keys after {i}", limiter.len());
        }
        // An hour later every old key is as good as new and is swept.
        clock.advance(Duration::from_secs(3600));
        for i in 0..1001u32 {
            let _ = limiter.check(IpAddr::from(((i + 1) << 20).to_be_bytes()));
        }
        assert!(limiter.len() <= 1001);
    }

    #[test]
    fn a_limit_of_zero_refuses_everyone() {
        let limiter = SignupLimiter::per_hour(0);
        assert!(limiter.check(ip("192.0.2.1")).is_err());
    }
}
