//! The data path: one task per connection, one pump per direction.
//!
//! Each pump reads chunks as soon as they arrive, stamps them with their
//! arrival time and queues them; the writer side delivers each chunk at
//! `arrival + latency`, so a chunk that waited behind others is never delayed
//! again. FIN is passed on only after every queued byte was written, and the
//! toxic list is re-read from a `watch` channel while the connection stays up.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{sleep, sleep_until, Instant};

use crate::toxic::{Stream, ToxicKind, ToxicSpec};

/// A toxic as installed on a proxy; `id` survives updates so per-connection
/// state (its toxicity roll, its start time, its byte count) survives too.
#[derive(Debug, Clone)]
pub(crate) struct ActiveToxic {
    pub id: u64,
    pub spec: ToxicSpec,
}

/// The toxic list every pump of a proxy watches.
pub(crate) type ToxicList = Arc<Vec<ActiveToxic>>;

/// Read size: large enough for bulk throughput, one syscall per chunk.
const BUF_SIZE: usize = 64 * 1024;
/// Bytes a pump may hold while toxics delay them; beyond it we stop reading,
/// so TCP backpressure reaches the sender instead of our memory growing.
const MAX_QUEUED: usize = 4 * 1024 * 1024;
/// Written chunks' buffers kept for reuse, per pump.
const MAX_SPARE: usize = 8;

/// `FIREDRILL_PROXY_SPLICE=0` turns the zero-copy path off, to compare.
#[cfg(target_os = "linux")]
fn splice_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("FIREDRILL_PROXY_SPLICE").map_or(true, |v| v != "0"))
}

/// Why a connection ends early, on a toxic's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Abort {
    /// Close both sides (`limit_data`, `timeout` > 0).
    Close,
    /// Reset both sides with RST (`reset_peer`).
    Reset,
}

/// Byte counters of one connection, one per direction.
pub(crate) struct ConnCounters {
    pub up: Counter,
    pub down: Counter,
}

/// Proxies one accepted client to `upstream` until both directions end.
pub(crate) async fn run_connection(
    mut client: TcpStream,
    mut upstream: TcpStream,
    toxics: watch::Receiver<ToxicList>,
    counters: ConnCounters,
) {
    // Small writes (acknowledgements, pings) must not wait for Nagle.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let result = {
        let (cr, cw) = client.split();
        let (ur, uw) = upstream.split();
        let up = Pump::new(Stream::Upstream, toxics.clone(), counters.up).run(cr, uw);
        let down = Pump::new(Stream::Downstream, toxics, counters.down).run(ur, cw);
        tokio::try_join!(up, down)
    };
    if let Err(Abort::Reset) = result {
        // SO_LINGER 0 turns the close below into an RST on both sides.
        for s in [&client, &upstream] {
            let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
        }
    }
}

/// Per-connection state of one toxic.
struct ToxicState {
    /// The toxicity roll, drawn once for this connection and direction.
    applies: bool,
    /// When this pump first saw the toxic: timers count from here.
    since: Instant,
    /// `delivered` at that moment, for `limit_data`.
    delivered_at_start: u64,
}

/// The effect of all applicable toxics of one direction, folded together.
#[derive(Debug, Default, Clone)]
struct Plan {
    latency: Duration,
    jitter: Duration,
    /// Bytes per second; `None` = unlimited.
    rate: Option<u64>,
    /// (average, variation, delay between pieces).
    slicer: Option<(u64, u64, Duration)>,
    slow_close: Duration,
    /// A `timeout` toxic is active: data is dropped, FIN is held.
    blackhole: bool,
    /// The earliest forced end of the connection.
    kill: Option<(Instant, Abort)>,
    /// Total `delivered` count at which `limit_data` closes the connection.
    limit_at: Option<u64>,
    passthrough: bool,
}

fn earliest(slot: &mut Option<(Instant, Abort)>, at: Instant, why: Abort) {
    match slot {
        Some((k, _)) if *k <= at => {}
        _ => *slot = Some((at, why)),
    }
}

struct Chunk {
    at: Instant,
    /// Jitter draw in [-1, 1], fixed at arrival so re-planning is stable.
    jitter: f64,
    data: Vec<u8>,
    off: usize,
}

enum Event {
    Read(std::io::Result<usize>),
    Wrote(std::io::Result<usize>),
    Changed(bool),
    Kill(Abort),
}

struct Pump {
    stream: Stream,
    rx: watch::Receiver<ToxicList>,
    rx_open: bool,
    states: HashMap<u64, ToxicState>,
    plan: Plan,
    counter: Counter,
    queue: VecDeque<Chunk>,
    queued: usize,
    /// Buffers of written chunks, for the next reads.
    spare: Vec<Vec<u8>>,
    delivered: u64,
    /// Earliest time the next piece may be written (bandwidth, slicer).
    next_send: Instant,
    eof: bool,
    /// The destination failed a write: drain the source, deliver nothing.
    broken: bool,
}

impl Pump {
    fn new(stream: Stream, rx: watch::Receiver<ToxicList>, counter: Counter) -> Self {
        let mut pump = Pump {
            stream,
            rx,
            rx_open: true,
            states: HashMap::new(),
            plan: Plan::default(),
            counter,
            queue: VecDeque::new(),
            queued: 0,
            spare: Vec::new(),
            delivered: 0,
            next_send: Instant::now(),
            eof: false,
            broken: false,
        };
        pump.refresh();
        pump
    }

    /// Re-reads the toxic list and folds it into a plan.
    fn refresh(&mut self) {
        let list = self.rx.borrow_and_update().clone();
        let now = Instant::now();
        let mut states = HashMap::new();
        let mut plan = Plan::default();
        for t in list.iter().filter(|t| t.spec.stream == self.stream) {
            let st = self.states.remove(&t.id).unwrap_or_else(|| ToxicState {
                applies: rand::random::<f32>() < t.spec.toxicity,
                since: now,
                delivered_at_start: self.delivered,
            });
            if st.applies {
                match t.spec.kind {
                    ToxicKind::Latency { latency, jitter } => {
                        plan.latency += Duration::from_millis(latency);
                        plan.jitter += Duration::from_millis(jitter);
                    }
                    ToxicKind::Bandwidth { rate } => {
                        if rate > 0 {
                            let bps = rate.saturating_mul(1000);
                            plan.rate = Some(plan.rate.map_or(bps, |r| r.min(bps)));
                        }
                    }
                    ToxicKind::SlowClose { delay } => {
                        plan.slow_close += Duration::from_millis(delay);
                    }
                    ToxicKind::Timeout { timeout } => {
                        plan.blackhole = true;
                        if timeout > 0 {
                            earliest(
                                &mut plan.kill,
                                st.since + Duration::from_millis(timeout),
                                Abort::Close,
                            );
                        }
                    }
                    ToxicKind::ResetPeer { timeout } => {
                        earliest(
                            &mut plan.kill,
                            st.since + Duration::from_millis(timeout),
                            Abort::Reset,
                        );
                    }
                    ToxicKind::Slicer {
                        average_size,
                        size_variation,
                        delay,
                    } => {
                        if plan.slicer.is_none() && average_size > 0 {
                            plan.slicer = Some((
                                average_size,
                                size_variation.min(average_size - 1),
                                Duration::from_micros(delay),
                            ));
                        }
                    }
                    ToxicKind::LimitData { bytes } => {
                        let at = st.delivered_at_start.saturating_add(bytes);
                        plan.limit_at = Some(plan.limit_at.map_or(at, |l| l.min(at)));
                    }
                }
            }
            states.insert(t.id, st);
        }
        plan.passthrough = states.values().all(|s| !s.applies);
        self.states = states;
        self.plan = plan;
        if self.plan.blackhole {
            self.drop_queue();
        }
    }

    fn drop_queue(&mut self) {
        self.queue.clear();
        self.queued = 0;
    }

    async fn run<R, W>(mut self, mut r: R, mut w: W) -> Result<(), Abort>
    where
        R: AsyncRead + Unpin + AsRef<TcpStream>,
        W: AsyncWrite + Unpin + AsRef<TcpStream>,
    {
        let mut buf = vec![0u8; BUF_SIZE];
        // The queued path reads straight into the chunk's own buffer, and a
        // written chunk's buffer is reused: no copy and no allocation per
        // chunk in the steady state.
        let mut inbuf: Vec<u8> = Vec::with_capacity(BUF_SIZE);
        #[cfg(target_os = "linux")]
        let mut pipe = if splice_enabled() {
            crate::splice::Pipe::new().ok()
        } else {
            None
        };
        loop {
            if self.plan.passthrough && self.queue.is_empty() && !self.eof && !self.broken {
                #[cfg(target_os = "linux")]
                if let Some(pipe) = pipe.as_mut() {
                    self.splice_step(pipe, r.as_ref(), w.as_ref()).await;
                    continue;
                }
                self.fast_step(&mut r, &mut w, &mut buf).await;
                continue;
            }
            let discard = self.plan.blackhole || self.broken;
            if self.eof && self.queue.is_empty() && (!self.plan.blackhole || self.broken) {
                if !self.broken {
                    if !self.plan.slow_close.is_zero() {
                        sleep(self.plan.slow_close).await;
                    }
                    // Half-close only after every byte was written.
                    let _ = w.shutdown().await;
                }
                return Ok(());
            }
            let event = {
                let write = Self::next_write(
                    &self.plan,
                    &self.queue,
                    self.delivered,
                    self.next_send,
                    &mut w,
                );
                let kill = self.plan.kill;
                tokio::select! {
                    biased;
                    Some(why) = async { match kill {
                        Some((at, why)) => { sleep_until(at).await; Some(why) }
                        None => None,
                    } } => Event::Kill(why),
                    c = self.rx.changed(), if self.rx_open => Event::Changed(c.is_ok()),
                    res = write, if !discard && !self.queue.is_empty() => Event::Wrote(res),
                    res = r.read_buf(&mut inbuf), if !self.eof && self.queued < MAX_QUEUED => Event::Read(res),
                    _ = std::future::pending::<()>() => Event::Changed(true),
                }
            };
            match event {
                Event::Kill(why) => return Err(why),
                Event::Changed(open) => {
                    self.rx_open = open;
                    if open {
                        self.refresh();
                    }
                }
                Event::Read(Ok(0)) | Event::Read(Err(_)) => self.eof = true,
                Event::Read(Ok(n)) => {
                    if !discard {
                        let jitter = if self.plan.jitter.is_zero() {
                            0.0
                        } else {
                            rand::random::<f64>() * 2.0 - 1.0
                        };
                        let next = self
                            .spare
                            .pop()
                            .unwrap_or_else(|| Vec::with_capacity(BUF_SIZE));
                        self.queue.push_back(Chunk {
                            at: Instant::now(),
                            jitter,
                            data: std::mem::replace(&mut inbuf, next),
                            off: 0,
                        });
                        self.queued += n;
                    } else {
                        inbuf.clear();
                    }
                }
                Event::Wrote(Err(_)) | Event::Wrote(Ok(0)) => {
                    self.broken = true;
                    self.drop_queue();
                }
                Event::Wrote(Ok(n)) => self.after_write(n)?,
            }
        }
    }

    /// No toxic applies: move bytes kernel to kernel. Reading and writing
    /// overlap (the pipe is the buffer between them), so the sender never
    /// waits for the receiver's previous pipe-full. A toxic change stops
    /// the reading, and the pipe is drained before the new plan applies, so
    /// no byte is stranded or reordered when the path changes. Returns at
    /// end of stream, on a broken destination, or after a toxic change.
    #[cfg(target_os = "linux")]
    async fn splice_step(
        &mut self,
        pipe: &mut crate::splice::Pipe,
        src: &TcpStream,
        dst: &TcpStream,
    ) {
        use std::io::ErrorKind::{Interrupted, WouldBlock};
        let mut held = 0usize;
        let mut src_eof = false;
        let mut changed = false;
        loop {
            let want_read = !changed && !src_eof && held < pipe.cap();
            let want_write = held > 0;
            if !want_write {
                if src_eof {
                    self.eof = true;
                    return;
                }
                if changed {
                    self.refresh();
                    return;
                }
            }
            tokio::select! {
                biased;
                r = dst.writable(), if want_write => {
                    if r.is_err() {
                        self.broken = true;
                        return;
                    }
                    match pipe.drain_now(dst, held) {
                        Ok(0) => { self.broken = true; return; }
                        Ok(m) => {
                            held -= m;
                            self.delivered += m as u64;
                            self.counter.inc_by(m as u64);
                        }
                        Err(e) if e.kind() == WouldBlock || e.kind() == Interrupted => {}
                        // The destination failed: the bytes in flight are
                        // lost with it.
                        Err(_) => { self.broken = true; return; }
                    }
                }
                r = src.readable(), if want_read => {
                    if r.is_err() {
                        src_eof = true;
                        continue;
                    }
                    match pipe.fill_now(src, pipe.cap() - held) {
                        Ok(0) => src_eof = true,
                        Ok(n) => held += n,
                        Err(e) if e.kind() == WouldBlock || e.kind() == Interrupted => {}
                        // A failed source is treated as its end, so every
                        // byte already read is still delivered.
                        Err(_) => src_eof = true,
                    }
                }
                c = self.rx.changed(), if self.rx_open && !changed => {
                    self.rx_open = c.is_ok();
                    changed = self.rx_open;
                }
            }
        }
    }

    /// No toxic applies: read and write straight through.
    async fn fast_step<R, W>(&mut self, r: &mut R, w: &mut W, buf: &mut [u8])
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let event = tokio::select! {
            biased;
            res = r.read(buf) => Event::Read(res),
            c = self.rx.changed(), if self.rx_open => Event::Changed(c.is_ok()),
        };
        match event {
            Event::Read(Ok(0)) | Event::Read(Err(_)) => self.eof = true,
            Event::Read(Ok(n)) => {
                if w.write_all(&buf[..n]).await.is_ok() {
                    self.delivered += n as u64;
                    self.counter.inc_by(n as u64);
                } else {
                    self.broken = true;
                }
            }
            Event::Changed(open) => {
                self.rx_open = open;
                if open {
                    self.refresh();
                }
            }
            _ => {}
        }
    }

    /// The write of the next piece of the head chunk, after waiting for its
    /// due time. Cancel-safe: dropped before completion, it wrote nothing.
    fn next_write<'a, W: AsyncWrite + Unpin>(
        plan: &'a Plan,
        queue: &'a VecDeque<Chunk>,
        delivered: u64,
        next_send: Instant,
        w: &'a mut W,
    ) -> impl std::future::Future<Output = std::io::Result<usize>> + 'a {
        let head = queue.front();
        let mut due = None;
        let mut piece: &[u8] = &[];
        if let Some(c) = head {
            let mut at = c.at + plan.latency;
            if !plan.jitter.is_zero() {
                let j = plan.jitter.as_secs_f64() * c.jitter;
                at = if j >= 0.0 {
                    at + Duration::from_secs_f64(j)
                } else {
                    at.checked_sub(Duration::from_secs_f64(-j))
                        .unwrap_or(c.at)
                        .max(c.at)
                };
            }
            due = Some(at.max(next_send));
            let rest = &c.data[c.off..];
            let mut len = rest.len();
            if let Some((avg, var, _)) = plan.slicer {
                let size = if var == 0 {
                    avg
                } else {
                    avg - var + rand::random::<u64>() % (2 * var + 1)
                };
                len = len.min(size.max(1) as usize);
            }
            if let Some(rate) = plan.rate {
                // At most 10 ms worth per write keeps the pacing smooth.
                len = len.min((rate / 100).max(1) as usize);
            }
            if let Some(limit) = plan.limit_at {
                len = len.min(limit.saturating_sub(delivered) as usize);
            }
            piece = &rest[..len];
        }
        async move {
            if let Some(due) = due {
                // Never touch the timer for a due time already passed: tokio's
                // timer would round it up to the next millisecond tick.
                if due > Instant::now() {
                    sleep_until(due).await;
                }
            }
            if piece.is_empty() {
                return Ok(usize::MAX);
            }
            w.write(piece).await
        }
    }

    fn after_write(&mut self, n: usize) -> Result<(), Abort> {
        if n == usize::MAX {
            // Nothing could be written: the limit_data budget is spent.
            return Err(Abort::Close);
        }
        let now = Instant::now();
        self.delivered += n as u64;
        self.counter.inc_by(n as u64);
        if let Some(c) = self.queue.front_mut() {
            c.off += n;
            if c.off >= c.data.len() {
                self.queued -= c.data.len();
                if let Some(mut done) = self.queue.pop_front().map(|c| c.data) {
                    if self.spare.len() < MAX_SPARE && done.capacity() >= BUF_SIZE {
                        done.clear();
                        self.spare.push(done);
                    }
                }
            }
        }
        if let Some(rate) = self.plan.rate {
            let base = self.next_send.max(now);
            self.next_send = base + Duration::from_secs_f64(n as f64 / rate as f64);
        }
        if let Some((_, _, delay)) = self.plan.slicer {
            self.next_send = self.next_send.max(now + delay);
        }
        if let Some(limit) = self.plan.limit_at {
            if self.delivered >= limit {
                return Err(Abort::Close);
            }
        }
        Ok(())
    }
}
