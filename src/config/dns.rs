//! The `[dns]` section: typed servers, names, query types and transports,
//! and the checks serde cannot express.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::Config;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    pub enabled: bool,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Deadline of one query (a pair: of both answers).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Empty: the nameservers of `resolv_conf`.
    pub servers: Vec<DnsServer>,
    pub names: Vec<DnsName>,
    pub qtypes: Vec<DnsQtype>,
    pub transports: Vec<DnsTransport>,
    /// Over UDP, send A and AAAA back-to-back from one socket, as glibc and musl do.
    pub pair: bool,
    pub resolv_conf: PathBuf,
    pub lookups: Vec<DnsName>,
    /// Probe from inside this network namespace (`/proc/<pid>/ns/net`,
    /// `/var/run/netns/<name>`); unset = the agent's own.
    pub netns: Option<PathBuf>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            servers: Vec::new(),
            names: vec![DnsName("kubernetes.default.svc.cluster.local.".into())],
            qtypes: vec![DnsQtype::A, DnsQtype::AAAA],
            transports: vec![DnsTransport::Udp],
            pair: true,
            resolv_conf: "/etc/resolv.conf".into(),
            lookups: Vec::new(),
            netns: None,
        }
    }
}

/// A DNS server: "ip" (port 53) or "ip:port" ("[v6]:port").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DnsServer(pub SocketAddr);

impl TryFrom<String> for DnsServer {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let t = s.trim();
        if let Ok(a) = t.parse::<SocketAddr>() {
            return Ok(DnsServer(a));
        }
        t.parse::<std::net::IpAddr>()
            .map(|ip| DnsServer(SocketAddr::new(ip, 53)))
            .map_err(|_| format!("\"{s}\" is not an IP address or ip:port"))
    }
}

impl From<DnsServer> for String {
    fn from(s: DnsServer) -> String {
        s.0.to_string()
    }
}

/// A domain name as written in the config ("a.b." is absolute, "a.b" relative).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DnsName(pub String);

impl TryFrom<String> for DnsName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let t = s.trim();
        if t.is_empty() || t == "." {
            return Err("a name must not be empty".into());
        }
        hickory_proto::rr::Name::from_ascii(t)
            .map_err(|e| format!("\"{s}\" is not a valid domain name: {e}"))?;
        Ok(DnsName(t.to_owned()))
    }
}

impl From<DnsName> for String {
    fn from(n: DnsName) -> String {
        n.0
    }
}

/// The query types the prober sends.
#[allow(clippy::upper_case_acronyms)] // spelled as in DNS
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DnsQtype {
    A,
    AAAA,
    CNAME,
    MX,
    NS,
    PTR,
    SOA,
    SRV,
    TXT,
}

impl DnsQtype {
    pub fn record_type(self) -> hickory_proto::rr::RecordType {
        use hickory_proto::rr::RecordType;
        match self {
            DnsQtype::A => RecordType::A,
            DnsQtype::AAAA => RecordType::AAAA,
            DnsQtype::CNAME => RecordType::CNAME,
            DnsQtype::MX => RecordType::MX,
            DnsQtype::NS => RecordType::NS,
            DnsQtype::PTR => RecordType::PTR,
            DnsQtype::SOA => RecordType::SOA,
            DnsQtype::SRV => RecordType::SRV,
            DnsQtype::TXT => RecordType::TXT,
        }
    }

    /// The `qtype` label: the record type's mnemonic ("A", "AAAA", ...).
    pub fn as_str(self) -> &'static str {
        self.record_type().into()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsTransport {
    Udp,
    Tcp,
}

impl DnsTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            DnsTransport::Udp => "udp",
            DnsTransport::Tcp => "tcp",
        }
    }
}

impl Config {
    pub(super) fn validate_dns(&self) -> Result<(), (String, String)> {
        let d = &self.dns;
        let err = |key: &str, msg: &str| Err((format!("dns.{key}"), msg.to_owned()));
        if d.enabled && d.qtypes.is_empty() && !d.names.is_empty() {
            return err(
                "qtypes",
                "must list at least one query type when names are probed",
            );
        }
        if d.enabled && d.transports.is_empty() && !d.names.is_empty() {
            return err(
                "transports",
                "must list udp, tcp or both when names are probed",
            );
        }
        if d.netns.as_ref().is_some_and(|p| !p.is_absolute()) {
            return err("netns", "must be an absolute path");
        }
        for (key, list) in [
            ("qtypes", has_duplicates(&d.qtypes)),
            ("transports", has_duplicates(&d.transports)),
            ("servers", has_duplicates(&d.servers)),
            ("names", has_duplicates(&d.names)),
            ("lookups", has_duplicates(&d.lookups)),
        ] {
            if list {
                return err(key, "lists the same entry twice");
            }
        }
        Ok(())
    }
}

fn has_duplicates<T: PartialEq>(v: &[T]) -> bool {
    v.iter().enumerate().any(|(i, x)| v[..i].contains(x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, super::super::ConfigError> {
        Config::parse(Path::new("/etc/nv.toml"), text)
    }

    #[test]
    fn dns_keys_are_typed() {
        let c = parse(
            "[dns]\nservers = [\"10.96.0.10\", \"127.0.0.53:5353\", \"[::1]:54\"]\nqtypes = [\"A\", \"MX\"]\ntransports = [\"tcp\"]\npair = false\nlookups = [\"example.com\"]\n",
        )
        .unwrap();
        let servers: Vec<String> = c.dns.servers.iter().map(|s| s.0.to_string()).collect();
        assert_eq!(servers, ["10.96.0.10:53", "127.0.0.53:5353", "[::1]:54"]);
        assert_eq!(c.dns.qtypes, [DnsQtype::A, DnsQtype::MX]);
        assert_eq!(c.dns.transports, [DnsTransport::Tcp]);
        assert!(!c.dns.pair);
        assert_eq!(c.dns.lookups, [DnsName("example.com".into())]);
    }

    #[test]
    fn bad_dns_values_name_their_key() {
        for (text, key) in [
            ("[dns]\nservers = [\"10.0.0.300\"]\n", "dns.servers"),
            ("[dns]\nqtypes = [\"A\", \"QUUX\"]\n", "dns.qtypes"),
            ("[dns]\ntransports = [\"quic\"]\n", "dns.transports"),
            ("[dns]\nnames = [\"\"]\n", "dns.names"),
            ("[dns]\nlookups = [\"a..b\"]\n", "dns.lookups"),
            ("[dns]\nqtypes = []\n", "dns.qtypes"),
            ("[dns]\nqtypes = [\"A\", \"A\"]\n", "dns.qtypes"),
            ("[dns]\npair = \"yes\"\n", "dns.pair"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
    }
}
