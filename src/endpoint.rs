//! Runtime endpoints: `unix:///path` or a bare absolute path, nothing else.

use std::path::PathBuf;

/// An endpoint the agent cannot speak to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("\"{0}\": only unix:// endpoints are supported (the agent probes the local runtime)")]
    Scheme(String),
    #[error("\"{0}\": expected unix:///absolute/path or an absolute socket path")]
    NotAbsolute(String),
}

/// The socket path of a runtime endpoint, or why it is not one we can speak to.
pub fn socket_path(endpoint: &str) -> Result<PathBuf, EndpointError> {
    let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    if path.starts_with('/') {
        Ok(PathBuf::from(path))
    } else if endpoint.contains("://") {
        Err(EndpointError::Scheme(endpoint.to_owned()))
    } else {
        Err(EndpointError::NotAbsolute(endpoint.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_unix_url_and_absolute_path() {
        assert_eq!(
            socket_path("unix:///run/docker.sock").unwrap(),
            PathBuf::from("/run/docker.sock")
        );
        assert_eq!(
            socket_path("/run/docker.sock").unwrap(),
            PathBuf::from("/run/docker.sock")
        );
    }

    #[test]
    fn rejects_other_schemes_and_relative_paths() {
        let scheme = |e: &str| EndpointError::Scheme(e.to_owned());
        assert_eq!(
            socket_path("tcp://127.0.0.1:2375"),
            Err(scheme("tcp://127.0.0.1:2375"))
        );
        assert_eq!(
            socket_path("npipe:////./pipe/docker"),
            Err(scheme("npipe:////./pipe/docker"))
        );
        assert!(socket_path("unix://relative.sock").is_err());
        let e = socket_path("docker.sock").unwrap_err();
        assert_eq!(e, EndpointError::NotAbsolute("docker.sock".into()));
        assert!(e.to_string().contains("absolute socket path"), "{e}");
    }
}
