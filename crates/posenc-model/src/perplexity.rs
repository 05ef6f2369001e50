//! Perplexity against context length, under several RoPE scalings.
//!
//! For a context length `L`, a window of `L` consecutive tokens of the text is run in one
//! forward pass; the model predicts tokens `1..L` from their prefixes. Two numbers per `L`:
//!
//! * `ppl`: `exp(mean NLL)` over the `L − 1` predictions of the window (every context size from 1
//!   to `L − 1` mixed, the usual "perplexity at context L");
//! * `tail_ppl`: `exp(mean NLL)` over the last `tail` predictions only, made with about `L`
//!   tokens of context: this is where a position scheme that fails past its training length shows.
//!
//! With several windows (spread evenly over the text) the NLLs are pooled before `exp`.
//!
//! Causal attention makes the logits of a window's first `L'` tokens independent of what follows,
//! so when the RoPE frequencies for `L'` and `L` are identical (every static scaling; dynamic NTK
//! up to the training context) the prefix of the longer run gives the shorter length's numbers.
//! The run computes each distinct frequency set once, at its longest length.

use crate::error::{Error, Result};
use crate::llama::{Llama, RopeSetup, MAX_CACHE_TOKENS};

/// Rows of logits computed at a time (49152 logits per row: 256 rows ≈ 50 MB).
const HEAD_CHUNK: usize = 256;

/// Text with HTML markup removed: `<script>`, `<style>` and comments dropped with their
/// content, tags removed (block-level tags become line breaks), the common entities and numeric
/// character references decoded, trailing spaces trimmed and runs of blank lines collapsed.
pub fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let lower = html.to_ascii_lowercase();
    let mut i = 0;
    let bytes = html.as_bytes();
    while i < html.len() {
        let starts_tag = bytes[i] == b'<'
            && bytes
                .get(i + 1)
                .is_some_and(|&b| b.is_ascii_alphabetic() || matches!(b, b'/' | b'!' | b'?'));
        if starts_tag {
            let rest = &lower[i..];
            let skip_to = |end: &str| {
                rest.find(end)
                    .map(|e| i + e + end.len())
                    .unwrap_or(html.len())
            };
            if rest.starts_with("<!--") {
                i = skip_to("-->");
                continue;
            }
            if let Some(tag) = ["script", "style"].iter().find(|t| {
                rest[1..].starts_with(*t)
                    && rest[1 + t.len()..]
                        .starts_with(|c: char| c == '>' || c.is_ascii_whitespace())
            }) {
                i = skip_to(&format!("</{tag}>"));
                continue;
            }
            let end = match rest.find('>') {
                Some(e) => i + e + 1,
                None => html.len(),
            };
            let name: String = lower[i + 1..end]
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if BLOCK_TAGS.contains(&name.as_str()) {
                out.push('\n');
            }
            i = end;
            continue;
        }
        if bytes[i] == b'&' {
            if let Some((text, len)) = entity(&html[i..]) {
                out.push_str(&text);
                i += len;
                continue;
            }
        }
        let ch = html[i..].chars().next().expect("i is a char boundary");
        out.push(ch);
        i += ch.len_utf8();
    }
    tidy_lines(&out)
}

const BLOCK_TAGS: &[&str] = &[
    "p",
    "div",
    "br",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "li",
    "ul",
    "ol",
    "pre",
    "tr",
    "table",
    "section",
    "article",
    "header",
    "footer",
    "nav",
    "main",
    "blockquote",
    "dt",
    "dd",
    "hr",
    "title",
    "body",
    "html",
    "head",
];

/// Decodes one entity at the start of `s` (`&amp;`, `&#39;`, `&#x27;`, ...): its text and length.
fn entity(s: &str) -> Option<(String, usize)> {
    let end = s.bytes().take(12).position(|b| b == b';')?;
    let body = &s[1..end];
    let text = match body {
        "amp" => "&".to_string(),
        "lt" => "<".to_string(),
        "gt" => ">".to_string(),
        "quot" => "\"".to_string(),
        "apos" => "'".to_string(),
        "nbsp" => " ".to_string(),
        "mdash" => "—".to_string(),
        "ndash" => "–".to_string(),
        "hellip" => "…".to_string(),
        "rsquo" => "’".to_string(),
        "lsquo" => "‘".to_string(),
        "rdquo" => "”".to_string(),
        "ldquo" => "“".to_string(),
        _ => {
            let code = if let Some(h) = body.strip_prefix("#x").or_else(|| body.strip_prefix("#X"))
            {
                u32::from_str_radix(h, 16).ok()?
            } else {
                body.strip_prefix('#')?.parse().ok()?
            };
            char::from_u32(code)?.to_string()
        }
    };
    Some((text, end + 1))
}

/// Trims trailing whitespace of each line and keeps at most one blank line in a row.
fn tidy_lines(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = 0;
    for line in s.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank += 1;
            if blank > 1 || out.is_empty() {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim_end().to_string()
}

/// Whether `text` looks like an HTML document (so it should go through [`strip_html`]).
pub fn looks_like_html(text: &str) -> bool {
    let head = text.trim_start();
    let head = &head[..head.len().min(1024)].to_ascii_lowercase();
    head.starts_with("<!doctype html") || head.starts_with("<html") || head.contains("<html")
}

/// Where the Rust book lies inside a toolchain's sysroot (the default text of the perplexity
/// diagnostic and of the lab's language-modelling task).
pub const RUST_BOOK_IN_SYSROOT: &str = "share/doc/rust/html/book/print.html";

/// The Rust book from the toolchain docs (`$(rustc --print sysroot)/`[`RUST_BOOK_IN_SYSROOT`]),
/// if `rustc` runs and the file is there.
pub fn rust_book_path() -> Option<std::path::PathBuf> {
    let out = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let root = String::from_utf8(out.stdout).ok()?;
    let path = std::path::Path::new(root.trim()).join(RUST_BOOK_IN_SYSROOT);
    path.is_file().then_some(path)
}

/// The text of a file's contents: HTML is stripped ([`strip_html`]) when the file name ends in
/// `.html`/`.htm` or the contents look like HTML ([`looks_like_html`]). Returns the text and
/// whether it was stripped.
pub fn text_of_file(path: &std::path::Path, raw: String) -> (String, bool) {
    let is_html = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"))
        || looks_like_html(&raw);
    if is_html {
        (strip_html(&raw), true)
    } else {
        (raw, false)
    }
}

/// `−ln p(tokens[i+1] | tokens[..=i])` for `i in 0..n−1`, from one forward pass at positions
/// `0..n` with `rope`.
pub fn token_nll(llama: &Llama, rope: &RopeSetup, tokens: &[u32]) -> Result<Vec<f64>> {
    let n = tokens.len();
    if n < 2 {
        return Err(Error::Model(format!("need at least 2 tokens, got {n}")));
    }
    let positions: Vec<u64> = (0..n as u64).collect();
    let rows: Vec<usize> = (0..n - 1).collect();
    let mut cache = llama.new_cache(n);
    let hidden = llama.forward_hidden(
        rope,
        tokens,
        &positions,
        &vec![true; n],
        &mut cache,
        &rows,
        None,
    )?;
    drop(cache);
    let (d, vocab) = (llama.config.dim, llama.config.vocab_size);
    let mut nll = Vec::with_capacity(n - 1);
    for (c, h) in hidden.chunks(HEAD_CHUNK * d).enumerate() {
        let logits = llama.logits_from_hidden(h);
        for (r, row) in logits.chunks_exact(vocab).enumerate() {
            let target = tokens[c * HEAD_CHUNK + r + 1] as usize;
            nll.push(nll_of(row, target));
        }
    }
    Ok(nll)
}

/// `logsumexp(row) − row[target]` in f64.
pub fn nll_of(row: &[f32], target: usize) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
    max + sum.ln() - row[target] as f64
}

/// What to measure.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PerplexityConfig {
    /// Context lengths, increasing, each in `tail + 1 ..= MAX_CACHE_TOKENS`.
    pub lengths: Vec<usize>,
    /// Windows per length, spread evenly over the text (≥ 1).
    pub windows: usize,
    /// Predictions at the end of each window that form `tail_ppl` (≥ 1).
    pub tail: usize,
}

impl PerplexityConfig {
    /// Checks the lengths, windows and tail against a text of `text_tokens` tokens.
    pub fn validate(&self, text_tokens: usize) -> Result<()> {
        let bad = |f: &str, e: String| -> Error { posenc::Error::invalid(f, e).into() };
        if self.lengths.is_empty() || self.lengths.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad("lengths", "one or more increasing lengths".into()));
        }
        if self.tail == 0 {
            return Err(bad("tail", "at least 1".into()));
        }
        if let Some(&l) = self
            .lengths
            .iter()
            .find(|&&l| l <= self.tail || l > MAX_CACHE_TOKENS)
        {
            return Err(bad(
                "lengths",
                format!(
                    "each in {}..={MAX_CACHE_TOKENS} (longer than the tail), got {l}",
                    self.tail + 1
                ),
            ));
        }
        if self.windows == 0 || self.windows > 64 {
            return Err(bad("windows", format!("in 1..=64, got {}", self.windows)));
        }
        let longest = *self.lengths.last().expect("not empty");
        if text_tokens < longest {
            return Err(bad(
                "lengths",
                format!("at most the text's {text_tokens} tokens, got {longest}"),
            ));
        }
        Ok(())
    }

    /// Start token of each window: evenly spread over the text so that the longest length fits.
    pub fn window_starts(&self, text_tokens: usize) -> Vec<usize> {
        let longest = self.lengths.last().copied().unwrap_or(0);
        let span = text_tokens.saturating_sub(longest);
        (0..self.windows)
            .map(|w| ((w as f64 + 0.5) / self.windows as f64 * span as f64) as usize)
            .collect()
    }
}

/// One forward pass made by [`perplexity_curves`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PerplexityRun {
    /// Scaling name.
    pub scaling: String,
    /// Tokens run.
    pub tokens: usize,
    /// Lengths whose numbers come from this run.
    pub serves_lengths: Vec<usize>,
    /// Window index.
    pub window: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Result of [`perplexity_curves`]. Field order is what the explorer reads: `scalings` labels
/// the rows of `ppl` and `tail_ppl`, `lengths` their columns.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PerplexityReport {
    /// Where the text came from.
    pub source: String,
    /// Tokens in the whole text.
    pub text_tokens: usize,
    /// The model's training context.
    pub context_length: usize,
    /// Predictions per window in `tail_ppl`.
    pub tail: usize,
    /// First token of each window.
    pub window_starts: Vec<usize>,
    /// Row labels.
    pub scalings: Vec<String>,
    /// Column labels.
    pub lengths: Vec<usize>,
    /// `scalings × lengths` perplexity over whole windows.
    pub ppl: Vec<Vec<f64>>,
    /// `scalings × lengths` perplexity over the last `tail` predictions of each window.
    pub tail_ppl: Vec<Vec<f64>>,
    /// The forward passes made.
    pub runs: Vec<PerplexityRun>,
}

/// Measures perplexity of `tokens` (the whole text) for every scaling and length. `progress`
/// receives (tokens done, tokens total) after each forward pass.
pub fn perplexity_curves(
    llama: &Llama,
    scalings: &[(String, RopeSetup)],
    tokens: &[u32],
    source: &str,
    config: &PerplexityConfig,
    mut progress: impl FnMut(usize, usize),
) -> Result<PerplexityReport> {
    config.validate(tokens.len())?;
    if scalings.is_empty() {
        return Err(posenc::Error::invalid("scalings", "at least one").into());
    }
    let starts = config.window_starts(tokens.len());
    // Plan: per scaling, lengths grouped by identical RoPE frequencies.
    let mut plan: Vec<(usize, usize, Vec<usize>)> = Vec::new(); // (scaling, run length, lengths)
    for (si, (_, rope)) in scalings.iter().enumerate() {
        let mut groups: Vec<(posenc::rope::RopeFrequencies, Vec<usize>)> = Vec::new();
        for &l in &config.lengths {
            let f = rope.params.frequencies(Some(l), rope.precision)?;
            match groups.iter_mut().find(|(g, _)| *g == f) {
                Some((_, ls)) => ls.push(l),
                None => groups.push((f, vec![l])),
            }
        }
        for (_, ls) in groups {
            plan.push((si, *ls.last().expect("non-empty group"), ls));
        }
    }
    let total: usize = plan.iter().map(|(_, run, _)| run).sum::<usize>() * starts.len();
    let mut done = 0;
    // Pooled (sum of NLL, count) per scaling × length, whole window and tail.
    let (ns, nl) = (scalings.len(), config.lengths.len());
    let mut whole = vec![(0.0f64, 0usize); ns * nl];
    let mut tail = vec![(0.0f64, 0usize); ns * nl];
    let mut runs = Vec::new();
    for (w, &start) in starts.iter().enumerate() {
        for (si, run_len, lens) in &plan {
            let t0 = std::time::Instant::now();
            let nll = token_nll(llama, &scalings[*si].1, &tokens[start..start + run_len])?;
            for &l in lens {
                let li = config
                    .lengths
                    .iter()
                    .position(|&x| x == l)
                    .expect("planned");
                let preds = &nll[..l - 1];
                let k = si * nl + li;
                whole[k].0 += preds.iter().sum::<f64>();
                whole[k].1 += preds.len();
                let t = &preds[preds.len() - config.tail..];
                tail[k].0 += t.iter().sum::<f64>();
                tail[k].1 += t.len();
            }
            runs.push(PerplexityRun {
                scaling: scalings[*si].0.clone(),
                tokens: *run_len,
                serves_lengths: lens.clone(),
                window: w,
                seconds: t0.elapsed().as_secs_f64(),
            });
            done += run_len;
            progress(done, total);
        }
    }
    let table = |acc: &[(f64, usize)]| -> Vec<Vec<f64>> {
        acc.chunks(nl)
            .map(|row| row.iter().map(|&(s, c)| (s / c as f64).exp()).collect())
            .collect()
    };
    Ok(PerplexityReport {
        source: source.to_string(),
        text_tokens: tokens.len(),
        context_length: llama.config.context_length,
        tail: config.tail,
        window_starts: starts,
        scalings: scalings.iter().map(|(n, _)| n.clone()).collect(),
        lengths: config.lengths.clone(),
        ppl: table(&whole),
        tail_ppl: table(&tail),
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_html_removes_markup_scripts_and_decodes_entities() {
        let html = "<!DOCTYPE html><html><head><title>T</title><style>p{color:red}</style>\
            <script type=\"x\">var a = '<p>';</script></head><body><!-- note --><h1>Ownership</h1>\
            <p>Each value has an <em>owner</em> &amp; one only: &lt;T&gt; &#39;a&#x27; caf&eacute;</p>\
            <pre><code>fn main() {\n    let s = 1;\n}</code></pre></body></html>";
        let text = strip_html(html);
        assert_eq!(
            text,
            "T\n\nOwnership\n\nEach value has an owner & one only: <T> 'a' caf&eacute;\n\nfn main() {\n    let s = 1;\n}"
        );
        assert!(looks_like_html(html));
        assert!(!looks_like_html("plain text < 3 and & more"));
        assert_eq!(strip_html("a < b & c"), "a < b & c");
        assert_eq!(strip_html("x<scriptless>y</scriptless>"), "xy");
        assert_eq!(strip_html("unterminated <b"), "unterminated");
    }

    #[test]
    fn nll_of_matches_log_softmax() {
        let row = [1.0f32, 2.0, 3.0];
        let z: f64 = row.iter().map(|&v| (v as f64).exp()).sum();
        for t in 0..3 {
            let want = -((row[t] as f64).exp() / z).ln();
            assert!((nll_of(&row, t) - want).abs() < 1e-12);
        }
        // Large logits do not overflow.
        assert!((nll_of(&[1000.0, 1000.0], 0) - 2f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn windows_spread_over_the_text_and_configs_validate() {
        let c = PerplexityConfig {
            lengths: vec![100, 200],
            windows: 2,
            tail: 10,
        };
        assert!(c.validate(1000).is_ok());
        assert_eq!(c.window_starts(1000), vec![200, 600]);
        let one = PerplexityConfig {
            windows: 1,
            ..c.clone()
        };
        assert_eq!(one.window_starts(200), vec![0]);
        assert!(c.validate(150).unwrap_err().to_string().contains("lengths"));
        for bad in [
            PerplexityConfig {
                lengths: vec![200, 100],
                ..c.clone()
            },
            PerplexityConfig {
                lengths: vec![10],
                ..c.clone()
            },
            PerplexityConfig {
                windows: 0,
                ..c.clone()
            },
            PerplexityConfig {
                tail: 0,
                ..c.clone()
            },
        ] {
            assert!(bad.validate(1000).is_err(), "{bad:?}");
        }
    }
}
