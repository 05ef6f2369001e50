//! The two server APIs the probe speaks: OpenAI-compatible completions (vLLM, SGLang, TGI,
//! llama-cpp-python, `posenc model serve`) and llama.cpp's native `/completion`.

use std::cell::RefCell;

use serde_json::{json, Value};

use super::client::{Client, HttpError};

/// Which API the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiKind {
    /// `POST /v1/completions` with `logprobs` and `echo`.
    Openai,
    /// llama.cpp's `llama-server`: `POST /completion` with `n_probs`, `POST /tokenize`.
    Llamacpp,
}

/// One completion: the tokens (as text, the way servers report them) and their logprobs.
#[derive(Debug, Clone, Default)]
pub struct Completion {
    /// The generated text (with `echo`, the prompt's text first).
    pub text: String,
    /// Token strings (with `echo`, the prompt's tokens first).
    pub tokens: Vec<String>,
    /// Logprob of each token (`None` where the server gives none, e.g. the first prompt token).
    pub logprobs: Vec<Option<f64>>,
    /// Top logprobs at each token, largest first.
    pub top: Vec<Vec<(String, f64)>>,
    /// Prompt tokens the server counted (`usage.prompt_tokens`), when it says.
    pub prompt_tokens: Option<usize>,
}

impl Completion {
    /// The logprob of `token` at step `i`: from the top list, else the chosen token's own.
    pub fn logprob_of(&self, i: usize, token: &str) -> Option<f64> {
        self.top
            .get(i)
            .and_then(|t| t.iter().find(|(s, _)| s == token).map(|&(_, lp)| lp))
            .or_else(|| {
                (self.tokens.get(i).map(String::as_str) == Some(token))
                    .then(|| self.logprobs.get(i).copied().flatten())
                    .flatten()
            })
    }

    /// The most likely token at step `i` by the server's own logprobs (the first of the top list;
    /// the sampled token when there is no list). Servers may sample something else even at
    /// temperature 0 (llama-cpp-python applies its default `repeat_penalty` of 1.1), so
    /// comparisons use this, not the sampled token.
    pub fn top1(&self, i: usize) -> Option<&str> {
        match self.top.get(i).and_then(|t| t.first()) {
            Some((s, _)) => Some(s.as_str()),
            None => self.tokens.get(i).map(String::as_str),
        }
    }

    /// Top-1 minus top-2 logprob at step `i` (infinite when only one is given).
    pub fn margin(&self, i: usize) -> f64 {
        match self.top.get(i).map(Vec::as_slice) {
            Some([a, b, ..]) => a.1 - b.1,
            _ => f64::INFINITY,
        }
    }
}

/// A server endpoint with its API, the model name to send, and the tokenizer route found.
pub struct Server {
    /// The HTTP client.
    pub client: Client,
    /// The API.
    pub api: ApiKind,
    /// `model` field sent with each request.
    pub model: Option<String>,
    /// Which tokenize route works (found on first use).
    tokenize_route: RefCell<Option<TokenizeRoute>>,
    /// A local tokenizer used when the server has no tokenize endpoint.
    pub local_tokenizer: Option<posenc_model::tokenizer::Tokenizer>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum TokenizeRoute {
    /// vLLM / SGLang / posenc: `POST /tokenize {"prompt"}`.
    Prompt,
    /// llama-cpp-python: `POST /extras/tokenize {"input"}`.
    Extras,
    /// llama.cpp: `POST /tokenize {"content"}`.
    Content,
    /// No endpoint; the local tokenizer.
    Local,
}

/// A request to show in a report: the path and the JSON body.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Repro {
    /// Endpoint path.
    pub path: String,
    /// JSON body.
    pub body: Value,
    /// What the request is for.
    pub note: String,
}

impl Server {
    /// A server behind `client`.
    pub fn new(
        client: Client,
        api: ApiKind,
        model: Option<String>,
        local_tokenizer: Option<posenc_model::tokenizer::Tokenizer>,
    ) -> Server {
        Server {
            client,
            api,
            model,
            tokenize_route: RefCell::new(None),
            local_tokenizer,
        }
    }

    /// The request body and path of a greedy completion of `prompt`.
    pub fn completion_request(
        &self,
        prompt: &str,
        max_tokens: usize,
        top: usize,
        echo: bool,
    ) -> (String, Value) {
        match self.api {
            ApiKind::Openai => {
                let mut body = json!({
                    "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                    "logprobs": top, "echo": echo,
                });
                if let Some(m) = &self.model {
                    body["model"] = json!(m);
                }
                ("/v1/completions".into(), body)
            }
            ApiKind::Llamacpp => (
                "/completion".into(),
                json!({"prompt": prompt, "n_predict": max_tokens, "temperature": 0, "top_k": 1,
                       "n_probs": top, "cache_prompt": true}),
            ),
        }
    }

    /// Sends a completion request built by [`Server::completion_request`] and parses it.
    pub fn complete_body(&self, path: &str, body: &Value) -> Result<Completion, String> {
        let answer = self.client.post(path, body).map_err(|e| e.to_string())?;
        self.parse(&answer)
    }

    /// A greedy completion of `prompt`.
    pub fn complete(
        &self,
        prompt: &str,
        max_tokens: usize,
        top: usize,
        echo: bool,
    ) -> Result<Completion, String> {
        if echo && self.api == ApiKind::Llamacpp {
            return Err("llama.cpp's /completion gives no prompt logprobs (no echo); use --api openai against its /v1/completions".into());
        }
        let (path, body) = self.completion_request(prompt, max_tokens, top, echo);
        self.complete_body(&path, &body)
    }

    /// Parses a completion answer of this server's API.
    pub fn parse(&self, answer: &Value) -> Result<Completion, String> {
        match self.api {
            ApiKind::Openai => parse_openai(answer),
            ApiKind::Llamacpp => parse_llamacpp(answer),
        }
    }

    /// Token ids of `text` from the server's tokenizer (or the local one).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u64>, String> {
        let known = *self.tokenize_route.borrow();
        let routes: Vec<TokenizeRoute> = match (known, self.api) {
            (Some(r), _) => vec![r],
            (None, ApiKind::Openai) => vec![
                TokenizeRoute::Prompt,
                TokenizeRoute::Extras,
                TokenizeRoute::Local,
            ],
            (None, ApiKind::Llamacpp) => vec![TokenizeRoute::Content, TokenizeRoute::Local],
        };
        let mut last = String::new();
        for route in routes {
            let (path, mut body) = match route {
                TokenizeRoute::Prompt => ("/tokenize", json!({"prompt": text})),
                TokenizeRoute::Extras => ("/extras/tokenize", json!({"input": text})),
                TokenizeRoute::Content => ("/tokenize", json!({"content": text})),
                TokenizeRoute::Local => {
                    let Some(tok) = &self.local_tokenizer else {
                        last = format!("{last}; no --tokenizer given");
                        continue;
                    };
                    let ids = tok.encode(text).map_err(|e| e.to_string())?;
                    *self.tokenize_route.borrow_mut() = Some(route);
                    return Ok(ids.into_iter().map(u64::from).collect());
                }
            };
            if let Some(m) = &self.model {
                if route != TokenizeRoute::Content {
                    body["model"] = json!(m);
                }
            }
            match self.client.post(path, &body) {
                Ok(v) => {
                    let ids: Option<Vec<u64>> = v["tokens"]
                        .as_array()
                        .and_then(|a| a.iter().map(Value::as_u64).collect());
                    match ids {
                        Some(ids) => {
                            *self.tokenize_route.borrow_mut() = Some(route);
                            return Ok(ids);
                        }
                        None => last = format!("{path}: no `tokens` array of ids in {v}"),
                    }
                }
                // Not this route: try the next.
                Err(HttpError::Status(s, _))
                    if known.is_none() && matches!(s, 404 | 405 | 400 | 422) =>
                {
                    last = format!(
                        "{last}{}POST {path}: HTTP {s}",
                        if last.is_empty() { "" } else { "; " }
                    );
                }
                Err(e) => return Err(format!("POST {path}: {e}")),
            }
        }
        Err(format!(
            "no tokenizer: {last} (give --tokenizer FILE.gguf when the server has no tokenize endpoint)"
        ))
    }
}

fn parse_openai(answer: &Value) -> Result<Completion, String> {
    let choice = &answer["choices"][0];
    let text = choice["text"]
        .as_str()
        .ok_or_else(|| format!("no choices[0].text in the answer: {}", short(answer)))?
        .to_string();
    let lp = &choice["logprobs"];
    let mut c = Completion {
        text,
        prompt_tokens: answer["usage"]["prompt_tokens"]
            .as_u64()
            .map(|n| n as usize),
        ..Completion::default()
    };
    if lp.is_null() {
        return Ok(c);
    }
    c.tokens = lp["tokens"]
        .as_array()
        .ok_or("no logprobs.tokens in the answer")?
        .iter()
        .map(|t| t.as_str().unwrap_or_default().to_string())
        .collect();
    c.logprobs = lp["token_logprobs"]
        .as_array()
        .ok_or("no logprobs.token_logprobs in the answer")?
        .iter()
        .map(Value::as_f64)
        .collect();
    c.top = match lp["top_logprobs"].as_array() {
        Some(a) => a.iter().map(top_of_object).collect(),
        None => vec![Vec::new(); c.tokens.len()],
    };
    if c.logprobs.len() != c.tokens.len() || c.top.len() != c.tokens.len() {
        return Err("logprobs.tokens, token_logprobs and top_logprobs differ in length".into());
    }
    Ok(c)
}

/// `{"tok": lp, ...}` (or null) as a list sorted by logprob, largest first.
fn top_of_object(v: &Value) -> Vec<(String, f64)> {
    let mut top: Vec<(String, f64)> = v
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_f64().map(|lp| (k.clone(), lp)))
                .collect()
        })
        .unwrap_or_default();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    top
}

fn parse_llamacpp(answer: &Value) -> Result<Completion, String> {
    let text = answer["content"]
        .as_str()
        .ok_or_else(|| format!("no `content` in the answer: {}", short(answer)))?
        .to_string();
    let mut c = Completion {
        text,
        prompt_tokens: answer["tokens_evaluated"].as_u64().map(|n| n as usize),
        ..Completion::default()
    };
    let Some(steps) = answer["completion_probabilities"].as_array() else {
        return Ok(c);
    };
    for step in steps {
        // Current llama-server: {token, logprob, top_logprobs: [{token, logprob}]}; older ones:
        // {content, probs: [{tok_str, prob}]}.
        if let Some(tok) = step["token"].as_str() {
            c.tokens.push(tok.to_string());
            c.logprobs.push(step["logprob"].as_f64());
            let mut top: Vec<(String, f64)> = step["top_logprobs"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| {
                            Some((e["token"].as_str()?.to_string(), e["logprob"].as_f64()?))
                        })
                        .collect()
                })
                .unwrap_or_default();
            top.sort_by(|a, b| b.1.total_cmp(&a.1));
            c.top.push(top);
        } else {
            let tok = step["content"].as_str().unwrap_or_default().to_string();
            let mut top: Vec<(String, f64)> = step["probs"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| {
                            Some((e["tok_str"].as_str()?.to_string(), e["prob"].as_f64()?.ln()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            top.sort_by(|a, b| b.1.total_cmp(&a.1));
            c.logprobs
                .push(top.iter().find(|(s, _)| *s == tok).map(|&(_, lp)| lp));
            c.tokens.push(tok);
            c.top.push(top);
        }
    }
    Ok(c)
}

fn short(v: &Value) -> String {
    v.to_string().chars().take(300).collect()
}
