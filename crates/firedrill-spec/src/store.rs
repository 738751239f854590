//! What the generic spec checks know of a kind of store: one [`StoreSpec`]
//! per kind, in a [`Stores`] registry the caller passes in. The spec crate
//! itself names no store.

use crate::{Diagnostic, DrillSpec, EndpointSpec, FaultAction, FaultStep, LabSpec, Links};
use crate::{LoadedSpec, NodeUniverse, RestoreSpec, TargetSpec};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// The spec side of one kind of store: its options, its checks, the faults
/// it can take.
pub trait StoreSpec: Send + Sync {
    /// The name `kind = "..."` gives.
    fn kind(&self) -> &'static str;
    /// The `[lab]` keys this store owns, besides the ones every lab has.
    fn lab_keys(&self) -> &'static [&'static str];
    /// The `[drill.target]` keys this store owns.
    fn target_keys(&self) -> &'static [&'static str] {
        &[]
    }
    /// The `links` modes its lab supports.
    fn links(&self) -> &'static [Links] {
        &[Links::Direct]
    }
    /// Checks the store's lab options, pointing at the file.
    fn check_lab(&self, spec: &LoadedSpec, lab: &LabSpec, out: &mut Vec<Diagnostic>);
    /// The nodes and features of a lab of this kind.
    fn lab_universe(&self, lab: &LabSpec) -> NodeUniverse;
    /// Checks one explicit endpoint; true when it gives firedrill a pid.
    fn check_endpoint(
        &self,
        spec: &LoadedSpec,
        n: &EndpointSpec,
        out: &mut Vec<Diagnostic>,
    ) -> bool {
        if n.data_dir.is_some() {
            out.push(spec.at(
                n.name.span(),
                format!(
                    "data_dir is for PostgreSQL endpoints (its postmaster.pid): give pid_file for {:?}",
                    n.name.get_ref()
                ),
            ));
        }
        n.pid_file.is_some()
    }
    /// What gives firedrill an endpoint's pid, for messages.
    fn pid_source(&self) -> &'static str {
        "pid_file"
    }
    /// Explicit endpoints can be fronted by firedrill's embedded proxy
    /// (their addresses can be rewritten to point at it).
    fn endpoint_client_proxy(&self) -> bool {
        false
    }
    /// Checks the store's target options.
    fn check_target(
        &self,
        _spec: &LoadedSpec,
        _d: &DrillSpec,
        _t: &TargetSpec,
        _u: Option<&NodeUniverse>,
        _out: &mut Vec<Diagnostic>,
    ) {
    }
    /// Roles a fault step may name that the store resolves itself when the
    /// step runs (`Target::resolve_role`), besides primary and standby.
    fn roles(&self) -> &'static [&'static str] {
        &[]
    }
    /// The fault kinds this store can take.
    fn faults(&self) -> &'static [FaultAction];
    /// What to use instead of a fault this store cannot take.
    fn fault_hint(&self, _action: FaultAction) -> Option<&'static str> {
        None
    }
    /// Store-specific checks of one fault step.
    fn check_step(
        &self,
        _spec: &LoadedSpec,
        _s: &FaultStep,
        _u: &NodeUniverse,
        _out: &mut Vec<Diagnostic>,
    ) {
    }
    /// The `[lab.backup] tool`s its labs can take, for messages (a store
    /// whose check_lab knows its tools may leave this empty).
    fn backup_tools(&self) -> &'static [&'static str] {
        &[]
    }
    /// Store-specific checks of a `restore` recovery: which targets and
    /// options its backup tool can honour.
    fn check_restore(&self, _spec: &LoadedSpec, _r: &RestoreSpec, _out: &mut Vec<Diagnostic>) {}
}

/// The kinds of store this build knows, in registry order.
#[derive(Clone, Default)]
pub struct Stores {
    list: Vec<&'static dyn StoreSpec>,
}

impl Stores {
    pub fn new(list: Vec<&'static dyn StoreSpec>) -> Self {
        Stores { list }
    }
    pub fn get(&self, kind: &str) -> Option<&'static dyn StoreSpec> {
        self.list.iter().copied().find(|s| s.kind() == kind)
    }
    /// The store a spec names, or the first one when it names none.
    pub fn of(&self, kind: Option<&str>) -> Option<&'static dyn StoreSpec> {
        match kind {
            Some(k) => self.get(k),
            None => self.list.first().copied(),
        }
    }
    pub fn kinds(&self) -> Vec<&'static str> {
        self.list.iter().map(|s| s.kind()).collect()
    }
    /// Which kinds take `action`, as their `faults()` declare it, for the
    /// message of a store that does not.
    pub fn taking(&self, action: FaultAction) -> String {
        let kinds: Vec<&str> = self
            .list
            .iter()
            .filter(|s| s.faults().contains(&action))
            .map(|s| s.kind())
            .collect();
        if kinds.is_empty() {
            format!("no store of this build takes {}", action.as_str())
        } else {
            format!(
                "{} is built for labs of kind {} so far",
                action.as_str(),
                kinds.join(", ")
            )
        }
    }
    /// The kinds whose labs own `key` (`backup`: the ones that take backups).
    pub fn owning_lab_key(&self, key: &str) -> Vec<&'static str> {
        self.list
            .iter()
            .filter(|s| s.lab_keys().contains(&key))
            .map(|s| s.kind())
            .collect()
    }
    /// The message for a kind this build does not have.
    pub fn unknown_kind(&self, kind: Option<&str>) -> String {
        let kind = kind.unwrap_or("(default)");
        format!(
            "unknown store kind {kind:?}: this build of firedrill knows {}",
            self.kinds().join(", ")
        )
    }
}

/// Every field name of a struct, as serde's derive lists them, so a store's
/// config type is the one list of the keys it owns.
pub fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Grab(Option<&'static [&'static str]>);
    #[derive(Debug)]
    struct Done;
    impl std::fmt::Display for Done {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("fields captured")
        }
    }
    impl std::error::Error for Done {}
    impl serde::de::Error for Done {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Done
        }
    }
    impl<'de> serde::Deserializer<'de> for &mut Grab {
        type Error = Done;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Done> {
            Err(Done)
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Done> {
            self.0 = Some(fields);
            Err(Done)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut g = Grab(None);
    let _ = T::deserialize(&mut g);
    g.0.unwrap_or(&[])
}

#[derive(Deserialize)]
struct LabKeys {
    lab: BTreeMap<Spanned<String>, IgnoredAny>,
}
#[derive(Deserialize)]
struct DrillKeys {
    drill: TargetKeysOuter,
}
#[derive(Deserialize)]
struct TargetKeysOuter {
    target: BTreeMap<Spanned<String>, IgnoredAny>,
}

/// Reports every key of `options` the store does not own, at its place.
pub(crate) fn check_unknown_keys(
    spec: &LoadedSpec,
    path: &[&str],
    options: &toml::Table,
    store: &dyn StoreSpec,
    stores: &Stores,
    out: &mut Vec<Diagnostic>,
) {
    let lab = path == ["lab"];
    let keys_of = |s: &dyn StoreSpec| if lab { s.lab_keys() } else { s.target_keys() };
    let known = keys_of(store);
    let kind = store.kind();
    let unknown: Vec<&String> = options
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .collect();
    if unknown.is_empty() {
        return;
    }
    let spans: Vec<(String, std::ops::Range<usize>)> = if lab {
        toml::from_str::<LabKeys>(&spec.source)
            .map(|v| {
                v.lab
                    .into_keys()
                    .map(|k| (k.get_ref().clone(), k.span()))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        toml::from_str::<DrillKeys>(&spec.source)
            .map(|v| {
                v.drill
                    .target
                    .into_keys()
                    .map(|k| (k.get_ref().clone(), k.span()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let table = format!("[{}]", path.join("."));
    for k in unknown {
        let span = spans
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, s)| s.clone())
            .unwrap_or(0..0);
        // A key another kind of store owns is a kind mix-up, not a typo.
        let owner = stores
            .list
            .iter()
            .find(|s| s.kind() != kind && keys_of(**s).contains(&k.as_str()));
        let msg = if let Some(o) = owner {
            format!(
                "`{k}` is for {} {} (kind = \"{}\"); this is {} {kind} {}",
                if lab { "a" } else { "targets of kind" },
                if lab {
                    format!("{} lab", o.kind())
                } else {
                    o.kind().to_string()
                },
                o.kind(),
                article(kind),
                if lab { "lab" } else { "target" }
            )
        } else if known.is_empty() {
            format!("unknown field `{k}` in {table}: a {kind} store takes no options here")
        } else {
            format!(
                "unknown field `{k}` in {table}: a {kind} store takes {}",
                known
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        out.push(spec.at(span, msg));
    }
}

/// Reads a store's view of `[lab]` from the file itself, so every value
/// keeps its file:line:column. `T` must not deny unknown fields (the
/// generic keys are in the same table); its nested tables may.
pub fn lab_view<T: DeserializeOwned + Default>(spec: &LoadedSpec) -> Result<T, Diagnostic> {
    #[derive(Deserialize)]
    struct V<T> {
        lab: Option<T>,
    }
    view::<V<T>>(spec).map(|v| v.lab.unwrap_or_default())
}

/// Reads a store's view of `[drill.target]` from the file (see [`lab_view`]).
pub fn target_view<T: DeserializeOwned + Default>(spec: &LoadedSpec) -> Result<T, Diagnostic> {
    #[derive(Deserialize)]
    struct D<T> {
        target: Option<T>,
    }
    #[derive(Deserialize)]
    struct V<T> {
        drill: Option<D<T>>,
    }
    view::<V<T>>(spec).map(|v| v.drill.and_then(|d| d.target).unwrap_or_default())
}

fn view<T: DeserializeOwned>(spec: &LoadedSpec) -> Result<T, Diagnostic> {
    toml::from_str::<T>(&spec.source).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        spec.at(span, e.message().trim().to_string())
    })
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}
