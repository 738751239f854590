//! Connection settings for an etcd target: one client URL per member.

use firedrill_targets::{http, TargetError, TargetNode};

/// One member as the drill names it.
#[derive(Debug, Clone)]
pub struct EtcdNode {
    pub name: String,
    /// `host:port` of the member's client URL (plain http).
    pub control: String,
    /// The workload's path to the member.
    pub client: String,
}

/// Parses `http://host:port` endpoints. There is no credential to add:
/// lab members listen on loopback without auth.
pub fn parse_nodes(nodes: &[TargetNode]) -> Result<Vec<EtcdNode>, TargetError> {
    nodes
        .iter()
        .map(|n| {
            let bad = |msg| TargetError::Config {
                node: n.name.clone(),
                msg,
            };
            Ok(EtcdNode {
                name: n.name.clone(),
                control: http::authority(&n.control).map_err(bad)?,
                client: http::authority(&n.client).map_err(bad)?,
            })
        })
        .collect()
}

/// Keys of one run: the ledger under `firedrill/<run_id>/`, the heartbeat
/// beside it (outside the prefix, so the audit never reads it).
#[derive(Debug, Clone)]
pub struct Keys {
    pub prefix: String,
    pub heartbeat: String,
}

impl Keys {
    pub fn new(run_id: &str) -> Keys {
        Keys {
            prefix: format!("firedrill/{run_id}/"),
            heartbeat: format!("firedrill-heartbeat/{run_id}"),
        }
    }

    /// Zero-padded, so keys sort in ledger order.
    pub fn entry(&self, seq: u64) -> String {
        format!("{}{seq:020}", self.prefix)
    }

    /// The ledger id of a key under the prefix.
    pub fn seq_of(&self, key: &[u8]) -> Option<u64> {
        let k = std::str::from_utf8(key).ok()?;
        k.strip_prefix(&self.prefix)?.parse().ok()
    }
}

/// The end of a prefix range: the prefix with its last byte incremented.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let k = Keys::new("r1");
        assert_eq!(k.seq_of(k.entry(42).as_bytes()), Some(42));
        assert_eq!(k.seq_of(b"firedrill/r2/00000000000000000042"), None);
        assert_eq!(k.seq_of(k.heartbeat.as_bytes()), None);
        assert_eq!(prefix_end(b"a/"), b"a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
    }
}
