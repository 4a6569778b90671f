//! nodevitals: a node-level health agent for Kubernetes nodes and bare container
//! hosts. See README.md for the contract; `main.rs` is only the command line.

pub mod agent;
pub(crate) mod body;
pub mod config;
pub(crate) mod config_status;
pub mod endpoint;
pub(crate) mod gzip;
pub mod health;
pub(crate) mod ignored_signals;
pub mod kubernetes;
pub mod memory;
pub mod metrics;
pub(crate) mod notify;
pub mod once;
pub mod page;
pub mod probe;
pub mod remediation;
pub mod runtime;
pub mod scheduler;
pub mod server;
pub mod status;
pub mod vocabulary;
