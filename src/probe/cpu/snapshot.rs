//! The latest CPU picture of the node, as `/metrics` and `/status` show it:
//! one [`ContainerSample`] per live container cgroup with its identity and its
//! throttled ratio over the last interval. Replaced whole after every scan, so
//! a container that is gone is simply absent from the next scrape.
//! It is the [`CpuSeries`] from which `metrics/cpu.rs` emits every
//! `nodevitals_container_cpu_*` and `nodevitals_node_cpu_pressure_seconds_total`
//! series.

use super::identity::Identity;
use super::pressure::Pressure;
use super::scan::Reading;
use crate::metrics::{ContainerName, ContainerValues, CpuSeries, PressureTotals, ThrottleCounts};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct ContainerSample {
    pub reading: Reading,
    pub identity: Arc<Identity>,
    /// throttled periods / periods since the previous scan; `None` on the
    /// first sight of a cgroup or after its counters went backwards.
    pub throttled_ratio: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct CpuSnapshot {
    pub containers: Vec<ContainerSample>,
    pub node_pressure: Option<Pressure>,
}

/// The counters of the previous scan, by cgroup path, for per-interval ratios.
#[derive(Debug, Default)]
pub struct History {
    previous: HashMap<String, (u64, u64)>,
}

impl History {
    /// Ratio of throttled periods over the periods since the last call for the
    /// same cgroup, and remembers the new counters. An interval without any
    /// period (an idle cgroup) was not throttled: 0.
    fn ratio(&self, r: &Reading) -> Option<f64> {
        let t = r.throttling?;
        let &(periods, throttled) = self.previous.get(&r.rel)?;
        let dp = t.periods.checked_sub(periods)?;
        let dt = t.throttled_periods.checked_sub(throttled)?;
        if dp == 0 {
            return Some(0.0);
        }
        Some((dt as f64 / dp as f64).min(1.0))
    }

    /// Builds the snapshot of a scan. Two live containers with the same
    /// Kubernetes name (a restart whose old cgroup lingers) would make two
    /// identical series; the newer container is reported.
    pub fn snapshot(
        &mut self,
        readings: Vec<Reading>,
        node_pressure: Option<Pressure>,
        identity: impl Fn(&str) -> Arc<Identity>,
    ) -> CpuSnapshot {
        let mut containers: Vec<ContainerSample> = Vec::with_capacity(readings.len());
        let mut by_name: HashMap<&super::identity::KubeRef, usize> = HashMap::new();
        let mut drop = Vec::new();
        let mut next = HashMap::with_capacity(readings.len());
        for reading in readings {
            let throttled_ratio = self.ratio(&reading);
            if let Some(t) = reading.throttling {
                next.insert(reading.rel.clone(), (t.periods, t.throttled_periods));
            }
            containers.push(ContainerSample {
                identity: identity(&reading.id),
                reading,
                throttled_ratio,
            });
        }
        self.previous = next;
        for (i, c) in containers.iter().enumerate() {
            let Some(k) = &c.identity.kubernetes else {
                continue;
            };
            match by_name.insert(k, i) {
                Some(j) if containers[j].identity.created > c.identity.created => {
                    by_name.insert(k, j);
                    drop.push(i);
                }
                Some(j) => drop.push(j),
                None => {}
            }
        }
        drop.sort_unstable();
        for i in drop.into_iter().rev() {
            containers.swap_remove(i);
        }
        CpuSnapshot {
            containers,
            node_pressure,
        }
    }
}

impl From<Pressure> for PressureTotals {
    fn from(p: Pressure) -> Self {
        PressureTotals {
            some_us: p.some_us,
            full_us: p.full_us,
        }
    }
}

impl ContainerSample {
    fn values(&self) -> ContainerValues<'_> {
        let r = &self.reading;
        let name = match &self.identity.kubernetes {
            Some(k) => ContainerName::Kubernetes {
                namespace: &k.namespace,
                pod: &k.pod,
                container: &k.container,
            },
            None => ContainerName::Runtime {
                id: &r.id,
                name: self.identity.name.as_deref(),
            },
        };
        ContainerValues {
            name,
            throttling: r.throttling.map(|t| ThrottleCounts {
                periods: t.periods,
                throttled_periods: t.throttled_periods,
                throttled_ns: t.throttled_ns,
            }),
            usage_ns: r.usage_ns,
            limit_cores: r.limit.and_then(|l| l.cores()),
            throttled_ratio: self.throttled_ratio,
            pressure: r.pressure.map(PressureTotals::from),
        }
    }
}

impl CpuSeries for CpuSnapshot {
    fn container_count(&self) -> usize {
        self.containers.len()
    }

    fn containers(&self) -> Vec<ContainerValues<'_>> {
        self.containers
            .iter()
            .map(ContainerSample::values)
            .collect()
    }

    fn node_pressure(&self) -> Option<PressureTotals> {
        self.node_pressure.map(PressureTotals::from)
    }
}

impl CpuSnapshot {
    /// The `/status` section: the `n` containers most throttled over the last
    /// interval, most throttled first.
    pub fn status(&self, n: usize) -> serde_json::Value {
        let mut ranked: Vec<&ContainerSample> = self
            .containers
            .iter()
            .filter(|c| c.throttled_ratio.is_some_and(|r| r > 0.0))
            .collect();
        ranked.sort_by(|a, b| {
            b.throttled_ratio
                .partial_cmp(&a.throttled_ratio)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let top: Vec<serde_json::Value> = ranked
            .iter()
            .take(n)
            .map(|c| {
                let r = &c.reading;
                let t = r.throttling.unwrap_or_default();
                let mut v = serde_json::json!({
                    "id": r.id,
                    "cgroup": r.rel,
                    "throttled_ratio": c.throttled_ratio,
                    "periods": t.periods,
                    "throttled_periods": t.throttled_periods,
                    "throttled_seconds": t.throttled_ns as f64 / 1e9,
                    "limit_cores": r.limit.and_then(|l| l.cores()),
                });
                if let Some(k) = &c.identity.kubernetes {
                    v["namespace"] = k.namespace.clone().into();
                    v["pod"] = k.pod.clone().into();
                    v["container"] = k.container.clone().into();
                } else if let Some(name) = &c.identity.name {
                    v["name"] = name.clone().into();
                }
                v
            })
            .collect();
        serde_json::json!({
            "containers": self.containers.len(),
            "throttled": ranked.len(),
            "top_throttled": top,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::cpu::identity::KubeRef;
    use crate::probe::cpu::Throttling;

    fn reading(rel: &str, periods: u64, throttled: u64) -> Reading {
        Reading {
            id: rel.to_owned(),
            rel: rel.to_owned(),
            throttling: Some(Throttling {
                periods,
                throttled_periods: throttled,
                ..Default::default()
            }),
            usage_ns: None,
            limit: None,
            pressure: None,
        }
    }

    fn anonymous(_: &str) -> Arc<Identity> {
        Arc::new(Identity::default())
    }

    #[test]
    fn ratio_is_per_interval() {
        let mut h = History::default();
        let s = h.snapshot(vec![reading("a", 100, 90)], None, anonymous);
        assert_eq!(s.containers[0].throttled_ratio, None, "first sight");
        // 50 more periods, 10 more throttled: 0.2, not the lifetime 100/150.
        let s = h.snapshot(vec![reading("a", 150, 100)], None, anonymous);
        assert_eq!(s.containers[0].throttled_ratio, Some(0.2));
        let s = h.snapshot(vec![reading("a", 150, 100)], None, anonymous);
        assert_eq!(s.containers[0].throttled_ratio, Some(0.0), "idle");
        // Counters went backwards: a new cgroup at the same path.
        let s = h.snapshot(vec![reading("a", 3, 1)], None, anonymous);
        assert_eq!(s.containers[0].throttled_ratio, None);
        // Gone, then back: no stale baseline.
        h.snapshot(Vec::new(), None, anonymous);
        let s = h.snapshot(vec![reading("a", 10, 1)], None, anonymous);
        assert_eq!(s.containers[0].throttled_ratio, None);
    }

    #[test]
    fn same_kubernetes_name_reports_the_newer_container() {
        let who = |id: &str| {
            Arc::new(Identity {
                kubernetes: Some(KubeRef {
                    namespace: "ns".into(),
                    pod: "p".into(),
                    container: "c".into(),
                }),
                name: None,
                created: if id == "new" { 20 } else { 10 },
            })
        };
        let mut h = History::default();
        for order in [["old", "new"], ["new", "old"]] {
            let readings = order.iter().map(|r| reading(r, 1, 0)).collect();
            let s = h.snapshot(readings, None, who);
            assert_eq!(s.containers.len(), 1);
            assert_eq!(s.containers[0].reading.id, "new");
        }
    }

    #[test]
    fn status_ranks_the_most_throttled_first() {
        let mut h = History::default();
        h.snapshot(
            vec![reading("a", 0, 0), reading("b", 0, 0), reading("c", 0, 0)],
            None,
            anonymous,
        );
        let s = h.snapshot(
            vec![
                reading("a", 10, 2),
                reading("b", 10, 9),
                reading("c", 10, 0),
            ],
            None,
            anonymous,
        );
        let j = s.status(1);
        assert_eq!(j["throttled"], 2);
        assert_eq!(j["top_throttled"].as_array().unwrap().len(), 1);
        assert_eq!(j["top_throttled"][0]["id"], "b");
    }
}
