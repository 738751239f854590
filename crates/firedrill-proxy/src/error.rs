//! The one error type of the crate. Each variant knows the HTTP status that
//! Toxiproxy 2.x answers with, so API clients written for Toxiproxy see the
//! same codes and messages from us.

use std::io;

/// Everything that can go wrong in the proxy or its API.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The request body is not valid JSON or has a field of the wrong shape.
    #[error("bad request body: {0}")]
    BadRequestBody(String),
    /// A required field (`name`, `upstream`, `type`) is absent or empty.
    #[error("missing required field: {0}")]
    MissingField(String),
    /// `stream` is neither `upstream` nor `downstream`.
    #[error("stream was invalid, can be either upstream or downstream")]
    InvalidStream,
    /// The toxic `type` is not one we implement.
    #[error("invalid toxic type")]
    InvalidToxicType,
    /// No proxy has that name.
    #[error("proxy not found")]
    ProxyNotFound,
    /// A proxy with that name exists already.
    #[error("proxy already exists")]
    ProxyAlreadyExists,
    /// No toxic with that name on the proxy.
    #[error("toxic not found")]
    ToxicNotFound,
    /// A toxic with that name exists already on the proxy.
    #[error("toxic already exists")]
    ToxicAlreadyExists,
    /// The proxy could not listen on its address. The message copies Go's
    /// `net.Listen` wording because Toxiproxy passes it through verbatim.
    #[error("listen tcp {addr}: {reason}")]
    Listen {
        /// The address we tried to listen on.
        addr: String,
        /// What failed, Go style (`bind: address already in use`).
        reason: String,
    },
    /// Any other I/O failure (for example binding the API address).
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl ProxyError {
    /// The HTTP status Toxiproxy uses for this error.
    pub fn status(&self) -> u16 {
        match self {
            ProxyError::BadRequestBody(_)
            | ProxyError::MissingField(_)
            | ProxyError::InvalidStream
            | ProxyError::InvalidToxicType => 400,
            ProxyError::ProxyNotFound | ProxyError::ToxicNotFound => 404,
            ProxyError::ProxyAlreadyExists | ProxyError::ToxicAlreadyExists => 409,
            ProxyError::Listen { .. } | ProxyError::Io(_) => 500,
        }
    }

    /// Builds a [`ProxyError::Listen`] from a failed bind, worded as Go does.
    pub(crate) fn listen(addr: &str, err: &io::Error) -> Self {
        let reason = match err.kind() {
            io::ErrorKind::AddrInUse => "bind: address already in use".to_string(),
            io::ErrorKind::AddrNotAvailable => "bind: cannot assign requested address".to_string(),
            io::ErrorKind::PermissionDenied => "bind: permission denied".to_string(),
            _ => err.to_string(),
        };
        ProxyError::Listen {
            addr: addr.to_string(),
            reason,
        }
    }
}
