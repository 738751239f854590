//! `[lab]` options of a `kind = "kafka-mirror"` lab: two one-broker Kafka
//! clusters (regions A and B) and MirrorMaker 2 between them. Every option
//! moves a measured figure (the mirroring lag is the RPO of a region loss,
//! the checkpoint interval the consumers' redeliveries), so each is in the
//! run's settings line.

use firedrill_spec::{Diagnostic, Dur, LabSpec, LoadedSpec, Spanned};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// What a mirror lab adds to `[lab]`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct MirrorLab {
    /// `"active-passive"` (A → B only; the default) or `"active-active"`
    /// (both ways, B → A as `B.<topic>` on A; half the workload's clients
    /// then write from B all along).
    pub mirror: Option<Spanned<String>>,
    /// The drill topic's partitions (default 3), on both regions.
    pub partitions: Option<Spanned<u32>>,
    /// MM2's `emit.checkpoints.interval.seconds`: how often the consumer
    /// groups' offsets are translated into B's checkpoints topic. Default
    /// 1 s here, 60 s in MM2.
    pub checkpoint_interval: Option<Spanned<Dur>>,
    /// MM2's `sync.group.offsets.interval.seconds` (group-offset sync is
    /// on). Default 1 s here, 60 s in MM2.
    pub sync_interval: Option<Spanned<Dur>>,
    /// MM2's `refresh.topics.interval.seconds`: how soon a new topic on A
    /// is mirrored (each drill has its own topic). Default 1 s here, 600 s
    /// in MM2.
    pub refresh_interval: Option<Spanned<Dur>>,
    /// Where the Kafka jars are (with MM2's `connect-mirror`); default
    /// `FIREDRILL_KAFKA_LIBS`, then `~/.cache/firedrill/kafka-4.3.1/libs`.
    pub libs_dir: Option<PathBuf>,
    /// The `java` to run; default `JAVA`, `JAVA_HOME/bin/java`, PATH.
    pub java: Option<PathBuf>,
}

/// The topology MM2 runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mirror {
    ActivePassive,
    ActiveActive,
}

impl Mirror {
    pub fn parse(s: &str) -> Option<Mirror> {
        match s {
            "active-passive" => Some(Mirror::ActivePassive),
            "active-active" => Some(Mirror::ActiveActive),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Mirror::ActivePassive => "active-passive",
            Mirror::ActiveActive => "active-active",
        }
    }
}

fn secs_of(d: &Option<Spanned<Dur>>) -> Duration {
    d.as_ref()
        .map(|d| d.get_ref().0)
        .unwrap_or(Duration::from_secs(1))
}

impl MirrorLab {
    /// The options of a lab that passed validation.
    pub fn of(lab: &LabSpec) -> MirrorLab {
        lab.options().unwrap_or_default()
    }
    pub fn mirror(&self) -> Mirror {
        self.mirror
            .as_ref()
            .and_then(|m| Mirror::parse(m.get_ref()))
            .unwrap_or(Mirror::ActivePassive)
    }
    pub fn partitions(&self) -> u32 {
        self.partitions.as_ref().map(|p| *p.get_ref()).unwrap_or(3)
    }
    pub fn checkpoint_interval(&self) -> Duration {
        secs_of(&self.checkpoint_interval)
    }
    pub fn sync_interval(&self) -> Duration {
        secs_of(&self.sync_interval)
    }
    pub fn refresh_interval(&self) -> Duration {
        secs_of(&self.refresh_interval)
    }
    /// As `kafka`'s lab options, for finding the jars and Java the same way.
    pub fn as_kafka(&self) -> crate::kafka::config::KafkaLab {
        crate::kafka::config::KafkaLab {
            libs_dir: self.libs_dir.clone(),
            java: self.java.clone(),
            ..Default::default()
        }
    }
}

/// What MM2 or this lab would refuse.
pub fn check_lab(spec: &LoadedSpec, o: &MirrorLab, out: &mut Vec<Diagnostic>) {
    if let Some(m) = &o.mirror {
        if Mirror::parse(m.get_ref()).is_none() {
            out.push(spec.at(
                m.span(),
                format!(
                    "mirror must be \"active-passive\" or \"active-active\", not {:?}",
                    m.get_ref()
                ),
            ));
        }
    }
    if let Some(p) = &o.partitions {
        if !(1..=64).contains(p.get_ref()) {
            out.push(spec.at(p.span(), "partitions must be 1 to 64"));
        }
    }
    for (d, what) in [
        (&o.checkpoint_interval, "checkpoint_interval"),
        (&o.sync_interval, "sync_interval"),
        (&o.refresh_interval, "refresh_interval"),
    ] {
        if let Some(d) = d {
            let v = d.get_ref().0;
            // MM2 takes these in whole seconds.
            if v < Duration::from_secs(1) || v.subsec_nanos() != 0 {
                out.push(spec.at(
                    d.span(),
                    format!("{what} must be a whole number of seconds, at least 1s (MM2 takes seconds)"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_names_round_trip() {
        for m in [Mirror::ActivePassive, Mirror::ActiveActive] {
            assert_eq!(Mirror::parse(m.as_str()), Some(m));
        }
        assert_eq!(Mirror::parse("bogus"), None);
        assert_eq!(Mirror::parse("Active-Passive"), None);
    }

    #[test]
    fn intervals_default_to_one_second() {
        let o = MirrorLab::default();
        assert_eq!(o.checkpoint_interval(), Duration::from_secs(1));
        assert_eq!(o.sync_interval(), Duration::from_secs(1));
        assert_eq!(o.mirror(), Mirror::ActivePassive);
    }
}
