//! The `posenc` command line: positional encodings computed by the posenc library.
//!
//! Every subcommand prints readable text by default and one JSON object with `--json`.
//! Bad input exits with status 2 and a one-line message on stderr; no input produces a panic.

use std::io::Write;

use clap::{Parser, Subcommand};

mod bench_attention;
mod bench_cmd;
mod bench_rope;
mod core_cmds;
mod lab_cmd;
mod learn_cmd;
mod model_cmd;
mod model_serve;
mod plots;
mod probe;
mod serve;
mod tables;

/// Command-line interface of posenc.
#[derive(Parser)]
#[command(
    name = "posenc",
    version,
    about = "Transformer positional encodings, exact against Hugging Face"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// RoPE inverse frequencies and cos/sin rows for a Hugging Face config.json.
    Rope(core_cmds::RopeArgs),
    /// A practitioner's report on a config.json: scheme, per-pair wavelengths, bands, base bound, lint.
    Inspect(core_cmds::InspectArgs),
    /// ALiBi slopes (and the bias matrix) for a number of heads.
    Alibi(tables::AlibiArgs),
    /// T5 relative-position buckets over a range of relative positions.
    #[command(name = "t5-buckets")]
    T5Buckets(tables::T5Args),
    /// A sinusoidal position table.
    Sinusoidal(tables::SinusoidalArgs),
    /// Run a real model (SmolLM2-135M) and position diagnostics on it.
    Model(model_cmd::ModelArgs),
    /// Serve the interactive explorer on 127.0.0.1.
    Serve(serve::ServeArgs),
    /// The learning path: `learn` (interactive course), `learn list`, `learn N --seed S`,
    /// `learn N --seed S --part a|b|c --answer ...` (exit 0 right, 1 wrong, 2 malformed).
    Learn(learn_cmd::LearnArgs),
    /// A walkthrough of one topic with numbers computed by posenc (`--json` for the structure).
    Explain(learn_cmd::ExplainArgs),
    /// Recommend a position scheme and scaling for a training and a target length.
    Advise(learn_cmd::AdviseArgs),
    /// Time the fast kernels (RoPE, tables, K-shift, fused attention) against the memory bandwidth.
    Bench(bench_cmd::BenchArgs),
    /// Train small transformers with each position scheme and test them past their training length.
    Lab(lab_cmd::LabArgs),
    /// Position diagnostics of a running inference server through its HTTP API (OpenAI-compatible
    /// or llama.cpp): decode vs prefill, batch invariance, prefix cache, passkey, reference logprobs.
    Probe(probe::ProbeArgs),
}

/// Runs one subcommand and returns the process exit status. An `Err` is reported as one line
/// on stderr with exit status 2 (bad input); a subcommand that ran but found a failure returns 1.
fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Rope(args) => core_cmds::rope(args),
        Command::Inspect(args) => core_cmds::inspect(args),
        Command::Alibi(args) => tables::alibi(args),
        Command::T5Buckets(args) => tables::t5_buckets(args),
        Command::Sinusoidal(args) => tables::sinusoidal(args),
        Command::Model(args) => model_cmd::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Learn(args) => learn_cmd::learn(args),
        Command::Explain(args) => learn_cmd::explain_cmd(args),
        Command::Advise(args) => learn_cmd::advise_cmd(args),
        Command::Bench(args) => bench_cmd::run(args),
        Command::Lab(args) => lab_cmd::run(args),
        Command::Probe(args) => probe::run(args),
    }
}

fn main() {
    // A panic is a bug in posenc, never a verdict on the input; even then, report it on one
    // line without a backtrace (exit status 101, so tests that expect 2 still catch it).
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        // `println!` panics when stdout is a closed pipe (`posenc ... | head -1`): the reader
        // has what it wanted, so stop quietly with status 0, as ripgrep does.
        if is_closed_stdout_panic(&message) {
            std::process::exit(0);
        }
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        // Not `eprintln!`: a closed stderr must not panic inside the panic hook.
        let _ = writeln!(
            std::io::stderr(),
            "posenc: internal error (a bug, please report it): {}{place}",
            message.replace('\n', " ")
        );
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = err.print();
                std::process::exit(
                    if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                        2
                    } else {
                        0
                    },
                );
            }
            // clap's message spans several lines (problem, usage, hints): keep the problem, on one line.
            let rendered = err.render().to_string();
            let problem: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let problem = overflow_message(&err).unwrap_or_else(|| problem.join(" "));
            let _ = writeln!(
                std::io::stderr(),
                "posenc: error: {} (see `posenc --help`)",
                problem.trim_start_matches("error: ")
            );
            std::process::exit(2);
        }
    };
    let code = match run(cli) {
        Ok(code) => code,
        Err(err) => {
            // One line: the chain of causes joined, no backtrace.
            let msg = format!("{err:#}").replace('\n', " ");
            let _ = writeln!(std::io::stderr(), "posenc: error: {msg}");
            2
        }
    };
    std::process::exit(code);
}

/// Whether a panic message is `println!`'s failure on a closed stdout (EPIPE).
fn is_closed_stdout_panic(message: &str) -> bool {
    message.starts_with("failed printing to stdout") && message.contains("Broken pipe")
}

/// clap's "number too large to fit in target type" for an integer argument, as
/// "too large (max N)". Every integer argument of posenc is a `usize` or `u64` (the port, a
/// `u16`, gets clap's own range message).
fn overflow_message(err: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ErrorKind};
    use std::num::IntErrorKind;
    if err.kind() != ErrorKind::ValueValidation {
        return None;
    }
    let source = std::error::Error::source(err)?.downcast_ref::<std::num::ParseIntError>()?;
    if *source.kind() != IntErrorKind::PosOverflow {
        return None;
    }
    let arg = err.get(ContextKind::InvalidArg)?;
    let value = err.get(ContextKind::InvalidValue)?;
    Some(format!(
        "invalid value '{value}' for '{arg}': too large (max {})",
        u64::MAX
    ))
}
