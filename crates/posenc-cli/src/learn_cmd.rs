//! The `learn`, `explain` and `advise` subcommands, and the interactive course (the only part of
//! the learning path that does I/O).

use std::io::{BufRead, Write};

use anyhow::bail;

use posenc_learn::{
    advise, check, explain, instance, list_exercises, solution, AdviceRequest, Arch, Instance,
    LearnErrorKind, Part, Verdict, Walkthrough, EXERCISE_COUNT,
};

/// Wrong attempts before the course shows the answer.
pub const MAX_ATTEMPTS: usize = 3;

/// Unreadable answers accepted in a row before the course moves on.
pub const MAX_MALFORMED: usize = 5;

/// Arguments of `posenc learn`.
#[derive(clap::Args)]
pub struct LearnArgs {
    /// `list`, or an exercise number 1..=10 (prints that exercise, or checks an answer with
    /// --part and --answer). Without it: the interactive course on stdin.
    target: Option<String>,
    /// Instance seed (default 0; the interactive course draws one when it is not given).
    #[arg(long)]
    seed: Option<u64>,
    /// The part to check: a, b or c (with --answer).
    #[arg(long)]
    part: Option<String>,
    /// The answer to check (with --part): a letter, numbers `1,2;3,4`, or JSON `[[1,2],[3,4]]`.
    #[arg(long, allow_hyphen_values = true)]
    answer: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Arguments of `posenc explain`.
#[derive(clap::Args)]
pub struct ExplainArgs {
    /// One of: why-position, sinusoidal, learned, relative, rope, alibi, scaling,
    /// decode-positions, mistakes.
    topic: String,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Arguments of `posenc advise`.
#[derive(clap::Args)]
pub struct AdviseArgs {
    /// Context length the model is trained on.
    #[arg(long)]
    train_len: usize,
    /// Context length it must serve.
    #[arg(long)]
    target_len: usize,
    /// Model architecture.
    #[arg(long, value_enum)]
    arch: ArchArg,
    /// Generation uses a KV cache.
    #[arg(long)]
    kv_cache: bool,
    /// The workload retrieves facts from far back in the context.
    #[arg(long)]
    retrieval: bool,
    /// Head size (rotary width) of the model, for the Men et al. base bound.
    #[arg(long, default_value_t = posenc_learn::DEFAULT_HEAD_DIM)]
    head_dim: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// `--arch` values.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ArchArg {
    /// Bidirectional attention (BERT-like).
    Encoder,
    /// Causal attention (GPT-like LLM).
    Decoder,
}

fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// Wraps `text` at `width` columns with `indent` before every line.
fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent.len() + line.len() + 1 + word.len() > width {
            out.push_str(indent);
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(indent);
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The instance as text.
pub fn render_instance(inst: &Instance) -> String {
    let mut s = format!(
        "Exercise {}: {} (seed {})\n\n{}",
        inst.exercise,
        inst.title,
        inst.seed,
        wrap(&inst.setup, 96, "")
    );
    for p in &inst.parts {
        s.push('\n');
        s.push_str(&wrap(
            &format!("({}) {}", p.part.letter(), p.question),
            96,
            "",
        ));
        for c in &p.choices {
            s.push_str(&wrap(&format!("{}. {}", c.key, c.text), 96, "    "));
        }
        let tol = match p.tolerance {
            Some(t) if t > 0.0 => format!(", each within {t}"),
            Some(_) => ", exact".to_string(),
            None => String::new(),
        };
        s.push_str(&wrap(
            &format!("Answer: {}{tol}.", p.answer_format),
            96,
            "    ",
        ));
    }
    s
}

/// The verdict as text.
pub fn render_verdict(v: &Verdict) -> String {
    let mut s = String::new();
    if v.correct {
        // The checkers' feedback usually opens with "Right" already.
        let feedback = v.feedback.as_deref().unwrap_or("");
        let line = if feedback.starts_with("Right") {
            feedback.to_string()
        } else {
            format!("Right. {feedback}")
        };
        s.push_str(&wrap(&line, 96, ""));
        for e in v.explanations.iter().filter(|e| !e.correct) {
            s.push_str(&wrap(
                &format!("{} ({}) is wrong: {}", e.key, e.text, e.explanation),
                96,
                "  ",
            ));
        }
    } else {
        s.push_str(&wrap(
            &format!("Not right yet. {}", v.hint.as_deref().unwrap_or("")),
            96,
            "",
        ));
    }
    s
}

/// `posenc learn`.
pub fn learn(args: LearnArgs) -> anyhow::Result<i32> {
    let Some(target) = args.target.as_deref() else {
        if args.part.is_some() || args.answer.is_some() || args.json {
            bail!("--part, --answer and --json need an exercise number: posenc learn N --part b --answer ...");
        }
        let seed = args.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() % 100_000)
                .unwrap_or(0)
        });
        let stdin = std::io::stdin();
        let stdout = std::io::stdout();
        let course = run_course(
            stdin.lock(),
            stdout.lock(),
            seed,
            &(1..=EXERCISE_COUNT).collect::<Vec<_>>(),
        );
        // Reading stdin never fails with EPIPE: a broken pipe is a closed stdout, which ends
        // the course quietly (status 0), like every other subcommand.
        return match course {
            Err(e)
                if e.chain().any(|c| {
                    c.downcast_ref::<std::io::Error>()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                }) =>
            {
                Ok(0)
            }
            other => other.map(|_| 0),
        };
    };
    if target == "list" {
        if args.part.is_some() || args.answer.is_some() {
            bail!("`posenc learn list` takes no --part or --answer");
        }
        let list = list_exercises();
        if args.json {
            print_json(&serde_json::json!({ "exercises": list }))?;
        } else {
            for e in &list {
                println!("{:>2}. {:<44} {}", e.exercise, e.title, e.computes);
            }
        }
        return Ok(0);
    }
    let n: u32 = match target.parse() {
        Ok(n) if (1..=EXERCISE_COUNT).contains(&n) => n,
        _ => bail!(
            "invalid exercise: expected `list` or a number 1..={EXERCISE_COUNT}, got `{target}`"
        ),
    };
    let seed = args.seed.unwrap_or(0);
    match (args.part.as_deref(), args.answer.as_deref()) {
        (None, None) => {
            let inst = instance(n, seed)?;
            if args.json {
                print_json(&inst)?;
            } else {
                print!("{}", render_instance(&inst));
                println!(
                    "\nCheck an answer: posenc learn {n} --seed {seed} --part b --answer '...'"
                );
            }
            Ok(0)
        }
        (Some(part), Some(answer)) => {
            let part: Part = part.parse()?;
            let v = check(n, seed, part, answer).map_err(|e| match e.kind {
                LearnErrorKind::MalformedAnswer => {
                    anyhow::anyhow!("invalid --answer: {}", e.message)
                }
                _ => e.into(),
            })?;
            if args.json {
                print_json(&v)?;
            } else {
                print!("{}", render_verdict(&v));
            }
            Ok(if v.correct { 0 } else { 1 })
        }
        (Some(_), None) => bail!("--part needs --answer"),
        (None, Some(_)) => bail!("--answer needs --part (a, b or c)"),
    }
}

/// What the interactive course scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Score {
    /// Parts answered right (at any attempt).
    pub right: usize,
    /// Parts answered right at the first attempt.
    pub first_try: usize,
    /// Parts asked.
    pub asked: usize,
    /// Whether the input ended before the course did.
    pub ended_early: bool,
}

enum Reply {
    Answer(String),
    Skip,
    Quit,
}

fn read_reply<R: BufRead>(input: &mut R) -> std::io::Result<Reply> {
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        return Ok(Reply::Quit);
    }
    Ok(match line.trim() {
        "q" | "quit" | "exit" => Reply::Quit,
        "s" | "skip" => Reply::Skip,
        t => Reply::Answer(t.to_string()),
    })
}

/// The interactive course: every part of every exercise in `exercises`, read from `input`
/// (one answer per line; `skip` skips a part, `quit` or end of input stops), with hints and up
/// to [`MAX_ATTEMPTS`] attempts; the score at the end. Works the same on a terminal and on a pipe.
pub fn run_course<R: BufRead, W: Write>(
    mut input: R,
    mut out: W,
    seed: u64,
    exercises: &[u32],
) -> anyhow::Result<Score> {
    let mut score = Score {
        right: 0,
        first_try: 0,
        asked: 0,
        ended_early: false,
    };
    writeln!(
        out,
        "posenc learning path: {} exercises, seed {seed} (rerun with --seed {seed} for the same \
         numbers).\nOne answer per line; `skip` skips a part, `quit` stops.\n",
        exercises.len()
    )?;
    'course: for &n in exercises {
        let inst = instance(n, seed)?;
        writeln!(
            out,
            "=== Exercise {}: {} ===\n{}",
            inst.exercise,
            inst.title,
            wrap(&inst.setup, 96, "")
        )?;
        for p in &inst.parts {
            score.asked += 1;
            write!(
                out,
                "{}",
                wrap(&format!("({}) {}", p.part.letter(), p.question), 96, "")
            )?;
            for c in &p.choices {
                write!(
                    out,
                    "{}",
                    wrap(&format!("{}. {}", c.key, c.text), 96, "    ")
                )?;
            }
            write!(
                out,
                "{}",
                wrap(&format!("Answer: {}.", p.answer_format), 96, "    ")
            )?;
            let mut attempts = 0;
            let mut malformed = 0;
            loop {
                write!(out, "> ")?;
                out.flush()?;
                let answer = match read_reply(&mut input)? {
                    Reply::Quit => {
                        score.ended_early = true;
                        writeln!(out)?;
                        break 'course;
                    }
                    Reply::Skip => {
                        writeln!(
                            out,
                            "Skipped. An accepted answer: {}",
                            solution(n, seed, p.part)?
                        )?;
                        break;
                    }
                    Reply::Answer(a) => a,
                };
                match check(n, seed, p.part, &answer) {
                    Err(e) if e.kind == LearnErrorKind::MalformedAnswer => {
                        malformed += 1;
                        writeln!(out, "Could not read that: {e}.")?;
                        if malformed >= MAX_MALFORMED {
                            writeln!(
                                out,
                                "Moving on. An accepted answer: {}",
                                solution(n, seed, p.part)?
                            )?;
                            break;
                        }
                    }
                    Err(e) => return Err(e.into()),
                    Ok(v) => {
                        attempts += 1;
                        malformed = 0;
                        write!(out, "{}", render_verdict(&v))?;
                        if v.correct {
                            score.right += 1;
                            if attempts == 1 {
                                score.first_try += 1;
                            }
                            break;
                        }
                        if attempts >= MAX_ATTEMPTS {
                            writeln!(out, "The answer: {}", solution(n, seed, p.part)?)?;
                            break;
                        }
                        writeln!(out, "Try again ({} left).", MAX_ATTEMPTS - attempts)?;
                    }
                }
            }
            writeln!(out)?;
        }
    }
    writeln!(
        out,
        "Score: {}/{} parts right ({} at the first try){}.",
        score.right,
        score.asked,
        score.first_try,
        if score.ended_early {
            ", stopped early"
        } else {
            ""
        }
    )?;
    out.flush()?;
    Ok(score)
}

fn fmt_num(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e12 {
        format!("{x:.0}")
    } else if x.abs() >= 1e5 || x.abs() < 1e-3 {
        format!("{x:.4e}")
    } else {
        format!("{x:.6}")
    }
}

/// The walkthrough as text.
pub fn render_walkthrough(w: &Walkthrough) -> String {
    let mut s = format!("{}\n\n", w.title);
    for p in &w.intro {
        s.push_str(&wrap(p, 96, ""));
    }
    for sec in &w.sections {
        s.push_str(&format!("\n== {} ==\n", sec.title));
        s.push_str(&wrap(&sec.text, 96, ""));
        for m in &sec.matrices {
            s.push_str(&format!("\n  {}\n", m.name));
            let label_w = m.row_labels.iter().map(|l| l.len()).max().unwrap_or(0);
            let cells: Vec<Vec<String>> = m
                .rows
                .iter()
                .map(|r| r.iter().map(|&x| fmt_num(x)).collect())
                .collect();
            let col_w = cells
                .iter()
                .flatten()
                .map(|c| c.len())
                .chain(m.column_labels.iter().map(|c| c.len()))
                .max()
                .unwrap_or(1);
            s.push_str(&format!("  {:label_w$}", ""));
            for c in &m.column_labels {
                s.push_str(&format!(" {c:>col_w$}"));
            }
            s.push('\n');
            for (label, row) in m.row_labels.iter().zip(&cells) {
                s.push_str(&format!("  {label:label_w$}"));
                for c in row {
                    s.push_str(&format!(" {c:>col_w$}"));
                }
                s.push('\n');
            }
        }
        for v in &sec.values {
            s.push_str(&format!("  {} = {}\n", v.name, fmt_num(v.value)));
        }
    }
    s
}

/// `posenc explain`.
pub fn explain_cmd(args: ExplainArgs) -> anyhow::Result<i32> {
    let w = explain(&args.topic)?;
    if args.json {
        print_json(&w)?;
    } else {
        print!("{}", render_walkthrough(&w));
    }
    Ok(0)
}

/// `posenc advise`.
pub fn advise_cmd(args: AdviseArgs) -> anyhow::Result<i32> {
    let a = advise(&AdviceRequest {
        train_len: args.train_len,
        target_len: args.target_len,
        arch: match args.arch {
            ArchArg::Encoder => Arch::Encoder,
            ArchArg::Decoder => Arch::Decoder,
        },
        kv_cache: args.kv_cache,
        retrieval: args.retrieval,
        head_dim: args.head_dim,
    })
    .map_err(|e| anyhow::anyhow!(e.message))?;
    if args.json {
        print_json(&a)?;
        return Ok(0);
    }
    print!(
        "{}",
        wrap(&format!("Recommendation: {}", a.summary), 96, "")
    );
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    println!(
        "Assumed: {} model, head size {} (--head-dim), KV cache: {}, long-range retrieval: {}.",
        match a.request.arch {
            Arch::Encoder => "encoder",
            Arch::Decoder => "decoder",
        },
        a.request.head_dim,
        yes_no(a.request.kv_cache),
        yes_no(a.request.retrieval)
    );
    if let Some(s) = &a.scaling {
        println!(
            "\nconfig.json:\n  {}",
            serde_json::to_string_pretty(&s.config)?.replace('\n', "\n  ")
        );
    }
    println!("\nWhy:");
    for r in &a.reasons {
        print!("{}", wrap(&format!("- [{}] {}", r.topic, r.text), 96, "  "));
    }
    println!("\nNot recommended:");
    for r in &a.not_recommended {
        print!("{}", wrap(&format!("- {}", r.text), 96, "  "));
    }
    println!("\nBefore trusting it, run:");
    for d in &a.diagnostics {
        println!("  {}", d.command);
        print!("{}", wrap(&d.why, 96, "      "));
    }
    println!("\nNumbers (posenc):");
    for f in &a.facts {
        println!("  {}: {}", f.name, f.value);
    }
    Ok(0)
}
