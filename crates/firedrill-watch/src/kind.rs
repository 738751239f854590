//! The seam between watch and the stores: watch validates the objectives
//! file, schedules probe rounds and renders what they found, but never
//! names a store. Each kind of store gives a [`WatchKind`] (its name in
//! `kind = "..."`, its sources, its `[domain.store]` options) that builds
//! a [`WatchStore`] per domain, which opens a [`Probe`]. The binary passes
//! the list of kinds its build has to [`crate::load`].

use crate::config::Loaded;
use crate::plan::{Settings, Source, WatchedDomain};
use crate::probe::Round;
use firedrill_spec::Diagnostic;
use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::Mutex;

/// One kind of store as the objectives file names it.
pub trait WatchKind: Send + Sync {
    /// The kind as written in `[domain.store] kind = "..."`.
    fn kind(&self) -> &'static str;
    /// The exposure sources a store of this kind can give; an objective
    /// naming another is an error at its place in the file.
    fn sources(&self) -> &'static [Source];
    /// The `[domain.store]` keys this kind reads, beyond the ones every
    /// store has (`kind`, `name`, `nodes`, `password_env`, `password_file`).
    fn store_keys(&self) -> &'static [&'static str];
    /// The `[[domain.store.nodes]]` keys this kind reads, beyond `name`.
    fn node_keys(&self) -> &'static [&'static str];
    /// Reads and checks domain `domain`'s `[domain.store]` options (with
    /// [`store_view`], so each problem keeps its file:line:column) and
    /// pushes every problem to `out`. `None` only when nothing could be
    /// read; a store with problems may still be returned, so the
    /// objectives are checked against it too (every problem at once).
    fn plan(
        &self,
        file: &Loaded,
        domain: usize,
        out: &mut Vec<Diagnostic>,
    ) -> Option<Arc<dyn WatchStore>>;
}

/// One domain's validated store: runtime values only, never a secret (the
/// password is in [`WatchedDomain::credentials`]).
pub trait WatchStore: fmt::Debug + Send + Sync {
    /// The store itself, so its own folder's other parts (assess reading
    /// the settings in force) can see its endpoints.
    fn as_any(&self) -> &dyn Any;
    /// Why this store cannot give `source` although its kind can (a
    /// PostgreSQL store without pgBackRest has no backups to age), so the
    /// objective naming it is an error.
    fn lacks(&self, _source: Source) -> Option<&'static str> {
        None
    }
    /// A probe of this store; it connects on its first round.
    fn prober(&self, dom: &WatchedDomain, settings: &Settings) -> Box<dyn Probe>;
}

/// A probe of one domain's store, kept between rounds so connections and
/// histories survive. One round never takes much longer than about twice
/// the timeout (each step has a deadline); a hung one is cut off anyway.
#[async_trait::async_trait]
pub trait Probe: Send {
    async fn round(&mut self, dom: &WatchedDomain) -> Round;
}

/// The kind named `kind` among `kinds`.
pub fn find<'a>(kinds: &[&'a dyn WatchKind], kind: &str) -> Option<&'a dyn WatchKind> {
    kinds.iter().copied().find(|k| k.kind() == kind)
}

/// Reads domain `domain`'s `[domain.store]` table as `T` from the file
/// itself, so every value keeps its file:line:column (a table copied out of
/// the document would lose them). `T` must not deny unknown fields: the
/// keys every store has are in the same table (the generic parse has
/// already rejected keys no kind reads); its nested tables may.
///
/// The first call for a `T` reads every domain's table as `T` in one parse
/// and keeps the results; later calls take theirs from that cache. A domain
/// whose table does not read as `T` (another kind's, or a bad value) is
/// read again alone, which gives its error with the place.
pub fn store_view<T: DeserializeOwned + Send + 'static>(
    file: &Loaded,
    domain: usize,
) -> Result<T, Diagnostic> {
    let mut cache = file.views.0.lock().unwrap_or_else(|p| p.into_inner());
    let entry = cache.entry(TypeId::of::<T>()).or_insert_with(|| {
        let all = toml::Deserializer::new(&file.source);
        let views: Vec<Option<T>> = AllDomains::<T>(PhantomData)
            .deserialize(all)
            .ok()
            .flatten()
            .unwrap_or_default();
        Box::new(views)
    });
    let taken = entry
        .downcast_mut::<Vec<Option<T>>>()
        .and_then(|v| v.get_mut(domain))
        .and_then(Option::take);
    drop(cache);
    match taken {
        Some(v) => Ok(v),
        None => store_view_alone(file, domain),
    }
}

/// Per view type, every domain's store table (`None`: did not read).
#[derive(Default)]
pub(crate) struct ViewCache(Mutex<HashMap<TypeId, Box<dyn Any + Send>>>);

/// One domain read alone: the slow path, for its diagnostic.
fn store_view_alone<T: DeserializeOwned>(file: &Loaded, domain: usize) -> Result<T, Diagnostic> {
    let de = toml::Deserializer::new(&file.source);
    match (Top::<T> {
        domain,
        _t: PhantomData,
    })
    .deserialize(de)
    {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(file.at(0..0, format!("no [domain.store] in domain {}", domain + 1))),
        Err(e) => Err(file.at(e.span().unwrap_or(0..0), e.message().trim().to_string())),
    }
}

/// The document: every `[[domain]]`'s store as `T`, a failure kept as
/// `None` so one domain of another kind does not hide the others.
struct AllDomains<T>(PhantomData<T>);

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for AllDomains<T> {
    type Value = Option<Vec<Option<T>>>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for AllDomains<T> {
    type Value = Option<Vec<Option<T>>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an objectives file")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(k) = map.next_key::<String>()? {
            if k == "domain" {
                found = Some(map.next_value_seed(EveryDomain::<T>(PhantomData))?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

struct EveryDomain<T>(PhantomData<T>);

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for EveryDomain<T> {
    type Value = Vec<Option<T>>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for EveryDomain<T> {
    type Value = Vec<Option<T>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of [[domain]] tables")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Lenient::<T>(PhantomData))? {
            out.push(v);
        }
        Ok(out)
    }
}

/// One `[[domain]]`'s store as `T`, or `None` when it does not read: the
/// element is consumed either way, so the sequence goes on.
struct Lenient<T>(PhantomData<T>);

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for Lenient<T> {
    type Value = Option<T>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Ok(Domain::<T>(PhantomData).deserialize(d).ok().flatten())
    }
}

/// The document: skips everything but `domain`.
struct Top<T> {
    domain: usize,
    _t: PhantomData<T>,
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for Top<T> {
    type Value = Option<T>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for Top<T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an objectives file")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(k) = map.next_key::<String>()? {
            if k == "domain" {
                found = map.next_value_seed(Domains::<T> {
                    domain: self.domain,
                    _t: PhantomData,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// `[[domain]]`: skips every domain but the one asked for.
struct Domains<T> {
    domain: usize,
    _t: PhantomData<T>,
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for Domains<T> {
    type Value = Option<T>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for Domains<T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of [[domain]] tables")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let mut i = 0;
        loop {
            if i == self.domain {
                match seq.next_element_seed(Domain::<T>(PhantomData))? {
                    Some(v) => found = v,
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            i += 1;
        }
        Ok(found)
    }
}

/// One `[[domain]]`: its `store` table as `T`.
struct Domain<T>(PhantomData<T>);

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for Domain<T> {
    type Value = Option<T>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for Domain<T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a [[domain]] table")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(k) = map.next_key::<String>()? {
            if k == "store" {
                found = Some(map.next_value::<T>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}
