//! `firedrill drill` of a capability spec: one domain per member lab, each
//! prepared exactly as a drill of that lab alone, run together by the
//! engine's capability trial.

use crate::drill::{default_run_dir, finish_run, prepare, start_reporters, Prepared, Target};
use crate::Failure;
use firedrill_engine::{CapabilityPlan, Domain, EngineError, Environment, NodeSpec, Plan};
use firedrill_lab::LabState;
use firedrill_report::{ObjectivesRecord, RunMeta};
use firedrill_spec::{split_capability, LoadedSpec};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A member lab whose nodes carry the spec's regions as their zones, so a
/// step's `zone = "<region>"` hits them.
struct RegionEnv {
    inner: Box<dyn Environment>,
    regions: BTreeMap<String, String>,
}

impl RegionEnv {
    fn place(&self, mut nodes: Vec<NodeSpec>) -> Vec<NodeSpec> {
        for n in &mut nodes {
            if let Some(r) = self.regions.get(&n.name) {
                n.zone = Some(r.clone());
            }
        }
        nodes
    }
}

impl Environment for RegionEnv {
    fn prepare(
        &mut self,
        trial: u32,
        log: &mut dyn FnMut(String),
    ) -> Result<Vec<NodeSpec>, EngineError> {
        let nodes = self.inner.prepare(trial, log)?;
        Ok(self.place(nodes))
    }
    fn nodes_now(&mut self) -> Vec<NodeSpec> {
        let nodes = self.inner.nodes_now();
        self.place(nodes)
    }
    fn opener(&self) -> Option<std::sync::Arc<dyn firedrill_targets::TargetOpener>> {
        self.inner.opener()
    }
}

pub async fn run(spec: &LoadedSpec, out: Option<PathBuf>) -> Result<u8, Failure> {
    let split = split_capability(spec, &firedrill_stores::specs(), false)
        .map_err(|e| Failure::input(spec.fail(e).to_string()))?;
    let Some(d) = spec.file.drill.as_ref() else {
        return Err(Failure::input("a capability drill needs its [drill]"));
    };
    let cap_name = d
        .capability
        .as_ref()
        .map(|c| c.name.get_ref().clone())
        .unwrap_or_default();
    let parent = spec.file.lab.as_ref().map(crate::lab::lab_dir);
    let run_dir = out.unwrap_or_else(|| default_run_dir(d.name.get_ref()));
    if run_dir.join("run.json").exists() || run_dir.join(crate::partial::START_FILE).exists() {
        return Err(Failure::input(format!(
            "{} already holds a run; choose another --out",
            run_dir.display()
        )));
    }
    let mut domains = Vec::new();
    let mut descs = Vec::new();
    // Every password is read before anything starts.
    let mut passwords = Vec::new();
    for ds in &split {
        let dd = ds.spec.file.drill.as_ref();
        passwords.push(crate::drill::password(dd.and_then(|d| d.target.as_ref()))?);
    }
    let mut embedded = Vec::new();
    for (ds, pw) in split.iter().zip(passwords) {
        let Some(dd) = ds.spec.file.drill.as_ref() else {
            return Err(Failure::internal("a domain without its drill"));
        };
        let target = domain_target(spec, ds, parent.as_deref(), dd)?;
        let endpoints = matches!(target, Target::Endpoints(_));
        let Prepared {
            env,
            desc,
            opener,
            restorer,
            embedded: proxy,
            ..
        } = prepare(target, dd).await?;
        embedded.extend(proxy);
        let dom_dir = run_dir.join(&ds.domain);
        std::fs::create_dir_all(&dom_dir)
            .map_err(|e| Failure::aborted(format!("{}: {e}", dom_dir.display())))?;
        let mut plan = Plan::build(dd, desc.clone(), pw, dom_dir, endpoints, opener);
        plan.restorer = restorer.map(firedrill_engine::RestorerHandle);
        for st in &mut plan.steps {
            st.index = ds.steps.get(st.index).copied().unwrap_or(st.index);
        }
        if !ds.judged {
            plan.objectives = Default::default();
        }
        descs.push(format!("{}: {desc}", ds.domain));
        domains.push(Domain {
            name: ds.domain.clone(),
            plan,
            env: Box::new(RegionEnv {
                inner: env,
                regions: ds.regions.clone(),
            }),
            judged: ds.judged,
            written: ds.written,
        });
    }
    let outbox = outbox_plan(d, &split, parent.as_deref())?;
    let Some(first) = domains.first() else {
        return Err(Failure::input("the capability names no domain"));
    };
    let us = |d: Option<firedrill_spec::Dur>| d.map(|v| v.0.as_micros() as u64);
    let objectives = firedrill_ledger::Objectives {
        rpo_us: us(d.objectives.as_ref().and_then(|o| o.rpo)),
        rto_us: us(d.objectives.as_ref().and_then(|o| o.rto)),
    };
    let cap = CapabilityPlan {
        drill: d.name.get_ref().clone(),
        capability: cap_name.clone(),
        target: format!("capability {cap_name} over {}", descs.join("; ")),
        workload: first.plan.workload.clone(),
        slo: first.plan.slo,
        objectives,
        trials: first.plan.trials,
        run_dir: run_dir.clone(),
        outbox,
    };
    let meta = RunMeta {
        drill: cap.drill.clone(),
        description: d.description.clone(),
        objectives: ObjectivesRecord {
            rpo_s: objectives.rpo_us.map(|v| v as f64 / 1e6),
            rto_s: objectives.rto_us.map(|v| v as f64 / 1e6),
        },
        firedrill_version: env!("CARGO_PKG_VERSION").into(),
        server_version: None,
        spec: serde_json::to_value(d).unwrap_or(serde_json::Value::Null),
    };
    // What `report` needs if this process dies: the domains' journals.
    let names: Vec<String> = domains.iter().map(|d| d.name.clone()).collect();
    crate::partial::write_start(&run_dir, spec, d, &cap.target, &names)?;
    let (tx, consumer) = start_reporters(&run_dir, meta, None)?;
    let res = firedrill_engine::run_capability(&cap, &mut domains, tx.clone()).await;
    // Only now may the embedded proxies go: every heal has run.
    drop(embedded);
    finish_run(res, &run_dir, tx, consumer).await
}

/// A domain's target: its explicit endpoints, or its member lab, which
/// must be up.
fn domain_target(
    spec: &LoadedSpec,
    ds: &firedrill_spec::DomainSpec,
    parent: Option<&std::path::Path>,
    dd: &firedrill_spec::DrillSpec,
) -> Result<Target, Failure> {
    if let Some(t) = dd.target.as_ref().filter(|t| !t.nodes.is_empty()) {
        return Ok(Target::Endpoints(Box::new(t.clone())));
    }
    let (Some(parent), Some(lab)) = (parent, ds.lab.as_ref()) else {
        return Err(Failure::internal("a lab domain without its lab"));
    };
    let state = LabState::load(&parent.join(&ds.domain)).map_err(|_| {
        Failure::aborted(format!(
            "lab {lab} (domain {}) is not up: start it with `firedrill lab up {}`",
            ds.domain,
            spec.path.display()
        ))
    })?;
    Ok(Target::Lab(Box::new(state)))
}

/// The outbox's pipeline: the log's and the projection's member labs
/// (read again at each trial's start, since a reset moves ports).
fn outbox_plan(
    d: &firedrill_spec::DrillSpec,
    split: &[firedrill_spec::DomainSpec],
    parent: Option<&std::path::Path>,
) -> Result<Option<firedrill_engine::OutboxPlan>, Failure> {
    let Some(o) = d.capability.as_ref().and_then(|c| c.outbox.as_ref()) else {
        return Ok(None);
    };
    let index = |dom: &str| split.iter().position(|ds| ds.domain == dom);
    let (Some(source), Some(log), Some(proj)) = (
        index(o.source.get_ref()),
        index(o.log.get_ref()),
        index(o.projection.get_ref()),
    ) else {
        return Err(Failure::internal("an outbox domain without its domain"));
    };
    let (Some(parent), true, true) = (parent, split[log].lab.is_some(), split[proj].lab.is_some())
    else {
        return Err(Failure::input(
            "an outbox's log and projection are lab members here ([[lab.member]]); explicit endpoints for them are not supported yet",
        ));
    };
    let ends = firedrill_stores::kafka::outbox::OutboxEnds::Labs {
        log: parent.join(&split[log].domain),
        projection: parent.join(&split[proj].domain),
    };
    Ok(Some(firedrill_engine::OutboxPlan {
        source,
        log,
        projection: proj,
        pipeline: std::sync::Arc::new(firedrill_stores::kafka::outbox::KafkaRedisOutbox::new(
            ends,
            o.idempotent(),
        )),
        consumer: if o.idempotent() {
            "idempotent".into()
        } else {
            "non_idempotent".into()
        },
        catch_up: o.catch_up(),
    }))
}
