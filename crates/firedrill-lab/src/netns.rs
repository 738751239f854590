//! `links = "netns"`: every node runs in its own network namespace, joined
//! to a lab bridge by a veth pair. A partition is then a kernel-level cut:
//! the host side of the node's veth set down. Needs root and iproute2.
//!
//! Names derive from a hash of the lab directory, so `down` (in a later
//! process) finds them again: bridge `fdb<h>`, namespace `fd-<h>-<i>`, host
//! veth `fdv<h><i>` (node side `fdp<h><i>`), addresses `10.213.<k>.0/24`
//! with the bridge on `.1` and node i on `.10+i`.

use crate::{LabError, LabState};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What `up` created, recorded in state.json before it is created.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetnsState {
    pub bridge: String,
    /// The bridge's address, e.g. `10.213.7.1`.
    pub bridge_ip: String,
    /// e.g. `10.213.7.0/24`.
    pub subnet: String,
}

/// One node's place on the bridge.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeNet {
    pub netns: String,
    /// Host side of the pair, enslaved to the bridge: the one a partition
    /// sets down.
    pub veth: String,
    /// Node side, inside the namespace.
    pub peer: String,
    pub ip: String,
}

/// FNV-1a, 64 bits: stable across runs and Rust versions.
fn hash(dir: &Path) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in dir.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The bridge and per-node names and addresses of a lab in `dir`.
pub fn plan(dir: &Path, nodes: usize) -> (NetnsState, Vec<NodeNet>) {
    let h = hash(dir);
    let hex = format!("{:06x}", h & 0xff_ffff);
    let k = (h >> 24) % 254 + 1;
    let st = NetnsState {
        bridge: format!("fdb{hex}"),
        bridge_ip: format!("10.213.{k}.1"),
        subnet: format!("10.213.{k}.0/24"),
    };
    let nets = (1..=nodes)
        .map(|i| NodeNet {
            netns: format!("fd-{hex}-{i}"),
            veth: format!("fdv{hex}{i}"),
            peer: format!("fdp{hex}{i}"),
            ip: format!("10.213.{k}.{}", 10 + i),
        })
        .collect();
    (st, nets)
}

/// The path `setns` opens for a namespace `ip netns add` made.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new("/var/run/netns").join(name)
}

fn ip(args: &[&str]) -> Result<String, LabError> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::Netns(format!("ip {}: {e}", args.join(" "))))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(LabError::Netns(format!(
            "ip {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Whether this machine can run a netns lab; the reason when it cannot.
pub fn check_support() -> Result<(), String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err("firedrill is not running as root".into());
    }
    match Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => {}
        Ok(s) => return Err(format!("`ip -V` exited with {s}")),
        Err(e) => return Err(format!("iproute2's `ip` was not found ({e})")),
    }
    let probe = format!("fd-probe-{}", std::process::id());
    ip(&["netns", "add", &probe])
        .map_err(|e| format!("a trial namespace could not be created: {e}"))?;
    ip(&["netns", "del", &probe])
        .map_err(|e| format!("a trial namespace could not be removed: {e}"))?;
    Ok(())
}

/// Checks support, before anything is created.
pub fn preflight() -> Result<(), LabError> {
    check_support().map_err(|why| {
        LabError::Netns(format!(
            "links = \"netns\" is not available here: {why}; use links = \"proxied\""
        ))
    })
}

fn link_exists(dev: &str) -> bool {
    ip(&["link", "show", "dev", dev]).is_ok()
}

/// Creates the bridge, and a namespace and veth pair per node. The names
/// are already in state.json, so a failure half way is cleaned by `remove`.
pub fn create(state: &LabState) -> Result<(), LabError> {
    let Some(net) = &state.netns else {
        return Ok(());
    };
    if link_exists(&net.bridge) {
        return Err(LabError::Netns(format!(
            "a network device named {} already exists (a lab in {} not brought down, or another lab whose directory hashes the same); remove it with `ip link del {}`",
            net.bridge,
            state.dir.display(),
            net.bridge
        )));
    }
    let cidr = |ip: &str| format!("{ip}/24");
    ip(&["link", "add", &net.bridge, "type", "bridge"])?;
    // A fixed address: by default a bridge takes the lowest address of its
    // ports, so setting a node's veth down could change it, and every other
    // node's cached neighbour entry for the bridge would go stale.
    let hex = net.bridge.trim_start_matches("fdb");
    let mac = format!("02:fd:{}:{}:{}:01", &hex[0..2], &hex[2..4], &hex[4..6]);
    ip(&["link", "set", "dev", &net.bridge, "address", &mac])?;
    ip(&["addr", "add", &cidr(&net.bridge_ip), "dev", &net.bridge])?;
    ip(&["link", "set", &net.bridge, "up"])?;
    for n in &state.nodes {
        let Some(nn) = &n.net else { continue };
        ip(&["netns", "add", &nn.netns])?;
        ip(&[
            "link", "add", &nn.veth, "type", "veth", "peer", "name", &nn.peer,
        ])?;
        ip(&["link", "set", &nn.peer, "netns", &nn.netns])?;
        ip(&["link", "set", &nn.veth, "master", &net.bridge])?;
        ip(&["link", "set", &nn.veth, "up"])?;
        ip(&[
            "-n",
            &nn.netns,
            "addr",
            "add",
            &cidr(&nn.ip),
            "dev",
            &nn.peer,
        ])?;
        ip(&["-n", &nn.netns, "link", "set", &nn.peer, "up"])?;
        ip(&["-n", &nn.netns, "link", "set", "lo", "up"])?;
    }
    Ok(())
}

/// Removes the namespaces, veths and bridge, whatever state a drill left
/// them in. Missing ones are fine; the first other failure is returned
/// after trying everything.
pub fn remove(state: &LabState) -> Result<(), LabError> {
    let mut first = None;
    let mut note = |r: Result<String, LabError>| {
        if let Err(e) = r {
            first.get_or_insert(e);
        }
    };
    for n in &state.nodes {
        let Some(nn) = &n.net else { continue };
        if netns_path(&nn.netns).exists() {
            // Deleting the namespace destroys the node side, and with it the pair.
            note(ip(&["netns", "del", &nn.netns]));
        }
        // The kernel destroys the host side shortly after the namespace,
        // so the veth may vanish between the check and the delete.
        if link_exists(&nn.veth) {
            note(ip(&["link", "del", &nn.veth]).or_else(|e| {
                if link_exists(&nn.veth) {
                    Err(e)
                } else {
                    Ok(String::new())
                }
            }));
        }
    }
    if let Some(net) = &state.netns {
        if link_exists(&net.bridge) {
            note(ip(&["link", "del", &net.bridge]).or_else(|e| {
                if link_exists(&net.bridge) {
                    Err(e)
                } else {
                    Ok(String::new())
                }
            }));
        }
    }
    match first {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Whether the host side of a veth is administratively up, as `ip` says.
pub fn link_up(dev: &str) -> Option<bool> {
    let out = ip(&["-o", "link", "show", "dev", dev]).ok()?;
    let flags = out.split('<').nth(1)?.split('>').next()?;
    Some(flags.split(',').any(|f| f == "UP"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_limits_and_are_stable() {
        let (st, nets) = plan(Path::new("/tmp/lab-a"), 9);
        let (st2, _) = plan(Path::new("/tmp/lab-a"), 9);
        assert_eq!(st.bridge, st2.bridge);
        assert_eq!(st.bridge.len(), 9);
        for n in &nets {
            assert!(n.veth.len() <= 15 && n.peer.len() <= 15, "{n:?}");
        }
        assert!(nets[0].ip.ends_with(".11"));
        assert!(st.bridge_ip.starts_with("10.213.") && st.bridge_ip.ends_with(".1"));
        let (other, _) = plan(Path::new("/tmp/lab-b"), 1);
        assert_ne!(st.bridge, other.bridge);
    }
}
