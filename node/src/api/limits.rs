//! Per-client bounds of the HTTP API: a token-bucket request rate limit and a cap on simultaneous connections, both keyed by client address (IPv4 address, or IPv6 /64 network).
//!
//! A client is one IPv4 address or one IPv6 /64 (one host usually owns a whole /64, so
//! per-address keys would let it rotate freely). IPv4-mapped IPv6 addresses count as IPv4.
//!
//! Memory is bounded: at most [`CLIENTS_MAX`] buckets are kept. When the table is full, buckets
//! that have refilled completely (they carry no state) are dropped, at most once per
//! [`SWEEP_INTERVAL`]; if it is still full, new clients share one overflow bucket with the same
//! limit, so a flood from many addresses slows down only the newcomers, never the clients
//! already known.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most clients with a rate-limit bucket at once.
pub const CLIENTS_MAX: usize = 4096;
/// Least time between two sweeps of the bucket table.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(100);

/// A per-client request rate: `per_second` requests on average, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// Who a request counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6Net([u8; 8]),
    /// Every client that found the table full.
    Overflow,
}

impl ClientKey {
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(v4.octets()),
                None => {
                    let o = v6.octets();
                    ClientKey::V6Net([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
                }
            },
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
struct Table {
    buckets: HashMap<ClientKey, Bucket>,
    last_sweep: Option<Instant>,
}

/// The request-rate limiter shared by every connection.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    table: Mutex<Table>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> RateLimiter {
        let limit = RateLimit { per_second: limit.per_second.max(1), burst: limit.burst.max(1) };
        RateLimiter { limit, table: Mutex::new(Table { buckets: HashMap::new(), last_sweep: None }) }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes one token for `ip` at `now`: `Ok`, or `Err(wait)` until a token is available.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(self.limit.per_second);
        let burst = f64::from(self.limit.burst);
        let refill = |b: &Bucket| (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate).min(burst);
        let mut table = match self.table.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut key = ClientKey::of(ip);
        if !table.buckets.contains_key(&key) && table.buckets.len() >= CLIENTS_MAX {
            let due = table.last_sweep.is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_INTERVAL);
            if due {
                table.last_sweep = Some(now);
                table.buckets.retain(|k, b| *k == ClientKey::Overflow || refill(b) < burst);
            }
            if table.buckets.len() >= CLIENTS_MAX {
                key = ClientKey::Overflow;
            }
        }
        let bucket = table.buckets.entry(key).or_insert(Bucket { tokens: burst, at: now });
        bucket.tokens = refill(bucket);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }

    /// Clients with a bucket now (≤ [`CLIENTS_MAX`] + 1 with the overflow bucket).
    pub fn clients(&self) -> usize {
        match self.table.lock() {
            Ok(t) => t.buckets.len(),
            Err(poisoned) => poisoned.into_inner().buckets.len(),
        }
    }
}

/// Open connections per client, capped; a slot is given back when its guard drops.
#[derive(Debug)]
pub struct ConnectionCounter {
    max: usize,
    open: Mutex<HashMap<ClientKey, usize>>,
}

/// One counted connection; dropping it frees the slot.
#[derive(Debug)]
pub struct ConnectionSlot {
    counter: Arc<ConnectionCounter>,
    key: ClientKey,
}

impl ConnectionCounter {
    pub fn new(max: usize) -> ConnectionCounter {
        ConnectionCounter { max: max.max(1), open: Mutex::new(HashMap::new()) }
    }

    /// A slot for a connection from `ip`, or `None` when that client has `max` open already.
    /// The map holds only clients with open connections, so it is bounded by the global
    /// connection cap.
    pub fn open(self: &Arc<Self>, ip: IpAddr) -> Option<ConnectionSlot> {
        let key = ClientKey::of(ip);
        let mut open = match self.open.lock() {
            Ok(o) => o,
            Err(poisoned) => poisoned.into_inner(),
        };
        let n = open.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot { counter: self.clone(), key })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = match self.counter.open.lock() {
            Ok(o) => o,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn a_client_gets_its_burst_then_the_rate() {
        let rl = RateLimiter::new(RateLimit { per_second: 10, burst: 3 });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(rl.check(A, t0), Ok(()));
        }
        let wait = rl.check(A, t0).unwrap_err();
        assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100), "{wait:?}");
        // Another client is not affected.
        assert_eq!(rl.check(B, t0), Ok(()));
        // 100 ms later one more token has come back, and only one.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(rl.check(A, t1), Ok(()));
        assert!(rl.check(A, t1).is_err());
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_and_mapped_v4_as_v4() {
        let a = "2001:db8:1:2::1".parse::<Ipv6Addr>().unwrap();
        let b = "2001:db8:1:2:ffff::9".parse::<Ipv6Addr>().unwrap();
        let c = "2001:db8:1:3::1".parse::<Ipv6Addr>().unwrap();
        assert_eq!(ClientKey::of(IpAddr::V6(a)), ClientKey::of(IpAddr::V6(b)));
        assert_ne!(ClientKey::of(IpAddr::V6(a)), ClientKey::of(IpAddr::V6(c)));
        assert_eq!(ClientKey::of(IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped())), ClientKey::of(A));
    }

    #[test]
    fn the_table_is_bounded_and_known_clients_keep_their_own_bucket() {
        let rl = RateLimiter::new(RateLimit { per_second: 1, burst: 2 });
        let t0 = Instant::now();
        // A known client spends its tokens (its bucket is not full, so it is kept).
        assert!(rl.check(A, t0).is_ok() && rl.check(A, t0).is_ok());
        // A flood from many addresses.
        for i in 0..(CLIENTS_MAX as u32 * 2) {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i));
            let _ = rl.check(ip, t0);
            let _ = rl.check(ip, t0);
        }
        assert!(rl.clients() <= CLIENTS_MAX + 1, "{}", rl.clients());
        // The known client is still limited by its own (empty) bucket, not reset.
        assert!(rl.check(A, t0).is_err());
        // Newcomers share the overflow bucket, which the flood emptied.
        assert!(rl.check(IpAddr::V4(Ipv4Addr::new(12, 0, 0, 1)), t0).is_err());
        // Once buckets refill, a sweep frees room for new clients.
        let later = t0 + Duration::from_secs(10);
        assert!(rl.check(IpAddr::V4(Ipv4Addr::new(12, 0, 0, 2)), later).is_ok());
        assert!(rl.clients() < CLIENTS_MAX);
    }

    #[test]
    fn connections_per_client_are_capped_and_given_back() {
        let c = Arc::new(ConnectionCounter::new(2));
        let s1 = c.open(A).unwrap();
        let _s2 = c.open(A).unwrap();
        assert!(c.open(A).is_none());
        assert!(c.open(B).is_some());
        drop(s1);
        assert!(c.open(A).is_some());
    }
}
