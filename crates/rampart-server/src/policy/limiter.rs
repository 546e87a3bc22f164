//! Rate limiting with GCRA (the generic cell rate algorithm): one timestamp per key, the
//! "theoretical arrival time" (TAT) of the next request at the steady rate. A request at
//! `now` is allowed when `TAT - now <= burst × interval`; it then moves TAT on by one
//! interval. This is exactly nginx's `limit_req` with `burst` and `nodelay`; without
//! `nodelay`, an allowed request is held until its slot (`TAT - interval`), as nginx
//! delays excess requests.
//!
//! Memory: a key whose TAT is in the past is the same as a key never seen, so it is
//! dropped (at sweeps and whenever a shard is full). When a shard is full of live keys,
//! new keys share one overflow bucket under the same limit: a flood of distinct keys
//! cannot grow memory or escape limiting, and it costs legitimate new clients only
//! while the flood lasts. Times are nanoseconds on a monotonic clock, passed in, so
//! tests control time.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;

use rampart_config::policy::Limit;

/// The pure algorithm.
#[derive(Debug, Clone, Copy)]
pub struct Gcra {
    /// Nanoseconds between requests at the steady rate.
    pub interval: u64,
    /// Burst tolerance: `burst × interval`.
    pub tolerance: u64,
}

/// A decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; wait `delay` ns first (0 with nodelay). `remaining` requests could follow
    /// at once; the quota is whole again after `reset` ns.
    Allow {
        /// Hold the request this long (nginx delay mode), else 0.
        delay: u64,
        /// Requests left in the burst.
        remaining: u32,
        /// Time until the bucket is full again.
        reset: u64,
    },
    /// Refused; retry after `retry_after` ns.
    Refuse {
        /// Time until a request would be allowed.
        retry_after: u64,
        /// Time until the bucket is full again.
        reset: u64,
    },
}

impl Gcra {
    /// From a configured limit.
    pub fn new(count: u32, per_nanos: u64, burst: u32) -> Self {
        let interval = (per_nanos / u64::from(count.max(1))).max(1);
        Self {
            interval,
            tolerance: interval.saturating_mul(u64::from(burst)),
        }
    }

    /// Decides for a request at `now` given the key's TAT (0 when unknown); returns the
    /// decision and the new TAT to store.
    pub fn check(&self, tat: u64, now: u64, nodelay: bool) -> (Decision, u64) {
        let tat = tat.max(now);
        let ahead = tat - now;
        let d = self.decide(ahead, nodelay);
        match d {
            Decision::Refuse { .. } => (d, tat),
            Decision::Allow { .. } => (d, tat + self.interval),
        }
    }

    /// The decision for a key whose TAT is `ahead` of now (0 when in the past): what the
    /// shared state's script reports, or what [`Gcra::check`] computes.
    pub fn decide(&self, ahead: u64, nodelay: bool) -> Decision {
        if ahead > self.tolerance {
            return Decision::Refuse {
                retry_after: ahead - self.tolerance,
                reset: ahead,
            };
        }
        let used = ahead + self.interval;
        let capacity = self.tolerance + self.interval;
        let remaining = u32::try_from((capacity - used) / self.interval).unwrap_or(u32::MAX);
        Decision::Allow {
            delay: if nodelay { 0 } else { ahead },
            remaining,
            reset: used,
        }
    }

    /// The same rate in whole microseconds (the shared state's unit), at least 1 µs per
    /// request.
    pub fn micros(&self) -> Self {
        let interval = (self.interval / 1000).max(1);
        let burst = self.tolerance / self.interval;
        Self {
            interval,
            tolerance: interval.saturating_mul(burst),
        }
    }
}

const SHARDS: usize = 16;

/// Slots a new key looks at for an expired one to take over when its shard is full. A
/// constant: a flood of new keys costs the same per request whatever the table holds.
const EVICT_TRIES: usize = 4;

/// One shard of a limit's keys: the keys' state in slots (at most the shard's share of
/// `max_keys`), an index from key to slot, and a clock hand that walks the slots looking
/// for an expired key to replace.
#[derive(Debug, Default)]
struct Shard {
    /// Slot numbers, found by the key's hash (computed once per request by the caller).
    index: hashbrown::HashTable<u32>,
    slots: Vec<Slot>,
    hand: usize,
    /// The TAT of the bucket new keys share while the shard is full of live keys.
    overflow: u64,
}

/// One key's state.
#[derive(Debug)]
struct Slot {
    key: Box<str>,
    hash: u64,
    tat: u64,
}

/// The hash of a limit key: computed once per request and key, whatever number of limits
/// count by it. Keys are chosen by clients, so the hash is keyed with a seed random per
/// process (foldhash: a fraction of SipHash's cost on short keys).
pub fn key_hash(key: &str) -> u64 {
    static SEED: std::sync::OnceLock<foldhash::fast::RandomState> = std::sync::OnceLock::new();
    SEED.get_or_init(Default::default).hash_one(key)
}

/// The per-key state of one limit.
#[derive(Debug)]
pub struct Store {
    gcra: Gcra,
    nodelay: bool,
    /// Keys each shard may hold: `max_keys` split exactly.
    caps: [usize; SHARDS],
    shards: Vec<Mutex<Shard>>,
}

impl Store {
    /// A store for `limit`.
    pub fn new(limit: &Limit) -> Self {
        let per = u64::try_from(limit.per.as_nanos()).unwrap_or(u64::MAX);
        let (base, extra) = (limit.max_keys / SHARDS, limit.max_keys % SHARDS);
        Self {
            gcra: Gcra::new(limit.count, per, limit.burst),
            nodelay: limit.nodelay,
            caps: std::array::from_fn(|i| (base + usize::from(i < extra)).max(1)),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// The algorithm's parameters.
    pub fn gcra(&self) -> Gcra {
        self.gcra
    }

    /// Whether excess is refused at once.
    pub fn nodelay(&self) -> bool {
        self.nodelay
    }

    /// The quota (burst + 1).
    pub fn quota(&self) -> u32 {
        u32::try_from(self.gcra.tolerance / self.gcra.interval + 1).unwrap_or(u32::MAX)
    }

    /// Decides for `key` at `now`. A known key costs one lookup; a new key in a full shard
    /// takes over an expired key's slot if the clock hand finds one within
    /// [`EVICT_TRIES`] slots, else it is counted in the shard's overflow bucket: a flood of
    /// distinct keys can neither grow memory past `max_keys` nor escape limiting, and it
    /// costs a constant amount of work per request.
    pub fn check(&self, key: &str, now: u64) -> Decision {
        self.check_hashed(key, key_hash(key), now)
    }

    /// As [`Store::check`], with the key's [`key_hash`] already computed.
    pub fn check_hashed(&self, key: &str, hash: u64, now: u64) -> Decision {
        // Bits the table's own probing does not use (it takes the low bits and the top 7).
        let idx = usize::try_from((hash >> 32) % SHARDS as u64).unwrap_or(0);
        let mut guard = self.shards[idx]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Shard {
            index,
            slots,
            hand,
            overflow,
        } = &mut *guard;
        if let Some(&slot) = index.find(hash, |&i| &*slots[i as usize].key == key) {
            let tat = &mut slots[slot as usize].tat;
            let (d, new) = self.gcra.check(*tat, now, self.nodelay);
            *tat = new;
            return d;
        }
        let (d, new) = self.gcra.check(0, now, self.nodelay);
        let fresh = Slot {
            key: key.into(),
            hash,
            tat: new,
        };
        if slots.len() < self.caps[idx] {
            let slot = u32::try_from(slots.len()).unwrap_or(u32::MAX);
            slots.push(fresh);
            index.insert_unique(hash, slot, |&i| slots[i as usize].hash);
            return d;
        }
        let len = slots.len();
        for _ in 0..EVICT_TRIES.min(len) {
            let slot = *hand;
            *hand = (slot + 1) % len;
            if slots[slot].tat <= now {
                let n = u32::try_from(slot).unwrap_or(u32::MAX);
                if let Ok(old) = index.find_entry(slots[slot].hash, |&i| i == n) {
                    old.remove();
                }
                slots[slot] = fresh;
                index.insert_unique(hash, n, |&i| slots[i as usize].hash);
                return d;
            }
        }
        let (d, new) = self.gcra.check(*overflow, now, self.nodelay);
        *overflow = new;
        d
    }

    /// Drops keys whose state has run out (TAT in the past).
    pub fn sweep(&self, now: u64) {
        for s in &self.shards {
            let mut guard = s.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let Shard {
                index, slots, hand, ..
            } = &mut *guard;
            if slots.iter().all(|s| s.tat > now) {
                continue;
            }
            slots.retain(|s| s.tat > now);
            index.clear();
            for (i, s) in slots.iter().enumerate() {
                let n = u32::try_from(i).unwrap_or(u32::MAX);
                index.insert_unique(s.hash, n, |&j| slots[j as usize].hash);
            }
            *hand = 0;
        }
    }

    /// Keys tracked.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .slots
                    .len()
            })
            .sum()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Tokens leased from a fleet's shared state (a limit's `lease`): one round trip takes up
/// to `lease` tokens for a key, and the next requests with that key spend the rest here
/// until they lapse (a second after the grant). An instance holds at most `lease - 1` of a
/// key's tokens (grants that arrive together are merged up to that, the rest dropped), so
/// the fleet admits at most `lease - 1` per instance beyond what Redis counted in any
/// window, and may refuse early while other instances hold unused tokens. Bounded: at most
/// `cap` keys hold a lease; a new key in a full table simply asks the shared state.
#[derive(Debug)]
pub struct Leases {
    map: Mutex<HashMap<Box<str>, Lease>>,
    cap: usize,
}

/// One key's lease.
#[derive(Debug, Clone, Copy)]
struct Lease {
    /// Tokens left.
    left: u32,
    /// When they lapse (ns, the policies' clock).
    until: u64,
    /// `RateLimit-Remaining` as of the grant, counted down with each token.
    remaining: u32,
    /// `RateLimit-Reset` as of the grant (ns).
    reset: u64,
    /// Until when a request asking for a whole lease is out (ns; 0: none): the requests
    /// behind it ask for one token each, so concurrent misses do not each take a lease.
    claimed: u64,
}

impl Leases {
    /// An empty table for at most `cap` keys.
    pub fn new(cap: usize) -> Self {
        Self {
            map: Mutex::default(),
            cap: cap.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Lease>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Spends one leased token of `key`, if it has one that has not lapsed: the
    /// `(remaining, reset)` to report.
    pub fn take(&self, key: &str, now: u64) -> Option<(u32, u64)> {
        let mut map = self.lock();
        let l = map.get_mut(key)?;
        if l.left == 0 || l.until <= now {
            if l.claimed <= now {
                map.remove(key);
            }
            return None;
        }
        l.left -= 1;
        l.remaining = l.remaining.saturating_sub(1);
        Some((l.remaining, l.reset))
    }

    /// Whether a request for `key` that found no token asks for a whole lease: the first
    /// since the last grant does (and claims it for up to a second); while its answer is
    /// out, the others ask for one token.
    pub fn claim(&self, key: &str, now: u64) -> bool {
        let mut map = self.lock();
        if let Some(l) = map.get_mut(key) {
            if l.claimed > now {
                return false;
            }
            l.claimed = now + 1_000_000_000;
            return true;
        }
        if map.len() >= self.cap {
            return false;
        }
        map.insert(
            key.into(),
            Lease {
                left: 0,
                until: 0,
                remaining: 0,
                reset: 0,
                claimed: now + 1_000_000_000,
            },
        );
        true
    }

    /// Adds `left` tokens of `key`, holding at most `max`, until `until`.
    pub fn put(&self, key: &str, left: u32, max: u32, until: u64, remaining: u32, reset: u64) {
        let mut map = self.lock();
        if let Some(l) = map.get_mut(key) {
            l.left = l.left.saturating_add(left).min(max);
            l.until = until;
            l.remaining = remaining;
            l.reset = reset;
            l.claimed = 0;
            return;
        }
        if map.len() >= self.cap {
            return;
        }
        map.insert(
            key.into(),
            Lease {
                left: left.min(max),
                until,
                remaining,
                reset,
                claimed: 0,
            },
        );
    }

    /// Drops lapsed leases.
    pub fn sweep(&self, now: u64) {
        self.lock()
            .retain(|_, l| (l.left > 0 && l.until > now) || l.claimed > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: u64 = 1_000_000_000;

    fn limit(rate: &str, burst: u32, nodelay: bool, max_keys: usize) -> Limit {
        let (count, per) = rampart_config::policy::parse_rate(rate).unwrap();
        Limit {
            name: "t".into(),
            count,
            per,
            burst,
            key: rampart_config::policy::LimitKey::Ip,
            methods: vec![],
            nodelay,
            max_keys,
            lockout: None,
            on_state_error: rampart_config::state::OnStateError::Local,
            lease: 1,
        }
    }

    fn allowed(d: Decision) -> bool {
        matches!(d, Decision::Allow { .. })
    }

    #[test]
    fn leases_are_spent_once_and_lapse() {
        let l = Leases::new(2);
        assert_eq!(l.take("a", 0), None);
        l.put("a", 2, 4, 100, 5, 9);
        assert_eq!(l.take("a", 10), Some((4, 9)));
        assert_eq!(l.take("a", 10), Some((3, 9)));
        assert_eq!(l.take("a", 10), None, "two tokens, spent");
        l.put("b", 3, 4, 100, 5, 9);
        l.put("b", 3, 4, 100, 5, 9);
        let held = (0..10).filter(|_| l.take("b", 10).is_some()).count();
        assert_eq!(held, 4, "grants merge up to lease - 1");
        l.put("b", 3, 4, 100, 5, 9);
        assert_eq!(l.take("b", 100), None, "lapsed at `until`");
        // One whole lease asked at a time per key; the answer releases the claim.
        assert!(l.claim("z", 0));
        assert!(!l.claim("z", 1), "a lease is already asked for");
        l.put("z", 2, 4, 100, 5, 9);
        assert!(l.take("z", 2).is_some());
        l.sweep(1000);
        l.put("c", 1, 4, 100, 5, 9);
        l.put("d", 1, 4, 100, 5, 9);
        l.put("e", 1, 4, 100, 5, 9);
        assert_eq!(l.take("e", 0), None, "the table is bounded");
        l.sweep(1000);
        assert!(l.lock().is_empty());
    }

    #[test]
    fn burst_then_steady_rate_like_nginx_nodelay() {
        let s = Store::new(&limit("10/s", 5, true, 100));
        // At t=0: 1 + burst requests pass, the next is refused.
        let got: Vec<bool> = (0..8).map(|_| allowed(s.check("a", S))).collect();
        assert_eq!(got, [true, true, true, true, true, true, false, false]);
        // One interval later exactly one more passes.
        assert!(allowed(s.check("a", S + S / 10)));
        assert!(!allowed(s.check("a", S + S / 10)));
        // Other keys are independent.
        assert!(allowed(s.check("b", S)));
    }

    #[test]
    fn refusal_says_when_to_retry_and_remaining_counts_down() {
        let s = Store::new(&limit("1/m", 2, true, 100));
        let mut remaining = vec![];
        for _ in 0..3 {
            match s.check("k", 0) {
                Decision::Allow { remaining: r, .. } => remaining.push(r),
                Decision::Refuse { .. } => panic!("refused within the burst"),
            }
        }
        assert_eq!(remaining, [2, 1, 0]);
        match s.check("k", 0) {
            Decision::Refuse { retry_after, reset } => {
                assert_eq!(retry_after, 60 * S);
                assert_eq!(reset, 180 * S);
            }
            d => panic!("{d:?}"),
        }
        assert!(allowed(s.check("k", 60 * S)));
    }

    #[test]
    fn delay_mode_holds_requests_to_the_steady_rate() {
        let s = Store::new(&limit("10/s", 3, false, 100));
        let delays: Vec<u64> = (0..4)
            .map(|_| match s.check("a", 0) {
                Decision::Allow { delay, .. } => delay,
                d => panic!("{d:?}"),
            })
            .collect();
        assert_eq!(delays, [0, S / 10, 2 * S / 10, 3 * S / 10]);
        assert!(!allowed(s.check("a", 0)));
    }

    #[test]
    fn memory_is_bounded_and_idle_keys_expire() {
        let s = Store::new(&limit("1/s", 0, true, 64));
        for i in 0..10_000 {
            s.check(&format!("k{i}"), 0);
        }
        // The cap is exact.
        assert_eq!(s.len(), 64);
        // Keys beyond the cap share the overflow bucket: they are limited, not free.
        let refused = (10_000..10_100)
            .filter(|i| !allowed(s.check(&format!("k{i}"), 0)))
            .count();
        assert!(refused > 90, "{refused}");
        // After their TAT passes, keys are dropped.
        s.sweep(10 * S);
        assert!(s.is_empty());
    }

    #[test]
    fn new_keys_take_over_expired_ones_when_full() {
        let s = Store::new(&limit("1/s", 0, true, 1000));
        for i in 0..20_000 {
            s.check(&format!("old{i}"), 0);
        }
        assert_eq!(s.len(), 1000, "every shard is full");
        // A second later every old key has expired: each new key gets a slot of its own
        // (never the shared overflow bucket), without a sweep, and the cap holds.
        for i in 0..200 {
            assert!(allowed(s.check(&format!("new{i}"), 2 * S)), "new{i}");
            assert!(
                !allowed(s.check(&format!("new{i}"), 2 * S)),
                "new{i} has its own state"
            );
        }
        assert_eq!(s.len(), 1000);
    }

    #[test]
    fn a_flood_of_live_keys_costs_constant_work_and_shares_one_bucket() {
        let s = Store::new(&limit("1/m", 0, true, 1600));
        for i in 0..20_000 {
            s.check(&format!("live{i}"), 0);
        }
        assert_eq!(s.len(), 1600, "every shard is full of live keys");
        let live = s.shards[0].lock().unwrap().slots[0].key.to_string();
        // Flood with new keys: each looks at no more than EVICT_TRIES slots (the hands
        // move at most that far per request) and the cap holds.
        let hands: Vec<usize> = s.shards.iter().map(|m| m.lock().unwrap().hand).collect();
        for i in 0..16 {
            s.check(&format!("flood{i}"), 1);
        }
        let moved: usize = s
            .shards
            .iter()
            .zip(hands)
            .map(|(m, h)| {
                let sh = m.lock().unwrap();
                (sh.hand + sh.slots.len() - h) % sh.slots.len()
            })
            .sum();
        assert!(moved <= 16 * EVICT_TRIES, "{moved}");
        assert_eq!(s.len(), 1600);
        // A live key keeps its own state (refused: its one request a minute is used).
        assert!(!allowed(s.check(&live, 2)));
    }

    proptest! {
        /// Over any arrival sequence, what is allowed never exceeds rate × time + burst.
        #[test]
        fn never_more_than_rate_times_time_plus_burst(
            count in 1u32..50,
            per_ms in prop_oneof![Just(1_000u64), Just(60_000u64)],
            burst in 0u32..20,
            gaps in proptest::collection::vec(0u64..200_000_000, 1..300),
        ) {
            let g = Gcra::new(count, per_ms * 1_000_000, burst);
            let mut tat = 0;
            let mut now = 1_000 * S;
            let start = now;
            let mut ok = 0u64;
            for gap in gaps {
                now += gap;
                let (d, new) = g.check(tat, now, true);
                tat = new;
                if matches!(d, Decision::Allow { .. }) {
                    ok += 1;
                }
            }
            let elapsed = now - start;
            let bound = elapsed / g.interval + u64::from(burst) + 1;
            prop_assert!(ok <= bound, "allowed {} > bound {}", ok, bound);
        }

        /// A client at or under the rate is never refused.
        #[test]
        fn a_client_within_the_rate_is_never_refused(
            count in 1u32..50,
            burst in 0u32..5,
            n in 1usize..200,
        ) {
            let g = Gcra::new(count, S, burst);
            let mut tat = 0;
            for i in 0..n as u64 {
                let (d, new) = g.check(tat, S + i * g.interval, true);
                tat = new;
                prop_assert!(matches!(d, Decision::Allow { .. }), "refused at request {}", i);
            }
        }
    }
}
