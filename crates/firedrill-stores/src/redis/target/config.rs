//! Connection settings for a Redis target: addresses are `host:port`, the
//! password (requirepass) comes from the environment or a file.

use firedrill_targets::TargetError;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, IntoConnectionInfo, RedisConnectionInfo};
use std::time::Duration;
use tokio::time::timeout;

/// One node of the store, as the drill names it.
#[derive(Debug, Clone)]
pub struct RedisNode {
    pub name: String,
    /// firedrill's own path (roles, audit, heartbeat): never proxied.
    pub control: String,
    /// The workload's path to this node.
    pub client: String,
    /// What Sentinel and the replicas know this node as.
    pub announced: String,
}

/// Checks `host:port`.
pub fn parse_addr(node: &str, addr: &str) -> Result<String, TargetError> {
    let ok = addr
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
    if ok {
        Ok(addr.to_string())
    } else {
        Err(TargetError::Config {
            node: node.into(),
            msg: format!("{addr:?} is not host:port"),
        })
    }
}

/// Opens one connection (no pool) within `limit`. The library's own
/// response timeout is off: every command gets firedrill's deadline.
pub async fn connect(
    addr: &str,
    password: Option<&str>,
    limit: Duration,
) -> Result<MultiplexedConnection, String> {
    let info = format!("redis://{addr}/")
        .into_connection_info()
        .map_err(|e| e.to_string())?;
    // CLIENT SETINFO arrived in Redis 7.2; do not send it to older servers.
    let mut settings = RedisConnectionInfo::default().set_skip_set_lib_name();
    if let Some(p) = password {
        settings = settings.set_password(p);
    }
    let client =
        redis::Client::open(info.set_redis_settings(settings)).map_err(|e| e.to_string())?;
    let cfg = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(limit))
        .set_response_timeout(None);
    match timeout(
        limit,
        client.get_multiplexed_async_connection_with_config(&cfg),
    )
    .await
    {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!("{addr}: {e}")),
        Err(_) => Err(format!("{addr}: connect timed out after {limit:?}")),
    }
}

/// Runs one command within `limit`.
pub async fn query<T: redis::FromRedisValue>(
    c: &mut MultiplexedConnection,
    cmd: &redis::Cmd,
    limit: Duration,
) -> Result<T, String> {
    match timeout(limit, cmd.query_async::<T>(c)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

/// `key:value` lines of an INFO section.
pub fn info_field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert!(parse_addr("n1", "127.0.0.1:6380").is_ok());
        assert!(parse_addr("n1", "127.0.0.1").is_err());
        assert!(parse_addr("n1", ":6380").is_err());
        assert!(parse_addr("n1", "h:0").is_err());
    }

    #[test]
    fn info_fields() {
        let info =
            "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\nslave_repl_offset:42\r\n";
        assert_eq!(info_field(info, "role"), Some("slave"));
        assert_eq!(info_field(info, "slave_repl_offset"), Some("42"));
        assert_eq!(info_field(info, "master_repl_offset"), None);
    }
}
