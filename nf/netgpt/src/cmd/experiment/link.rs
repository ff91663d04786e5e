//! In-process link emulation: a shaping TCP proxy in front of an NF, so the bytes that
//! actually cross a hop (HTTP/2 frames, headers, bodies) pay that hop's cost.
//!
//! Per direction a [`LinkProxy`] applies:
//! - serialization at `rate_bps`: the link is one FIFO shared by every connection through
//!   the proxy (a virtual "busy until" clock: a chunk leaves when the link is free and takes
//!   `bytes * 8 / rate` to cross);
//! - one-way propagation `delay`, added to every chunk after it left (pipelined: delay does
//!   not throttle throughput);
//! - loss: each 1500-byte segment is lost with probability `loss` (seeded RNG, so a run is
//!   repeatable) and then costs a retransmission timeout `rto` (Linux's minimum RTO, 200 ms,
//!   plus one round trip) before it is delivered;
//! - a per-connection set-up cost (`setup`, e.g. the TCP and TLS handshake round trips),
//!   paid once per new connection before its first byte is forwarded.
//!
//! The proxy counts bytes and connections each way and adds up the emulated delay it applied
//! (serialization, set-up, loss), so tests check its accounting rather than wall-clock time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netgpt_sbi::config::{LinkConfig, UeLinkConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Size of the segments loss is drawn for (an Ethernet MTU).
pub const SEGMENT_BYTES: usize = 1500;

/// What a link costs.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkSpec {
    /// Name in reports (`ue-edge`, `edge-cloud`).
    pub name: String,
    /// Serialization rate, bits per second.
    pub rate_bps: f64,
    /// One-way propagation delay.
    pub delay: Duration,
    /// Cost of opening a connection, paid before its first forwarded byte.
    pub setup: Duration,
    /// Probability that a 1500-byte segment is lost (0..1).
    pub loss: f64,
    /// Seed of the loss draws.
    pub seed: u64,
}

impl LinkSpec {
    /// An edge <-> cloud link of the testbed configuration.
    pub fn from_link(name: &str, l: &LinkConfig) -> Self {
        Self::new(name, l.bandwidth_bps, l.latency_ms, l.setup_ms, l.loss)
    }

    /// The UE <-> edge access link of the testbed configuration.
    pub fn from_ue_link(name: &str, l: &UeLinkConfig) -> Self {
        Self::new(name, l.bandwidth_bps, l.latency_ms, l.setup_ms, l.loss)
    }

    fn new(name: &str, rate_bps: f64, latency_ms: f64, setup_ms: f64, loss: f64) -> Self {
        Self {
            name: name.to_owned(),
            rate_bps,
            delay: Duration::from_secs_f64(latency_ms / 1e3),
            setup: Duration::from_secs_f64(setup_ms / 1e3),
            loss,
            seed: 0x6e65_7467_7074,
        }
    }

    /// Retransmission timeout of a lost segment: 200 ms (Linux's minimum RTO) plus one
    /// round trip.
    pub fn rto(&self) -> Duration {
        Duration::from_millis(200) + self.delay * 2
    }

    /// Time to serialize `bytes` at the link rate.
    pub fn serialization(&self, bytes: usize) -> Duration {
        Duration::from_secs_f64(bytes as f64 * 8.0 / self.rate_bps)
    }
}

/// Counters of one direction.
#[derive(Debug, Default)]
struct DirCounters {
    bytes: AtomicU64,
    serialization_ns: AtomicU64,
    loss_ns: AtomicU64,
    segments_lost: AtomicU64,
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    setup_ns: AtomicU64,
    /// Client -> upstream.
    up: DirCounters,
    /// Upstream -> client.
    down: DirCounters,
}

/// A snapshot of a proxy's accounting.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkStats {
    /// Connections accepted.
    pub connections: u64,
    /// Bytes forwarded client -> upstream.
    pub bytes_up: u64,
    /// Bytes forwarded upstream -> client.
    pub bytes_down: u64,
    /// Segments lost (and retransmitted), both ways.
    pub segments_lost: u64,
    /// Serialization time applied, both ways.
    pub serialization: Duration,
    /// Set-up time applied (connections x set-up cost).
    pub setup: Duration,
    /// Retransmission timeouts applied, both ways.
    pub loss: Duration,
}

impl LinkStats {
    /// The counts accumulated since `before`.
    pub fn since(&self, before: &LinkStats) -> LinkStats {
        LinkStats {
            connections: self.connections - before.connections,
            bytes_up: self.bytes_up - before.bytes_up,
            bytes_down: self.bytes_down - before.bytes_down,
            segments_lost: self.segments_lost - before.segments_lost,
            serialization: self.serialization.saturating_sub(before.serialization),
            setup: self.setup.saturating_sub(before.setup),
            loss: self.loss.saturating_sub(before.loss),
        }
    }
}

/// The shared state of one proxy: its spec, counters, the per-direction link clocks and
/// the loss RNG.
struct Shared {
    spec: LinkSpec,
    counters: Counters,
    busy_up: Mutex<Instant>,
    busy_down: Mutex<Instant>,
    rng: Mutex<u64>,
}

impl Shared {
    /// splitmix64: small, seeded, good enough for Bernoulli draws.
    fn next_unit(&self) -> f64 {
        let mut s = self.rng.lock().expect("rng lock");
        *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// When a chunk of `n` bytes read now in direction `up` reaches the other end, with the
    /// accounting of what that cost.
    fn schedule(&self, up: bool, n: usize) -> Instant {
        let ser = self.spec.serialization(n);
        let mut lost = 0u64;
        if self.spec.loss > 0.0 {
            for _ in 0..n.div_ceil(SEGMENT_BYTES) {
                if self.next_unit() < self.spec.loss {
                    lost += 1;
                }
            }
        }
        let penalty = self.spec.rto() * lost as u32;
        let departed = {
            let mut busy = if up { &self.busy_up } else { &self.busy_down }
                .lock()
                .expect("link clock lock");
            let start = (*busy).max(Instant::now());
            *busy = start + ser;
            *busy
        };
        let c = if up {
            &self.counters.up
        } else {
            &self.counters.down
        };
        c.bytes.fetch_add(n as u64, Ordering::Relaxed);
        c.serialization_ns
            .fetch_add(ser.as_nanos() as u64, Ordering::Relaxed);
        c.loss_ns
            .fetch_add(penalty.as_nanos() as u64, Ordering::Relaxed);
        c.segments_lost.fetch_add(lost, Ordering::Relaxed);
        departed + self.spec.delay + penalty
    }
}

/// A running shaping proxy; stops when dropped or by [`LinkProxy::stop`].
pub struct LinkProxy {
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
    /// The address clients connect to.
    pub addr: SocketAddr,
}

impl LinkProxy {
    /// Listens on `127.0.0.1:0` and forwards every connection to `upstream` through the
    /// emulated link; returns the local address and the proxy.
    pub async fn start(
        upstream: SocketAddr,
        spec: LinkSpec,
    ) -> std::io::Result<(SocketAddr, LinkProxy)> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let now = Instant::now();
        let shared = Arc::new(Shared {
            rng: Mutex::new(spec.seed),
            spec,
            counters: Counters::default(),
            busy_up: Mutex::new(now),
            busy_down: Mutex::new(now),
        });
        let s = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(s, client, upstream).await {
                        tracing::debug!("link proxy connection: {e}");
                    }
                });
            }
        });
        Ok((
            addr,
            LinkProxy {
                shared,
                accept,
                addr,
            },
        ))
    }

    /// `http://<addr>`: the base URI of the NF behind the link.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the proxy forwarded and the emulated delay it applied so far.
    pub fn stats(&self) -> LinkStats {
        let c = &self.shared.counters;
        let ns = |a: &AtomicU64| Duration::from_nanos(a.load(Ordering::Relaxed));
        LinkStats {
            connections: c.connections.load(Ordering::Relaxed),
            bytes_up: c.up.bytes.load(Ordering::Relaxed),
            bytes_down: c.down.bytes.load(Ordering::Relaxed),
            segments_lost: c.up.segments_lost.load(Ordering::Relaxed)
                + c.down.segments_lost.load(Ordering::Relaxed),
            serialization: ns(&c.up.serialization_ns) + ns(&c.down.serialization_ns),
            setup: ns(&c.setup_ns),
            loss: ns(&c.up.loss_ns) + ns(&c.down.loss_ns),
        }
    }

    /// Stops accepting (open connections end with their peers).
    pub fn stop(&self) {
        self.accept.abort();
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// One proxied connection: set-up cost, then both directions pumped through the link.
async fn connection(
    s: Arc<Shared>,
    client: TcpStream,
    upstream: SocketAddr,
) -> std::io::Result<()> {
    s.counters.connections.fetch_add(1, Ordering::Relaxed);
    if !s.spec.setup.is_zero() {
        s.counters
            .setup_ns
            .fetch_add(s.spec.setup.as_nanos() as u64, Ordering::Relaxed);
        tokio::time::sleep(s.spec.setup).await;
    }
    let server = TcpStream::connect(upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = tokio::spawn(pump(s.clone(), true, cr, sw));
    let down = tokio::spawn(pump(s, false, sr, cw));
    let _ = up.await;
    let _ = down.await;
    Ok(())
}

/// Reads from `r`, schedules each chunk on the link, and writes it to `w` when it arrives;
/// end of stream is passed on as a write shutdown (after the data before it).
async fn pump(
    s: Arc<Shared>,
    up: bool,
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    let writer = tokio::spawn(async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if w.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = w.shutdown().await;
    });
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let at = s.schedule(up, n);
                if tx.send((at, buf[..n].to_vec())).await.is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on an ephemeral port.
    async fn echo() -> SocketAddr {
        let l = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = c.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    fn spec(rate_bps: f64, setup_ms: f64, loss: f64) -> LinkSpec {
        LinkSpec::new("test", rate_bps, 1.0, setup_ms, loss)
    }

    /// Sends `data` through the proxy and reads the echo back.
    async fn round_trip(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
        let c = TcpStream::connect(addr).await.unwrap();
        let (mut r, mut w) = c.into_split();
        let owned = data.to_vec();
        let send = tokio::spawn(async move {
            w.write_all(&owned).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let mut back = Vec::new();
        r.read_to_end(&mut back).await.unwrap();
        send.await.unwrap();
        back
    }

    #[tokio::test]
    async fn counts_bytes_exactly_both_ways() {
        let (addr, proxy) = LinkProxy::start(echo().await, spec(1e9, 0.0, 0.0))
            .await
            .unwrap();
        let data: Vec<u8> = (0..100_003u32).map(|i| i as u8).collect();
        let back = round_trip(addr, &data).await;
        assert_eq!(back, data);
        let st = proxy.stats();
        assert_eq!(st.bytes_up, 100_003);
        assert_eq!(st.bytes_down, 100_003);
        assert_eq!(st.connections, 1);
        assert_eq!(st.setup, Duration::ZERO);
        assert_eq!(st.segments_lost, 0);
    }

    #[tokio::test]
    async fn one_megabyte_at_8_mbps_costs_a_second_of_emulated_time() {
        let (addr, proxy) = LinkProxy::start(echo().await, spec(8e6, 0.0, 0.0))
            .await
            .unwrap();
        let data = vec![7u8; 1_000_000];
        // One way only: send, then close without waiting for the whole echo to be timed.
        let back = round_trip(addr, &data).await;
        assert_eq!(back.len(), data.len());
        let st = proxy.stats();
        // 1 MB up and 1 MB back, each 1 s at 8 Mbit/s.
        let per_way = st.serialization.as_secs_f64() / 2.0;
        assert!((0.999..1.001).contains(&per_way), "{per_way} s per way");
    }

    #[tokio::test]
    async fn setup_cost_is_paid_once_per_connection() {
        let (addr, proxy) = LinkProxy::start(echo().await, spec(1e9, 30.0, 0.0))
            .await
            .unwrap();
        // Two exchanges on one connection, then two more connections.
        let c = TcpStream::connect(addr).await.unwrap();
        let (mut r, mut w) = c.into_split();
        for _ in 0..2 {
            w.write_all(b"ping").await.unwrap();
            let mut b = [0u8; 4];
            r.read_exact(&mut b).await.unwrap();
            assert_eq!(&b, b"ping");
        }
        drop(w);
        for _ in 0..2 {
            assert_eq!(round_trip(addr, b"x").await, b"x");
        }
        let st = proxy.stats();
        assert_eq!(st.connections, 3);
        assert_eq!(st.setup, Duration::from_millis(90));
        assert_eq!(st.bytes_up, 4 + 4 + 1 + 1);
    }

    #[tokio::test]
    async fn loss_is_seeded_and_costs_a_timeout_per_lost_segment() {
        let run = || async {
            let (addr, proxy) = LinkProxy::start(echo().await, spec(1e9, 0.0, 0.05))
                .await
                .unwrap();
            // Chunks of exactly one segment, so the draws do not depend on read sizes.
            let c = TcpStream::connect(addr).await.unwrap();
            let (mut r, mut w) = c.into_split();
            for _ in 0..40 {
                w.write_all(&[1u8; SEGMENT_BYTES]).await.unwrap();
                let mut b = vec![0u8; SEGMENT_BYTES];
                r.read_exact(&mut b).await.unwrap();
            }
            proxy.stats()
        };
        let a = run().await;
        assert!(a.segments_lost > 0, "5% of 80+ segments: some lost");
        assert_eq!(
            a.loss,
            LinkSpec::new("t", 1e9, 1.0, 0.0, 0.05).rto() * a.segments_lost as u32
        );
        assert_eq!(a.bytes_up, 40 * SEGMENT_BYTES as u64);
    }
}
