//! `[domain.store]` as the generic parse reads it: the keys every store
//! has, typed; the keys of the kinds ([`crate::WatchKind::store_keys`],
//! [`crate::WatchKind::node_keys`]) accepted unread, for the kind to read
//! from the file itself; any other key an error at its place, during the
//! parse, as `deny_unknown_fields` would (so a typo is reported alone,
//! before anything is checked).
//!
//! serde's derive cannot take the kinds' keys at run time, so the parse
//! runs inside [`with_kind_keys`], which lends them to these visitors.

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::cell::RefCell;
use std::fmt;
use std::path::PathBuf;
use toml::Spanned;

/// The keys every `[domain.store]` has.
const STORE_KEYS: &[&str] = &["kind", "name", "nodes", "password_env", "password_file"];
/// The keys every `[[domain.store.nodes]]` has.
const NODE_KEYS: &[&str] = &["name"];

#[derive(Default)]
struct KindKeys {
    store: Vec<&'static str>,
    node: Vec<&'static str>,
}

thread_local! {
    static KIND_KEYS: RefCell<KindKeys> = RefCell::new(KindKeys::default());
}

/// Runs `parse` with the kinds' keys accepted in `[domain.store]` and its
/// nodes (and every other key refused), and forgets them afterwards.
pub(crate) fn with_kind_keys<R>(
    store: Vec<&'static str>,
    node: Vec<&'static str>,
    parse: impl FnOnce() -> R,
) -> R {
    KIND_KEYS.with(|k| *k.borrow_mut() = KindKeys { store, node });
    let r = parse();
    KIND_KEYS.with(|k| *k.borrow_mut() = KindKeys::default());
    r
}

/// `[domain.store]`: what every store has.
#[derive(Debug)]
pub struct StoreSpec {
    pub kind: Spanned<String>,
    /// Store name in metrics (default: the domain's name).
    pub name: Option<Spanned<String>>,
    /// The nodes; their kind's keys (a conninfo, an address) are the kind's.
    pub nodes: Vec<NodeSpec>,
    pub password_env: Option<Spanned<String>>,
    pub password_file: Option<Spanned<PathBuf>>,
}

/// `[[domain.store.nodes]]`: what every node has.
#[derive(Debug)]
pub struct NodeSpec {
    pub name: Spanned<String>,
}

/// A key of a table: one of `generic`, one of the kinds' (`None`), or an
/// error raised while the key is read, so TOML points at the key.
struct Key {
    generic: &'static [&'static str],
    node: bool,
}

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Option<&'static str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for Key {
    type Value = Option<&'static str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, k: &str) -> Result<Self::Value, E> {
        if let Some(g) = self.generic.iter().find(|g| **g == k) {
            return Ok(Some(g));
        }
        KIND_KEYS.with(|kk| {
            let kk = kk.borrow();
            let kinds = if self.node { &kk.node } else { &kk.store };
            if kinds.contains(&k) {
                return Ok(None);
            }
            // Several kinds read the same key (`user`): name it once.
            let mut all: Vec<&str> = self.generic.to_vec();
            for x in kinds {
                if !all.contains(x) {
                    all.push(x);
                }
            }
            Err(E::custom(unknown_field(k, &all)))
        })
    }
}

/// serde's own wording for an unknown field.
fn unknown_field(k: &str, expected: &[&str]) -> String {
    let quoted: Vec<String> = expected.iter().map(|e| format!("`{e}`")).collect();
    match quoted.as_slice() {
        [] => format!("unknown field `{k}`, there are no fields"),
        [a] => format!("unknown field `{k}`, expected {a}"),
        [a, b] => format!("unknown field `{k}`, expected {a} or {b}"),
        _ => format!("unknown field `{k}`, expected one of {}", quoted.join(", ")),
    }
}

impl<'de> Deserialize<'de> for StoreSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StoreSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a [domain.store] table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StoreSpec, A::Error> {
                let mut kind = None;
                let mut name = None;
                let mut nodes = None;
                let mut password_env = None;
                let mut password_file = None;
                let key = || Key {
                    generic: STORE_KEYS,
                    node: false,
                };
                while let Some(k) = map.next_key_seed(key())? {
                    match k {
                        Some("kind") => kind = Some(map.next_value()?),
                        Some("name") => name = Some(map.next_value()?),
                        Some("nodes") => nodes = Some(map.next_value()?),
                        Some("password_env") => password_env = Some(map.next_value()?),
                        Some("password_file") => password_file = Some(map.next_value()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(StoreSpec {
                    kind: kind.ok_or_else(|| de::Error::missing_field("kind"))?,
                    name,
                    nodes: nodes.unwrap_or_default(),
                    password_env,
                    password_file,
                })
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for NodeSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NodeSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a [[domain.store.nodes]] table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeSpec, A::Error> {
                let mut name = None;
                let key = || Key {
                    generic: NODE_KEYS,
                    node: true,
                };
                while let Some(k) = map.next_key_seed(key())? {
                    match k {
                        Some("name") => name = Some(map.next_value()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(NodeSpec {
                    name: name.ok_or_else(|| de::Error::missing_field("name"))?,
                })
            }
        }
        d.deserialize_map(V)
    }
}
