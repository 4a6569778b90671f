//! Runtime endpoints: `unix:///path` or a bare absolute path, nothing else.

use std::path::PathBuf;

/// The socket path of a runtime endpoint, or why it is not one we can speak to.
pub fn socket_path(endpoint: &str) -> Result<PathBuf, String> {
    let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    if path.starts_with('/') {
        Ok(PathBuf::from(path))
    } else if endpoint.contains("://") {
        Err(format!(
            "\"{endpoint}\": only unix:// endpoints are supported (the agent probes the local runtime)"
        ))
    } else {
        Err(format!(
            "\"{endpoint}\": expected unix:///absolute/path or an absolute socket path"
        ))
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
        assert!(socket_path("tcp://127.0.0.1:2375").is_err());
        assert!(socket_path("npipe:////./pipe/docker").is_err());
        assert!(socket_path("docker.sock").is_err());
        assert!(socket_path("unix://relative.sock").is_err());
    }
}
