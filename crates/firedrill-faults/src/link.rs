//! Kernel-level partitions of a `links = "netns"` lab: the host side of a
//! node's veth pair set down (partition) or up (heal) with iproute2. The
//! change is in effect when `ip` returns.

use crate::FaultError;
use std::process::{Command, Stdio};

/// `ip link set dev <dev> up|down`.
pub fn set_link(dev: &str, up: bool) -> Result<(), FaultError> {
    let state = if up { "up" } else { "down" };
    let out = Command::new("ip")
        .args(["link", "set", "dev", dev, state])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| FaultError::NotInEffect(format!("ip link set dev {dev} {state}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(FaultError::NotInEffect(format!(
            "ip link set dev {dev} {state} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
