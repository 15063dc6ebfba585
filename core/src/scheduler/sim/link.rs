//! Peer profiles (design note §A4.2) and the SimLink model (§A4.1).

use std::time::Duration;

use crate::scheduler::Availability;

/// A link direction's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkProfile {
    /// Bytes per second.
    pub rate: f64,
    /// One-way latency.
    pub latency: Duration,
    /// Uniform extra delay in `[0, jitter)`.
    pub jitter: Duration,
}

/// A simulated peer (a seeder unless `has` says otherwise).
#[derive(Clone, Debug, PartialEq)]
pub struct PeerSpec {
    /// Profile class for reports ("fast", "slow", ...).
    pub class: &'static str,
    /// The link (same in both directions).
    pub link: LinkProfile,
    /// The server stops putting responses on the link while its backlog exceeds this.
    pub queue_limit: Duration,
    /// After serving this many bytes, the peer accepts requests but never answers again.
    pub stall_after_bytes: Option<u64>,
    /// The peer disconnects at this time.
    pub disconnect_at: Option<Duration>,
    /// At this time the link rate is divided by the factor.
    pub slow_down_at: Option<(Duration, f64)>,
    /// When the peer connects.
    pub join_at: Duration,
    /// What the peer has (`None`: every block of the log, following appends).
    pub has: Option<Availability>,
}

const MBIT: f64 = 1_000_000.0 / 8.0;

impl PeerSpec {
    /// A seeder with the given class, rate (bytes/s), latency and jitter.
    pub fn new(class: &'static str, rate: f64, latency: Duration, jitter: Duration) -> Self {
        Self {
            class,
            link: LinkProfile {
                rate,
                latency,
                jitter,
            },
            queue_limit: Duration::from_millis(200),
            stall_after_bytes: None,
            disconnect_at: None,
            slow_down_at: None,
            join_at: Duration::ZERO,
            has: None,
        }
    }

    /// 100 Mbit/s, 5 ms, 1 ms jitter (LAN / good seed).
    pub fn fast() -> Self {
        Self::new(
            "fast",
            100.0 * MBIT,
            Duration::from_millis(5),
            Duration::from_millis(1),
        )
    }

    /// 10 Mbit/s, 40 ms, 5 ms jitter (home uplink).
    pub fn medium() -> Self {
        Self::new(
            "medium",
            10.0 * MBIT,
            Duration::from_millis(40),
            Duration::from_millis(5),
        )
    }

    /// 1 Mbit/s, 150 ms, 20 ms jitter.
    pub fn slow() -> Self {
        Self::new(
            "slow",
            MBIT,
            Duration::from_millis(150),
            Duration::from_millis(20),
        )
    }

    /// 128 kbit/s, 300 ms, 50 ms jitter.
    pub fn hosed() -> Self {
        Self::new(
            "hosed",
            0.128 * MBIT,
            Duration::from_millis(300),
            Duration::from_millis(50),
        )
    }

    /// 10 Mbit/s at 10 s latency.
    pub fn far() -> Self {
        Self::new("far", 10.0 * MBIT, Duration::from_secs(10), Duration::ZERO)
    }

    /// Stalls after serving `bytes`.
    pub fn stall_after(mut self, bytes: u64) -> Self {
        self.stall_after_bytes = Some(bytes);
        self
    }

    /// Renames the class.
    pub fn class(mut self, class: &'static str) -> Self {
        self.class = class;
        self
    }

    /// Disconnects at `t`.
    pub fn disconnect_at(mut self, t: Duration) -> Self {
        self.disconnect_at = Some(t);
        self
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct SimLink {
    pub(crate) rate: f64,
    latency: Duration,
    jitter: Duration,
    free_at: Duration,
    last_arrive: Duration,
}

impl SimLink {
    pub(crate) fn new(p: LinkProfile) -> Self {
        Self {
            rate: p.rate,
            latency: p.latency,
            jitter: p.jitter,
            free_at: Duration::ZERO,
            last_arrive: Duration::ZERO,
        }
    }

    pub(crate) fn send(&mut self, now: Duration, len: u64, u: f64) -> Duration {
        let depart = self.free_at.max(now) + Duration::from_secs_f64(len as f64 / self.rate);
        self.free_at = depart;
        let arrive = (depart + self.latency + self.jitter.mul_f64(u)).max(self.last_arrive);
        self.last_arrive = arrive;
        arrive
    }

    pub(crate) fn backlog(&self, now: Duration) -> Duration {
        self.free_at.saturating_sub(now)
    }
}
