//! Reading answers: option letters, numbers, vectors, matrices (text `1,2;3,4` or JSON
//! `[[1,2],[3,4]]`) and exercise 10's passkey plan.

use super::{LearnError, LearnResult};

/// Longest answer text read.
pub const MAX_ANSWER_CHARS: usize = 100_000;

/// Shape of a numeric answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One number.
    Scalar,
    /// `n` numbers.
    Vector(usize),
    /// `rows × cols` numbers, row-major.
    Matrix(usize, usize),
}

impl Shape {
    /// As a JSON-friendly list of dimensions.
    pub fn dims(self) -> Vec<usize> {
        match self {
            Shape::Scalar => vec![],
            Shape::Vector(n) => vec![n],
            Shape::Matrix(r, c) => vec![r, c],
        }
    }

    /// The format in words.
    pub fn describe(self) -> String {
        match self {
            Shape::Scalar => "one number".into(),
            Shape::Vector(n) => {
                format!("{n} numbers separated by commas (or JSON [..])")
            }
            Shape::Matrix(r, c) => format!(
                "{r} rows of {c} numbers: commas between numbers, `;` between rows \
                 (for example 1,2;3,4), or JSON [[1,2],[3,4]]"
            ),
        }
    }
}

fn check_len(text: &str) -> LearnResult<&str> {
    let t = text.trim();
    if t.is_empty() {
        return Err(LearnError::malformed("empty answer"));
    }
    if t.chars().count() > MAX_ANSWER_CHARS {
        return Err(LearnError::malformed(format!(
            "answer longer than {MAX_ANSWER_CHARS} characters"
        )));
    }
    Ok(t)
}

/// Reads an option letter among `count` options (`A`, `b`, `"C"`, `(d)` are all fine).
pub fn parse_choice(text: &str, count: usize) -> LearnResult<usize> {
    let t = check_len(text)?;
    let t = t.trim_matches(|c: char| c == '"' || c == '\'' || c == '(' || c == ')' || c == '.');
    let mut chars = t.chars();
    let letter = match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_alphabetic() => c.to_ascii_uppercase(),
        _ => {
            return Err(LearnError::malformed(format!(
                "expected one option letter A..{}, got `{}`",
                option_key(count.saturating_sub(1)),
                text.trim()
            )))
        }
    };
    let index = (letter as u8 - b'A') as usize;
    if index >= count {
        return Err(LearnError::malformed(format!(
            "expected one option letter A..{}, got `{letter}`",
            option_key(count.saturating_sub(1))
        )));
    }
    Ok(index)
}

/// The letter of option `index` (0 → `A`).
pub fn option_key(index: usize) -> String {
    char::from(b'A' + (index.min(25) as u8)).to_string()
}

fn number(token: &str) -> LearnResult<f64> {
    let v: f64 = token
        .trim()
        .parse()
        .map_err(|_| LearnError::malformed(format!("`{}` is not a number", token.trim())))?;
    if !v.is_finite() {
        return Err(LearnError::malformed(format!(
            "`{}` is not a finite number",
            token.trim()
        )));
    }
    Ok(v)
}

fn json_rows(value: &serde_json::Value) -> LearnResult<Vec<Vec<f64>>> {
    let num = |v: &serde_json::Value| {
        v.as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| LearnError::malformed(format!("`{v}` is not a finite number")))
    };
    match value {
        serde_json::Value::Array(items) if items.iter().all(|i| i.is_array()) => items
            .iter()
            .map(|row| {
                row.as_array()
                    .map(|r| r.iter().map(num).collect::<LearnResult<Vec<f64>>>())
                    .unwrap_or_else(|| Ok(Vec::new()))
            })
            .collect(),
        serde_json::Value::Array(items) => Ok(vec![items
            .iter()
            .map(num)
            .collect::<LearnResult<Vec<f64>>>()?]),
        v => Ok(vec![vec![num(v)?]]),
    }
}

fn text_rows(t: &str) -> LearnResult<Vec<Vec<f64>>> {
    t.split([';', '\n'])
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|row| {
            row.trim_matches(|c| c == '[' || c == ']')
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|x| !x.is_empty())
                .map(number)
                .collect()
        })
        .collect()
}

/// Reads numbers of `shape`. `integer` allows thousands separators in a scalar (`1,572,864`).
pub fn parse_numbers(text: &str, shape: Shape, integer: bool) -> LearnResult<Vec<f64>> {
    let t = check_len(text)?;
    let rows = if t.starts_with('[') || t.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(t)
            .map_err(|e| LearnError::malformed(format!("invalid JSON: {e}")))?;
        json_rows(&v)?
    } else if integer && shape == Shape::Scalar {
        let cleaned: String = t.chars().filter(|&c| c != ',' && c != '_').collect();
        vec![vec![number(&cleaned)?]]
    } else {
        text_rows(t)?
    };
    let got_rows = rows.len();
    let got: Vec<f64> = rows.iter().flatten().copied().collect();
    let ok = match shape {
        Shape::Scalar => got.len() == 1,
        Shape::Vector(n) => got.len() == n && (got_rows == 1 || rows.iter().all(|r| r.len() == 1)),
        Shape::Matrix(r, c) => got_rows == r && rows.iter().all(|row| row.len() == c),
    };
    if !ok {
        let got_desc = if got_rows > 1 {
            let lens: Vec<String> = rows.iter().map(|r| r.len().to_string()).collect();
            format!("{got_rows} rows of {} numbers", lens.join("/"))
        } else {
            format!("{} numbers", got.len())
        };
        return Err(LearnError::malformed(format!(
            "expected {}, got {got_desc}",
            shape.describe()
        )));
    }
    if integer {
        if let Some(x) = got.iter().find(|x| x.fract() != 0.0) {
            return Err(LearnError::malformed(format!("expected integers, got {x}")));
        }
    }
    Ok(got)
}

/// Exercise 10's answer: the grid and the predictions.
#[derive(Debug, Clone, PartialEq)]
pub struct PasskeyPlan {
    /// Context lengths to test, in tokens.
    pub lengths: Vec<u64>,
    /// Depths of the passkey, fractions of the context in `[0, 1]` (0 = first token).
    pub depths: Vec<f64>,
    /// `predict[l][d]`: `true` = the passkey is expected to be retrieved.
    pub predict: Vec<Vec<bool>>,
}

/// Most lengths or depths in a plan.
pub const MAX_GRID: usize = 16;
/// Longest context length accepted in a plan.
pub const MAX_PLAN_LENGTH: u64 = 100_000_000;

/// Reads `lengths | depths | predictions` (predictions as a 0/1 matrix, rows = lengths) or the
/// JSON object `{"lengths": [..], "depths": [..], "predict": [[..]]}`.
pub fn parse_passkey_plan(text: &str) -> LearnResult<PasskeyPlan> {
    let t = check_len(text)?;
    let (lengths, depths, predict) = if t.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(t)
            .map_err(|e| LearnError::malformed(format!("invalid JSON: {e}")))?;
        let field = |name: &str| {
            v.get(name)
                .ok_or_else(|| LearnError::malformed(format!("missing key `{name}`")))
        };
        (
            json_rows(field("lengths")?)?.concat(),
            json_rows(field("depths")?)?.concat(),
            json_rows(field("predict")?)?,
        )
    } else {
        let sections: Vec<&str> = t.split('|').collect();
        if sections.len() != 3 {
            return Err(LearnError::malformed(
                "expected three sections `lengths | depths | predictions`, \
                 for example `1024,4096 | 0,0.5,1 | 1,1,1;0,0,0`",
            ));
        }
        (
            text_rows(sections[0])?.concat(),
            text_rows(sections[1])?.concat(),
            text_rows(sections[2])?,
        )
    };
    if lengths.is_empty() || depths.is_empty() {
        return Err(LearnError::malformed("at least one length and one depth"));
    }
    if lengths.len() > MAX_GRID || depths.len() > MAX_GRID {
        return Err(LearnError::malformed(format!(
            "at most {MAX_GRID} lengths and {MAX_GRID} depths"
        )));
    }
    let lengths = lengths
        .iter()
        .map(|&l| {
            if l.fract() == 0.0 && l >= 1.0 && l <= MAX_PLAN_LENGTH as f64 {
                Ok(l as u64)
            } else {
                Err(LearnError::malformed(format!(
                    "lengths are whole numbers of tokens in 1..={MAX_PLAN_LENGTH}, got {l}"
                )))
            }
        })
        .collect::<LearnResult<Vec<u64>>>()?;
    if let Some(d) = depths.iter().find(|d| !(0.0..=1.0).contains(*d)) {
        return Err(LearnError::malformed(format!(
            "depths are fractions of the context in [0, 1], got {d}"
        )));
    }
    if predict.len() != lengths.len() || predict.iter().any(|r| r.len() != depths.len()) {
        return Err(LearnError::malformed(format!(
            "predictions: expected {} rows (one per length) of {} values (one per depth)",
            lengths.len(),
            depths.len()
        )));
    }
    let predict = predict
        .iter()
        .map(|row| {
            row.iter()
                .map(|&x| {
                    if x == 0.0 {
                        Ok(false)
                    } else if x == 1.0 {
                        Ok(true)
                    } else {
                        Err(LearnError::malformed(format!(
                            "predictions are 1 (retrieved) or 0 (not), got {x}"
                        )))
                    }
                })
                .collect()
        })
        .collect::<LearnResult<Vec<Vec<bool>>>>()?;
    Ok(PasskeyPlan {
        lengths,
        depths,
        predict,
    })
}

/// Formats numbers of `shape` the way [`parse_numbers`] reads them (full precision).
pub fn format_numbers(values: &[f64], shape: Shape) -> String {
    match shape {
        Shape::Matrix(_, c) if c > 0 => values
            .chunks(c)
            .map(|r| {
                r.iter()
                    .map(|x| format!("{x}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect::<Vec<_>>()
            .join(";"),
        _ => values
            .iter()
            .map(|x| format!("{x}"))
            .collect::<Vec<_>>()
            .join(","),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_matrices_agree() {
        let a = parse_numbers("1,2;3,4", Shape::Matrix(2, 2), false).unwrap();
        let b = parse_numbers("[[1,2],[3,4]]", Shape::Matrix(2, 2), false).unwrap();
        let c = parse_numbers(" 1 2 ; 3 4 ", Shape::Matrix(2, 2), false).unwrap();
        assert_eq!(a, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn malformed_answers_are_errors() {
        for bad in [
            "",
            "1,2;3",
            "[[1,2],[3]]",
            "a,b;c,d",
            "[1,2",
            "1,nan;3,4",
            "1,2,3,4",
        ] {
            assert!(
                parse_numbers(bad, Shape::Matrix(2, 2), false).is_err(),
                "{bad}"
            );
        }
        assert!(parse_numbers("1.5", Shape::Scalar, true).is_err());
        assert_eq!(
            parse_numbers("1,572,864", Shape::Scalar, true).unwrap(),
            vec![1_572_864.0]
        );
        assert!(parse_choice("E", 4).is_err());
        assert!(parse_choice("AB", 4).is_err());
        assert_eq!(parse_choice(" b ", 4).unwrap(), 1);
    }

    #[test]
    fn passkey_plans_in_both_forms() {
        let a = parse_passkey_plan("1024,4096 | 0,1 | 1,1;0,0").unwrap();
        let b =
            parse_passkey_plan(r#"{"lengths":[1024,4096],"depths":[0,1],"predict":[[1,1],[0,0]]}"#)
                .unwrap();
        assert_eq!(a, b);
        assert!(parse_passkey_plan("1024 | 0,1 | 1,1;0,0").is_err());
        assert!(parse_passkey_plan("1024 | 0,2 | 1,1").is_err());
        assert!(parse_passkey_plan("1024 | 0,1 | 1,2").is_err());
    }
}
