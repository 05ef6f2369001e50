//! `posenc bench`: the kernels of issue 5 timed in one process, each against an in-place
//! streaming kernel measured in the same run (the memory-bandwidth limit).
//!
//! Every case is set up outside the clock, run once to warm up, then timed run by run until it
//! has at least `min_runs` samples and has used its time budget; the median is reported. A
//! case's `bytes` are the bytes it moves per run (read + write); `gbps = bytes / median`. After
//! every sample of a bandwidth-bound case one in-place stream pass over a buffer of the case's size class (128 MB,
//! or 512 MiB for K-shift) runs in the same thread pool; `ratio_to_stream = gbps /
//! stream_alongside_gbps`, the median bandwidth of those passes, so both are measured under the
//! same conditions; other cases (decode step, tables, attention) are compared with `stream_gbps`. `stream_gbps` (top level) is the best of dedicated stream runs before and
//! after all cases.
//! Speed is measured here and in `cargo bench`, never asserted in tests.

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

/// A timed closure: one run of the case.
pub type Timed = Box<dyn FnMut() + Send>;

/// Which streaming measurement a case's bandwidth is compared with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StreamClass {
    /// The buffer the size of the RoPE cases (128 MB; `stream_gbps`).
    Main,
    /// The buffer the size of the K-shift cache (512 MiB).
    Large,
}

/// One benchmark case: a name, the bytes one run moves, and a set-up that returns the run.
pub struct Case {
    name: String,
    bytes: u64,
    setup: Box<dyn FnOnce() -> Timed + Send>,
    extra: Map<String, Value>,
    threads: Option<usize>,
    stream: StreamClass,
    max_min_runs: Option<usize>,
    alongside: bool,
}

impl Case {
    /// A case moving `bytes` per run; `setup` builds its inputs (untimed) and returns the run.
    pub fn new(
        name: impl Into<String>,
        bytes: u64,
        setup: impl FnOnce() -> Timed + Send + 'static,
    ) -> Self {
        Case {
            name: name.into(),
            bytes,
            setup: Box::new(setup),
            extra: Map::new(),
            threads: None,
            stream: StreamClass::Main,
            max_min_runs: None,
            alongside: false,
        }
    }

    /// A bandwidth-bound case: alternate its samples with stream passes of its size class and
    /// compare with those (cache-resident cases such as a decode step are better without: the
    /// stream pass would evict their data before every sample).
    pub fn alongside_stream(mut self) -> Self {
        self.alongside = true;
        self
    }

    /// Caps the minimum number of samples for a case that takes seconds per run.
    pub fn few_runs(mut self, n: usize) -> Self {
        self.max_min_runs = Some(n.max(1));
        self
    }

    /// Adds a field to the case's JSON result.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    /// Runs the case in a pool of `n` threads instead of rayon's global pool.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n);
        self
    }

    /// Compares the case with the given stream measurement.
    pub fn stream(mut self, class: StreamClass) -> Self {
        self.stream = class;
        self
    }
}

/// Sizes and time budgets of one `posenc bench` run.
pub struct BenchConfig {
    /// Small shapes and budgets (for tests and a first look).
    pub quick: bool,
    /// Samples per case, at least.
    pub min_runs: usize,
    /// Time per case, at least (runs continue until both limits are met).
    pub budget: Duration,
}

impl BenchConfig {
    /// `full` normally, `quick` with `--quick`.
    pub fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }
}

/// Arguments of `posenc bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Print `{"stream_gbps": X, "results": [...]}` instead of a table.
    #[arg(long)]
    json: bool,
    /// Small shapes and short budgets (seconds instead of minutes; numbers not representative).
    #[arg(long)]
    quick: bool,
    /// Run only the cases whose name contains this text (the stream cases always run).
    #[arg(long)]
    filter: Option<String>,
    /// Samples per case, at least (default 5; 2 with --quick); 1 or more.
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    runs: Option<usize>,
}

/// Groups of cases, in the order they run.
const GROUPS: &[fn(&BenchConfig) -> Vec<Case>] =
    &[crate::bench_rope::cases, crate::bench_attention::cases];

struct Measured {
    name: String,
    bytes: u64,
    samples: Vec<u64>,
    extra: Map<String, Value>,
    threads: usize,
    stream: StreamClass,
    stream_samples: Vec<u64>,
    stream_bytes: u64,
}

fn median(v: &[u64]) -> u64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    s.get(s.len() / 2).copied().unwrap_or(0)
}

impl Measured {
    /// Bandwidth of the stream passes run alongside this case (None for the stream cases).
    fn stream_alongside_gbps(&self) -> Option<f64> {
        (!self.stream_samples.is_empty())
            .then(|| self.stream_bytes as f64 / median(&self.stream_samples).max(1) as f64)
    }

    fn median_ns(&self) -> u64 {
        median(&self.samples)
    }

    fn min_ns(&self) -> u64 {
        self.samples.iter().copied().min().unwrap_or(0)
    }

    fn gbps(&self) -> f64 {
        self.bytes as f64 / self.median_ns().max(1) as f64
    }
}

/// A stream pass run in alternation with a case's samples, and the bytes it moves.
pub struct Alongside {
    run: Timed,
    bytes: u64,
}

impl Alongside {
    /// The stream pass of one size class (`bytes` moved per run).
    pub fn new(run: Timed, bytes: u64) -> Self {
        Alongside { run, bytes }
    }
}

fn measure(
    case: Case,
    cfg: &BenchConfig,
    mut alongside: Option<&mut Alongside>,
) -> anyhow::Result<Measured> {
    let Case {
        name,
        bytes,
        setup,
        extra,
        threads,
        stream,
        max_min_runs,
        alongside: _,
    } = case;
    let min_runs = cfg.min_runs.min(max_min_runs.unwrap_or(usize::MAX));
    let pool = match threads {
        Some(n) => Some(rayon::ThreadPoolBuilder::new().num_threads(n).build()?),
        None => None,
    };
    // Each sample of the case is followed by one stream pass in the same pool, so the ratio
    // compares the two under the same conditions (the machine's bandwidth drifts from minute to
    // minute on a shared host).
    let stream_bytes = alongside.as_ref().map_or(0, |a| a.bytes);
    let run = || {
        let mut f = setup();
        f();
        let (mut samples, mut stream_samples) = (Vec::new(), Vec::new());
        let started = Instant::now();
        while samples.len() < min_runs || started.elapsed() < cfg.budget {
            let t = Instant::now();
            f();
            samples.push(t.elapsed().as_nanos() as u64);
            if let Some(a) = alongside.as_deref_mut() {
                let t = Instant::now();
                (a.run)();
                stream_samples.push(t.elapsed().as_nanos() as u64);
            }
            if samples.len() >= 10_000 {
                break;
            }
        }
        (samples, stream_samples)
    };
    let (samples, stream_samples) = match &pool {
        Some(p) => p.install(run),
        None => run(),
    };
    Ok(Measured {
        name,
        bytes,
        samples,
        extra,
        threads: threads.unwrap_or_else(rayon::current_num_threads),
        stream,
        stream_samples,
        stream_bytes,
    })
}

/// Runs `posenc bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<i32> {
    let cfg = BenchConfig {
        quick: args.quick,
        min_runs: args.runs.unwrap_or(if args.quick { 2 } else { 5 }).max(1),
        budget: if args.quick {
            Duration::from_millis(20)
        } else {
            Duration::from_millis(1500)
        },
    };
    let progress = !args.json;
    let mut results = Vec::new();
    let (mut main_stream, mut large_stream) = (None, None);
    let mut run_case =
        |c: Case, results: &mut Vec<Measured>, with_stream: bool| -> anyhow::Result<()> {
            if progress {
                eprint!("  {:<40}\r", c.name);
            }
            let slot = match c.stream {
                StreamClass::Main => &mut main_stream,
                StreamClass::Large => &mut large_stream,
            };
            let alongside = if with_stream && c.alongside {
                Some(slot.get_or_insert_with(|| crate::bench_rope::alongside(&cfg, c.stream)))
            } else {
                None
            };
            results.push(measure(c, &cfg, alongside)?);
            Ok(())
        };
    // The limit before and after the kernels; the better of the two is the yardstick.
    for c in crate::bench_rope::stream_cases(&cfg, "before") {
        run_case(c, &mut results, false)?;
    }
    for group in GROUPS {
        for c in group(&cfg) {
            if args.filter.as_deref().is_some_and(|f| !c.name.contains(f)) {
                continue;
            }
            run_case(c, &mut results, true)?;
        }
    }
    for c in crate::bench_rope::stream_cases(&cfg, "after") {
        run_case(c, &mut results, false)?;
    }
    if progress {
        eprint!("{:<44}\r", "");
    }
    let best_stream = |prefix: &str| {
        results
            .iter()
            .filter(|m| m.name.starts_with(prefix))
            .map(Measured::gbps)
            .fold(0.0f64, f64::max)
    };
    let stream_main = best_stream(crate::bench_rope::STREAM_MAIN);
    let stream_large = best_stream(crate::bench_rope::STREAM_LARGE);
    let rows: Vec<Value> = results
        .iter()
        .map(|m| {
            let stream = m.stream_alongside_gbps().unwrap_or(match m.stream {
                StreamClass::Main => stream_main,
                StreamClass::Large => stream_large,
            });
            let mut o = Map::new();
            o.insert("name".into(), json!(m.name));
            o.insert("gbps".into(), json!(m.gbps()));
            o.insert("ratio_to_stream".into(), json!(m.gbps() / stream));
            o.insert("median_ns".into(), json!(m.median_ns()));
            o.insert("min_ns".into(), json!(m.min_ns()));
            o.insert("runs".into(), json!(m.samples.len()));
            o.insert("bytes".into(), json!(m.bytes));
            o.insert("threads".into(), json!(m.threads));
            o.insert("stream_alongside_gbps".into(), json!(stream));
            o.insert(
                "stream".into(),
                json!(match m.stream {
                    StreamClass::Main => "stream_gbps",
                    StreamClass::Large => "stream_gbps_512mib",
                }),
            );
            o.extend(m.extra.clone());
            Value::Object(o)
        })
        .collect();
    if args.json {
        println!(
            "{}",
            json!({
                "stream_gbps": stream_main,
                "stream_gbps_512mib": stream_large,
                "quick": cfg.quick,
                "threads": rayon::current_num_threads(),
                "results": rows,
            })
        );
        return Ok(0);
    }
    println!(
        "stream (in-place read + write): {stream_main:.2} GB/s ({}), {stream_large:.2} GB/s (512 MiB); {} threads{}",
        if cfg.quick { "quick buffer" } else { "128 MB" },
        rayon::current_num_threads(),
        if cfg.quick { "; --quick: sizes are not representative" } else { "" }
    );
    println!(
        "{:<36} {:>12} {:>12} {:>9} {:>8} {:>5}",
        "case", "median", "min", "GB/s", "×stream", "runs"
    );
    for r in &rows {
        let ns = |k: &str| r[k].as_u64().unwrap_or(0);
        let mut line = format!(
            "{:<36} {:>12} {:>12} {:>9.2} {:>8.3} {:>5}",
            r["name"].as_str().unwrap_or(""),
            human_ns(ns("median_ns")),
            human_ns(ns("min_ns")),
            r["gbps"].as_f64().unwrap_or(0.0),
            r["ratio_to_stream"].as_f64().unwrap_or(0.0),
            ns("runs"),
        );
        if let Some(f) = r["flops"].as_f64() {
            line += &format!("  {:.1} GFLOP/s", f / ns("median_ns").max(1) as f64);
        }
        if let Some(t) = r["tensor_bytes"].as_u64() {
            line += &format!("  bias+score tensors {} MiB", t >> 20);
        }
        println!("{line}");
    }
    Ok(0)
}

fn human_ns(ns: u64) -> String {
    match ns {
        0..=9_999 => format!("{ns} ns"),
        10_000..=9_999_999 => format!("{:.2} µs", ns as f64 / 1e3),
        10_000_000..=9_999_999_999 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}
