//! Response bodies that keep `f32` arrays short.
//!
//! `serde_json::Value` stores every number as `f64`, so an `f32` such as `0.84147096` comes out
//! as `0.8414709568023682`: twice the bytes and most of the serialisation time for heatmaps.
//! A [`Reply`] is a JSON object of small fields plus large arrays serialised directly from their
//! Rust types (an `f32` prints with `f32` shortest round-trip digits).

use serde::Serialize;
use serde_json::Value;

use super::params::{ApiError, ApiResult};

/// A JSON object: `fields` plus pre-serialised large arrays appended as extra keys.
#[derive(Debug, Default)]
pub struct Reply {
    fields: serde_json::Map<String, Value>,
    raw: Vec<(&'static str, String)>,
    /// A whole answer serialised from its own type ([`Reply::of`]).
    whole: Option<Vec<u8>>,
}

impl From<Value> for Reply {
    fn from(v: Value) -> Self {
        match v {
            Value::Object(fields) => Reply {
                fields,
                ..Reply::default()
            },
            other => {
                let mut fields = serde_json::Map::new();
                fields.insert("value".into(), other);
                Reply {
                    fields,
                    ..Reply::default()
                }
            }
        }
    }
}

impl Reply {
    /// A whole answer serialised directly from its Rust type (its `f32` fields keep `f32`
    /// digits).
    pub fn of(value: &impl Serialize) -> ApiResult<Self> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| ApiError::bad(format!("cannot serialise reply: {e}")))?;
        Ok(Reply {
            whole: Some(bytes),
            ..Reply::default()
        })
    }

    /// Adds `key` holding `value` serialised with its own types.
    pub fn with(mut self, key: &'static str, value: &impl Serialize) -> ApiResult<Self> {
        let text = serde_json::to_string(value)
            .map_err(|e| ApiError::bad(format!("cannot serialise {key}: {e}")))?;
        self.raw.push((key, text));
        Ok(self)
    }

    /// The JSON text of the whole object.
    pub fn into_bytes(self) -> ApiResult<Vec<u8>> {
        if let Some(bytes) = self.whole {
            return Ok(bytes);
        }
        let mut out = serde_json::to_vec(&self.fields)
            .map_err(|e| ApiError::bad(format!("cannot serialise reply: {e}")))?;
        if self.raw.is_empty() {
            return Ok(out);
        }
        out.pop(); // the closing brace of the fields object
        let mut first = self.fields.is_empty();
        for (key, text) in self.raw {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(serde_json::to_string(key).unwrap_or_default().as_bytes());
            out.push(b':');
            out.extend_from_slice(text.as_bytes());
        }
        out.push(b'}');
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn raw_arrays_join_the_object_and_keep_f32_digits() {
        let r = Reply::from(json!({"a": 1}))
            .with("v", &vec![0.1f32, 0.84147096f32])
            .unwrap();
        let text = String::from_utf8(r.into_bytes().unwrap()).unwrap();
        assert_eq!(text, r#"{"a":1,"v":[0.1,0.84147096]}"#);
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["v"][1].as_f64().unwrap() as f32, 0.84147096f32);
        let empty = Reply::default().with("x", &vec![1u8]).unwrap();
        assert_eq!(
            String::from_utf8(empty.into_bytes().unwrap()).unwrap(),
            r#"{"x":[1]}"#
        );
        #[derive(Serialize)]
        struct Typed {
            v: Vec<f32>,
        }
        let typed = Reply::of(&Typed {
            v: vec![0.84147096],
        })
        .unwrap();
        assert_eq!(
            String::from_utf8(typed.into_bytes().unwrap()).unwrap(),
            r#"{"v":[0.84147096]}"#
        );
    }
}
