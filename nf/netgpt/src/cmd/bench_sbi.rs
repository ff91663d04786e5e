//! `netgpt bench sbi`: SBI round trips on loopback (NFDiscover, ProvideLocationInfo)
//! at several concurrencies, beside a bare hyper h2c echo server measured in the same
//! run, printed as requests/s, latency percentiles and the ratio to the bare server.
//!
//! The load generator speaks HTTP/2 with prior knowledge over a few multiplexed
//! connections, as SBI peers do; it measures the servers, not the SBI client.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

/// Arguments of `netgpt bench sbi`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchSbiArgs {
    /// Concurrent in-flight requests to measure at (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128")]
    pub concurrency: Vec<usize>,
    /// Seconds of load per operation and concurrency.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// HTTP/2 connections the load is spread over.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
}

/// One request shape to replay.
#[derive(Clone)]
pub struct Target {
    /// Label printed in the table.
    pub name: String,
    pub addr: SocketAddr,
    pub method: Method,
    pub path: String,
    pub body: Option<Bytes>,
    /// `Authorization` header value (an OAuth2 bearer token), when the target needs one.
    pub authorization: Option<String>,
}

/// Figures of one load run.
#[derive(Debug, Clone)]
pub struct LoadResult {
    pub requests: usize,
    pub errors: usize,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

impl LoadResult {
    /// Successful requests per second.
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// A bare hyper HTTP/2 (prior knowledge) server answering every request with a small JSON
/// body: the ceiling an SBI server on this machine is compared against.
pub async fn start_echo_server() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        // Read the body so POSTs cost what they cost on a real server.
                        let _ = req.into_body().collect().await;
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from_static(b"{\"ok\":true}")))
                                .unwrap(),
                        )
                    });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

type Sender = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

fn build_request(t: &Target) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(t.method.clone())
        .uri(format!("http://{}{}", t.addr, t.path));
    if t.body.is_some() {
        b = b.header("content-type", "application/json");
    }
    if let Some(a) = &t.authorization {
        b = b.header("authorization", a);
    }
    b.body(Full::new(t.body.clone().unwrap_or_default()))
        .expect("valid request")
}

/// Keeps `concurrency` requests in flight against `target` for `duration`.
/// A response with a status other than 2xx counts as an error.
pub async fn run_load(
    target: &Target,
    concurrency: usize,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<LoadResult> {
    let mut senders = Vec::new();
    for _ in 0..connections.clamp(1, concurrency.max(1)) {
        senders.push(connect(target.addr).await?);
    }
    // One warm-up request per connection, so handshakes are not measured.
    for s in &mut senders {
        let resp = s.send_request(build_request(target)).await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "{}: warm-up answered {}",
            target.name,
            resp.status()
        );
        resp.into_body().collect().await?;
    }
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for i in 0..concurrency {
        let mut sender = senders[i % senders.len()].clone();
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                match sender.send_request(build_request(&target)).await {
                    Ok(resp) => {
                        let ok = resp.status().is_success();
                        let body = resp.into_body().collect().await;
                        if ok && body.is_ok() {
                            lat.push(t0.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                    Err(_) => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await?;
        all.extend(lat);
        errors += e;
    }
    let elapsed = start.elapsed();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
    };
    Ok(LoadResult {
        requests: all.len(),
        errors,
        elapsed,
        p50: pct(0.50).unwrap_or_default(),
        p99: pct(0.99).unwrap_or_default(),
    })
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// Measures every target beside the bare echo server at each concurrency and prints the table.
pub async fn bench_targets(targets: &[Target], args: &BenchSbiArgs) -> anyhow::Result<()> {
    let echo = Target {
        name: "bare hyper h2c echo".into(),
        addr: start_echo_server().await?,
        method: Method::GET,
        path: "/echo".into(),
        body: None,
        authorization: None,
    };
    let duration = Duration::from_secs_f64(args.seconds);
    println!(
        "SBI round trips on loopback, HTTP/2 prior knowledge, {} connection(s), {:.1} s per cell, {} CPU(s)",
        args.connections,
        args.seconds,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!(
        "{:<32} {:>5} {:>11} {:>9} {:>9} {:>7} {:>15}",
        "operation", "conc", "req/s", "p50 ms", "p99 ms", "errors", "ratio vs bare"
    );
    for &c in &args.concurrency {
        let base = run_load(&echo, c, args.connections, duration).await?;
        println!(
            "{:<32} {:>5} {:>11.0} {:>9} {:>9} {:>7} {:>15}",
            echo.name,
            c,
            base.rps(),
            ms(base.p50),
            ms(base.p99),
            base.errors,
            "1.00"
        );
        for t in targets {
            let r = run_load(t, c, args.connections, duration).await?;
            println!(
                "{:<32} {:>5} {:>11.0} {:>9} {:>9} {:>7} {:>15.2}",
                t.name,
                c,
                r.rps(),
                ms(r.p50),
                ms(r.p99),
                r.errors,
                r.rps() / base.rps()
            );
        }
    }
    Ok(())
}

/// Brings NRF and AMF up in-process on ephemeral ports (a temporary SQLite file), registers
/// a few NF profiles so NFDiscover has work to do, and measures NFDiscover and
/// ProvideLocationInfo beside the bare h2c server.
pub async fn run(args: BenchSbiArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.concurrency.is_empty(),
        "--concurrency: give at least one value"
    );
    anyhow::ensure!(args.seconds > 0.0, "--seconds: must be positive");
    let dir = tempfile::tempdir()?;
    let mut config = super::testbed::on_loopback(
        netgpt_sbi::config::TestbedConfig::load_default()?,
        dir.path(),
    );
    // One consumer drives thousands of requests a second: the per-consumer rate limit
    // would measure itself (`netgpt bench load` measures shedding).
    config.limits.nf_rate_per_s = 0.0;
    let bed = super::testbed::bring_up(config.clone()).await?;
    let addr_of = |t: &str| {
        bed.nfs
            .iter()
            .find(|n| n.nf_type.eq_ignore_ascii_case(t))
            .map(|n| n.addr)
    };
    let nrf = addr_of("NRF").context("the testbed started no NRF")?;
    let amf = addr_of("AMF").context("the testbed started no AMF")?;

    let mut bed_config = config.clone();
    bed_config.nrf.uri = format!("http://{nrf}");
    let bed_config = Arc::new(bed_config);

    // Twenty extra AMF-like profiles in two localities, so discovery filters and sorts.
    let client = reqwest::Client::builder().http2_prior_knowledge().build()?;
    let nfm = netgpt_sbi::oauth::request_token(&bed_config, "bench-sbi", "NRF", "nnrf-nfm")
        .await
        .map_err(|e| anyhow::anyhow!("access token for nnrf-nfm: {e}"))?;
    for i in 0..20u32 {
        let id = format!("00000000-0000-4000-8000-{i:012}");
        let profile = serde_json::json!({
            "nfInstanceId": id, "nfType": "AMF", "nfStatus": "REGISTERED", "heartBeatTimer": 3600,
            "locality": if i % 2 == 0 { "core" } else { "edge-london" },
            "ipv4Addresses": [format!("127.0.1.{}", i + 1)],
        });
        let mut rb = client.put(format!("http://{nrf}/nnrf-nfm/v1/nf-instances/{id}"));
        if !nfm.is_empty() {
            rb = rb.bearer_auth(&nfm);
        }
        let r = rb.json(&profile).send().await?;
        anyhow::ensure!(
            r.status().is_success(),
            "registering bench profile {i}: {}",
            r.status()
        );
    }
    let supi = config
        .ue
        .first()
        .map(|u| u.supi.clone())
        .context("the default config has no UE")?;
    // With `[oauth2]` on (the default) every request carries a token, checked (ES256
    // signature, audience, scope) by the NF on every call: part of what is measured.
    let bearer = |target: &'static str, service: &'static str| {
        let config = bed_config.clone();
        async move {
            let t = netgpt_sbi::oauth::request_token(&config, "bench-sbi", target, service)
                .await
                .map_err(|e| anyhow::anyhow!("access token for {service}: {e}"))?;
            anyhow::Ok((!t.is_empty()).then(|| format!("Bearer {t}")))
        }
    };
    let targets = vec![
        Target {
            name: "NFDiscover (nnrf-disc)".into(),
            addr: nrf,
            method: Method::GET,
            path: "/nnrf-disc/v1/nf-instances?target-nf-type=AMF&requester-nf-type=SMF&preferred-locality=edge-london&limit=5".into(),
            body: None,
            authorization: bearer("NRF", "nnrf-disc").await?,
        },
        Target {
            name: "ProvideLocationInfo (namf-loc)".into(),
            addr: amf,
            method: Method::POST,
            path: format!("/namf-loc/v1/{supi}/provide-loc-info"),
            body: Some(Bytes::from_static(br#"{"req5gsLoc":true,"reqCurrentLoc":true,"reqRatType":true}"#)),
            authorization: bearer("AMF", "namf-loc").await?,
        },
    ];
    let result = bench_targets(&targets, &args).await;
    bed.stop().await;
    result
}
