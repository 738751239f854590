//! Toxic descriptions as the API sees them: parsing and printing the exact
//! Toxiproxy JSON shape, with its defaults and its error codes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ProxyError;

/// Which way the bytes a toxic acts on travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Client → upstream.
    Upstream,
    /// Upstream → client (Toxiproxy's default).
    #[default]
    Downstream,
}

impl Stream {
    /// The word used in JSON and in default toxic names.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }

    fn parse(s: &str) -> Result<Self, ProxyError> {
        match s {
            "upstream" => Ok(Stream::Upstream),
            "downstream" => Ok(Stream::Downstream),
            _ => Err(ProxyError::InvalidStream),
        }
    }
}

/// What a toxic does, with its attributes. Units follow Toxiproxy so JSON
/// written for it means the same here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToxicKind {
    /// Delay each chunk by `latency` ms ± `jitter` ms, counted from its arrival.
    Latency {
        /// Milliseconds added to each chunk.
        latency: u64,
        /// Uniform spread, in milliseconds, around `latency`.
        jitter: u64,
    },
    /// Limit throughput to `rate` KB/s (0 = unlimited, as in Toxiproxy).
    Bandwidth {
        /// Kilobytes (1000 bytes) per second.
        rate: u64,
    },
    /// Hold the FIN `delay` ms after the last byte was delivered.
    SlowClose {
        /// Milliseconds.
        delay: u64,
    },
    /// Drop all data; close the connection after `timeout` ms (0 = never).
    Timeout {
        /// Milliseconds.
        timeout: u64,
    },
    /// After `timeout` ms, reset both sides of the connection (TCP RST).
    ResetPeer {
        /// Milliseconds.
        timeout: u64,
    },
    /// Cut data into pieces of `average_size` ± `size_variation` bytes, with
    /// `delay` µs between pieces.
    Slicer {
        /// Mean piece size in bytes (0 = no slicing).
        average_size: u64,
        /// Uniform spread around the mean, in bytes.
        size_variation: u64,
        /// Microseconds between pieces.
        delay: u64,
    },
    /// Close the connection once `bytes` bytes went through this direction.
    LimitData {
        /// Byte budget.
        bytes: u64,
    },
}

impl ToxicKind {
    /// The Toxiproxy type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            ToxicKind::Latency { .. } => "latency",
            ToxicKind::Bandwidth { .. } => "bandwidth",
            ToxicKind::SlowClose { .. } => "slow_close",
            ToxicKind::Timeout { .. } => "timeout",
            ToxicKind::ResetPeer { .. } => "reset_peer",
            ToxicKind::Slicer { .. } => "slicer",
            ToxicKind::LimitData { .. } => "limit_data",
        }
    }

    /// A toxic of `type_name` with every attribute zero, as Toxiproxy starts.
    fn zero(type_name: &str) -> Option<Self> {
        Some(match type_name {
            "latency" => ToxicKind::Latency {
                latency: 0,
                jitter: 0,
            },
            "bandwidth" => ToxicKind::Bandwidth { rate: 0 },
            "slow_close" => ToxicKind::SlowClose { delay: 0 },
            "timeout" => ToxicKind::Timeout { timeout: 0 },
            "reset_peer" => ToxicKind::ResetPeer { timeout: 0 },
            "slicer" => ToxicKind::Slicer {
                average_size: 0,
                size_variation: 0,
                delay: 0,
            },
            "limit_data" => ToxicKind::LimitData { bytes: 0 },
            _ => return None,
        })
    }

    fn fields_mut(&mut self) -> Vec<(&'static str, &mut u64)> {
        match self {
            ToxicKind::Latency { latency, jitter } => {
                vec![("latency", latency), ("jitter", jitter)]
            }
            ToxicKind::Bandwidth { rate } => vec![("rate", rate)],
            ToxicKind::SlowClose { delay } => vec![("delay", delay)],
            ToxicKind::Timeout { timeout } | ToxicKind::ResetPeer { timeout } => {
                vec![("timeout", timeout)]
            }
            ToxicKind::Slicer {
                average_size,
                size_variation,
                delay,
            } => vec![
                ("average_size", average_size),
                ("size_variation", size_variation),
                ("delay", delay),
            ],
            ToxicKind::LimitData { bytes } => vec![("bytes", bytes)],
        }
    }

    /// The attributes object, every field present (as Toxiproxy prints it).
    pub fn attributes(&self) -> Map<String, Value> {
        let mut copy = *self;
        copy.fields_mut()
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect()
    }

    /// Overwrites the attributes present in `attrs`; unknown keys are ignored
    /// and `null` leaves a field alone, like Go's JSON decoder.
    fn merge(&mut self, attrs: &Value) -> Result<(), ProxyError> {
        let obj = match attrs {
            Value::Null => return Ok(()),
            Value::Object(o) => o,
            other => {
                return Err(ProxyError::BadRequestBody(format!(
                    "attributes must be an object, not {other}"
                )))
            }
        };
        for (key, slot) in self.fields_mut() {
            match obj.get(key) {
                None | Some(Value::Null) => {}
                Some(v) => *slot = attr_u64(key, v)?,
            }
        }
        Ok(())
    }
}

fn attr_u64(key: &str, v: &Value) -> Result<u64, ProxyError> {
    if let Some(n) = v.as_u64() {
        return Ok(n);
    }
    // Clients in dynamic languages may send 100.0 for 100.
    if let Some(f) = v.as_f64() {
        if f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64 {
            return Ok(f as u64);
        }
    }
    Err(ProxyError::BadRequestBody(format!(
        "attribute {key} must be a non-negative integer, got {v}"
    )))
}

/// One toxic: the unit of the API. An empty `name` means "`<type>_<stream>`".
#[derive(Debug, Clone, PartialEq)]
pub struct ToxicSpec {
    /// Unique on its proxy.
    pub name: String,
    /// The direction it acts on.
    pub stream: Stream,
    /// Share of connections it applies to, 0..=1, drawn once per connection.
    pub toxicity: f32,
    /// What it does.
    pub kind: ToxicKind,
}

impl ToxicSpec {
    /// A downstream toxic with toxicity 1 and the default name.
    pub fn new(kind: ToxicKind) -> Self {
        ToxicSpec {
            name: String::new(),
            stream: Stream::Downstream,
            toxicity: 1.0,
            kind,
        }
    }

    /// Sets the direction.
    pub fn stream(mut self, stream: Stream) -> Self {
        self.stream = stream;
        self
    }

    /// Sets the name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Fills the default name `<type>_<stream>` when none was given.
    pub(crate) fn with_default_name(mut self) -> Self {
        if self.name.is_empty() {
            self.name = format!("{}_{}", self.kind.type_name(), self.stream.as_str());
        }
        self
    }

    /// Parses a create request. Errors map to Toxiproxy's: unknown type and
    /// bad attributes are 400, like malformed JSON.
    pub fn from_json(v: &Value) -> Result<Self, ProxyError> {
        let obj = v.as_object().ok_or_else(|| {
            ProxyError::BadRequestBody(format!("expected a JSON object, got {v}"))
        })?;
        let stream = match obj.get("stream") {
            None | Some(Value::Null) => Stream::Downstream,
            Some(Value::String(s)) if s.is_empty() => Stream::Downstream,
            Some(Value::String(s)) => Stream::parse(s)?,
            Some(other) => {
                return Err(ProxyError::BadRequestBody(format!(
                    "stream must be a string, got {other}"
                )))
            }
        };
        let type_name = opt_str(obj, "type")?.unwrap_or_default();
        let mut kind = ToxicKind::zero(&type_name).ok_or(ProxyError::InvalidToxicType)?;
        kind.merge(obj.get("attributes").unwrap_or(&Value::Null))?;
        let toxicity = opt_toxicity(obj)?.unwrap_or(1.0);
        let name = opt_str(obj, "name")?.unwrap_or_default();
        Ok(ToxicSpec {
            name,
            stream,
            toxicity,
            kind,
        }
        .with_default_name())
    }

    /// Applies an update request: `attributes` merge into the current ones,
    /// `toxicity` replaces; name, type and stream cannot change.
    pub fn apply_update(&mut self, v: &Value) -> Result<(), ProxyError> {
        let obj = v.as_object().ok_or_else(|| {
            ProxyError::BadRequestBody(format!("expected a JSON object, got {v}"))
        })?;
        let mut kind = self.kind;
        kind.merge(obj.get("attributes").unwrap_or(&Value::Null))?;
        let toxicity = opt_toxicity(obj)?.unwrap_or(self.toxicity);
        self.kind = kind;
        self.toxicity = toxicity;
        Ok(())
    }

    /// The Toxiproxy JSON shape.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "type": self.kind.type_name(),
            "stream": self.stream.as_str(),
            "toxicity": self.toxicity,
            "attributes": self.kind.attributes(),
        })
    }
}

impl Serialize for ToxicSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for ToxicSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        ToxicSpec::from_json(&v).map_err(serde::de::Error::custom)
    }
}

fn opt_str(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, ProxyError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ProxyError::BadRequestBody(format!(
            "{key} must be a string, got {other}"
        ))),
    }
}

fn opt_toxicity(obj: &Map<String, Value>) -> Result<Option<f32>, ProxyError> {
    match obj.get("toxicity") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(f) if (0.0..=1.0).contains(&f) => Ok(Some(f as f32)),
            _ => Err(ProxyError::BadRequestBody(format!(
                "toxicity must be a number between 0 and 1, got {v}"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_follow_toxiproxy() {
        let t = ToxicSpec::from_json(&json!({"type": "latency", "attributes": {"latency": 5}}))
            .unwrap();
        assert_eq!(t.name, "latency_downstream");
        assert_eq!(t.stream, Stream::Downstream);
        assert_eq!(t.toxicity, 1.0);
        assert_eq!(
            t.kind,
            ToxicKind::Latency {
                latency: 5,
                jitter: 0
            }
        );
        assert_eq!(
            t.to_json()["attributes"],
            json!({"latency": 5, "jitter": 0})
        );
    }

    #[test]
    fn errors_have_toxiproxy_codes() {
        let bad_type = ToxicSpec::from_json(&json!({"type": "nope"})).unwrap_err();
        assert_eq!(bad_type.status(), 400);
        let bad_stream =
            ToxicSpec::from_json(&json!({"type": "latency", "stream": "x"})).unwrap_err();
        assert_eq!(bad_stream.status(), 400);
        let bad_attr =
            ToxicSpec::from_json(&json!({"type": "latency", "attributes": {"latency": "x"}}))
                .unwrap_err();
        assert_eq!(bad_attr.status(), 400);
    }

    #[test]
    fn update_merges_attributes() {
        let mut t = ToxicSpec::from_json(
            &json!({"type": "slicer", "attributes": {"average_size": 10, "delay": 3}}),
        )
        .unwrap();
        t.apply_update(&json!({"attributes": {"delay": 7}, "toxicity": 0.5}))
            .unwrap();
        assert_eq!(
            t.kind,
            ToxicKind::Slicer {
                average_size: 10,
                size_variation: 0,
                delay: 7
            }
        );
        assert_eq!(t.toxicity, 0.5);
    }
}
