//! A small HTTP/1.1 load generator for what wrk cannot measure: time to first byte of
//! streamed answers, fixed-rate (open-loop) latency, and many long streams held open
//! at once. One keep-alive connection per worker, like wrk; results as JSON.
//!
//!   loadgen --url http://127.0.0.1:19081/app/v1/chat/completions \
//!     --header 'X-AG-API-Key: ag_…' --body '{"model":"m","messages":[…]}' \
//!     --connections 16 --duration 10 [--rate 1000] [--requests 1000]
//!
//! Closed loop (default): each connection sends its next request when the last one
//! ends. Open loop (`--rate`): requests are scheduled at a fixed rate. A request whose
//! connection was still busy at its scheduled time is counted from that time, so a
//! stall of the server shows as latency instead of hiding in a slower send rate (no
//! coordinated omission); any other is counted from when it was sent. Counting every
//! request from its scheduled time also counted the generator's own lateness: Tokio's
//! timer fires on millisecond ticks, so each wake-up came up to a millisecond after its
//! slot, by an offset that depended on where the run's start fell within a tick. That
//! offset differed from run to run by hundreds of microseconds, more than the proxies
//! add, and the difference went into each target's "added" latency. `--requests` stops
//! after that many (with `--connections` equal to it, every request is one long-held
//! stream).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

#[derive(Parser, Clone)]
struct Args {
    #[arg(long)]
    url: String,
    /// `Name: value`, repeatable.
    #[arg(long = "header")]
    headers: Vec<String>,
    #[arg(long, default_value = "{}")]
    body: String,
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Requests per second, open loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Stop after this many requests.
    #[arg(long)]
    requests: Option<u64>,
}

#[derive(Default)]
struct Tally {
    latency_us: Vec<u64>,
    ttfb_us: Vec<u64>,
    ok: u64,
    failed: u64,
    bytes: u64,
    /// Failures by what went wrong (a status, or the transport error).
    why: std::collections::BTreeMap<String, u64>,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(mut v: Vec<u64>) -> serde_json::Value {
    v.sort_unstable();
    json!({
        "p50": percentile(&v, 0.50), "p90": percentile(&v, 0.90), "p99": percentile(&v, 0.99),
        "p999": percentile(&v, 0.999), "max": v.last().copied().unwrap_or(0),
        "mean": if v.is_empty() { 0 } else { v.iter().sum::<u64>() / v.len() as u64 },
    })
}

struct Target {
    authority: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Bytes,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(t: &Target) -> anyhow::Result<Sender> {
    let stream = TcpStream::connect(&t.authority).await?;
    stream.set_nodelay(true)?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One request: (latency, time to first body byte, body bytes) or an error.
async fn once(sender: &mut Sender, t: &Target, since: Instant) -> anyhow::Result<(u64, u64, u64)> {
    sender.ready().await?;
    let mut req = http::Request::post(&t.path).header(http::header::HOST, &t.authority);
    for (k, v) in &t.headers {
        req = req.header(k, v);
    }
    let req = req
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(t.body.clone()))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let mut body = resp.into_body();
    let mut ttfb = None;
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            ttfb.get_or_insert_with(|| since.elapsed());
            bytes += data.len() as u64;
        }
    }
    let total = since.elapsed();
    anyhow::ensure!(status.is_success(), "status {}", status.as_u16());
    let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    Ok((us(total), us(ttfb.unwrap_or(total)), bytes))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let url: http::Uri = args.url.parse()?;
    let target = Arc::new(Target {
        authority: url
            .authority()
            .map(ToString::to_string)
            .ok_or_else(|| anyhow::anyhow!("the URL needs host:port"))?,
        path: url.path_and_query().map_or("/".into(), ToString::to_string),
        headers: args
            .headers
            .iter()
            .filter_map(|h| {
                let (k, v) = h.split_once(':')?;
                Some((k.trim().to_string(), v.trim().to_string()))
            })
            .collect(),
        body: Bytes::from(args.body.clone()),
    });
    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration);
    let issued = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let workers = args.connections.max(1);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (target, tally, issued) = (target.clone(), tally.clone(), issued.clone());
        let (rate, limit) = (args.rate, args.requests);
        tasks.push(tokio::spawn(async move {
            let mut sender = match connect(&target).await {
                Ok(s) => s,
                Err(_) => {
                    tally.lock().await.failed += 1;
                    return;
                }
            };
            let mut mine = Tally::default();
            let mut k: u64 = 0;
            // When this connection's last exchange ended (its connecting is not one:
            // the first request is counted from when it is sent).
            let mut free_at = started;
            loop {
                let n = issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if limit.is_some_and(|l| n >= l) {
                    break;
                }
                // Open loop: this worker's k-th slot of the schedule.
                let since = match rate {
                    Some(r) => {
                        let slot = started
                            + Duration::from_secs_f64((k * workers as u64 + w as u64) as f64 / r);
                        k += 1;
                        if slot >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(slot.into()).await;
                        if free_at > slot { slot } else { Instant::now() }
                    }
                    None => Instant::now(),
                };
                if rate.is_none() && since >= deadline {
                    break;
                }
                let result = once(&mut sender, &target, since).await;
                free_at = Instant::now();
                match result {
                    Ok((total, ttfb, bytes)) => {
                        mine.ok += 1;
                        mine.latency_us.push(total);
                        mine.ttfb_us.push(ttfb);
                        mine.bytes += bytes;
                    }
                    Err(e) => {
                        mine.failed += 1;
                        *mine.why.entry(e.to_string()).or_default() += 1;
                        match connect(&target).await {
                            Ok(s) => sender = s,
                            Err(_) => break,
                        }
                    }
                }
            }
            let mut t = tally.lock().await;
            t.ok += mine.ok;
            t.failed += mine.failed;
            t.bytes += mine.bytes;
            t.latency_us.extend(mine.latency_us);
            t.ttfb_us.extend(mine.ttfb_us);
            for (k, v) in mine.why {
                *t.why.entry(k).or_default() += v;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let t = std::mem::take(&mut *tally.lock().await);
    let out = json!({
        "requests": t.ok,
        "errors": t.failed,
        "error_kinds": t.why,
        "seconds": elapsed,
        "rps": t.ok as f64 / elapsed,
        "bytes": t.bytes,
        "latency_us": summary(t.latency_us),
        "ttfb_us": summary(t.ttfb_us),
    });
    println!("{out}");
    Ok(())
}
