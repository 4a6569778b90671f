//! The few calls of systemd's D-Bus API (`org.freedesktop.systemd1`) the
//! `systemd` restarter makes: `LoadUnit`, `KillUnit`, `RestartUnit`, and the
//! unit's `LoadState`, `ActiveState`, `ActiveEnterTimestampMonotonic`,
//! `Restart`, `NRestarts` and `MainPID`. Spoken over the system bus socket
//! (`DBUS_SYSTEM_BUS_ADDRESS`, default `/run/dbus/system_bus_socket`), so no
//! `systemctl` binary is needed: a DaemonSet only mounts that socket.
//! Callers bound every call with a deadline. Metrics: none.

use std::collections::HashMap;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

const DESTINATION: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT: &str = "org.freedesktop.systemd1.Unit";
const SERVICE: &str = "org.freedesktop.systemd1.Service";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";

#[derive(Debug, thiserror::Error)]
pub(crate) enum BusError {
    #[error("cannot reach systemd on the system bus (is /run/dbus/system_bus_socket there, or mounted into the container?): {0}")]
    Connect(Box<zbus::Error>),
    #[error("systemd {call}({unit}): {source}")]
    Call {
        call: &'static str,
        unit: String,
        source: Box<zbus::Error>,
    },
    #[error("systemd unit {unit} is {load_state}: set runtime.restart.unit")]
    NotLoaded { unit: String, load_state: String },
    #[error("systemd unit {unit}: property {property} missing or not a {expected}")]
    Property {
        unit: String,
        property: &'static str,
        expected: &'static str,
    },
}

/// What the restarter needs to know of a unit, read in one pair of calls.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct UnitState {
    pub load_state: String,
    pub active_state: String,
    /// `CLOCK_MONOTONIC` µs when the unit last became active; 0 = never.
    pub active_enter_monotonic_us: u64,
    /// The `Restart=` policy; empty for units that are not services.
    pub restart: String,
    pub n_restarts: u32,
    /// 0 when the unit has no main process.
    pub main_pid: u32,
}

/// A connection to systemd on the system bus.
pub(crate) struct Systemd {
    conn: zbus::Connection,
}

impl Systemd {
    pub(crate) async fn connect() -> Result<Self, BusError> {
        let conn = zbus::Connection::system()
            .await
            .map_err(|e| BusError::Connect(Box::new(e)))?;
        Ok(Self { conn })
    }

    async fn manager<B>(
        &self,
        call: &'static str,
        unit: &str,
        body: &B,
    ) -> Result<zbus::Message, BusError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        self.conn
            .call_method(Some(DESTINATION), MANAGER_PATH, Some(MANAGER), call, body)
            .await
            .map_err(|source| BusError::Call {
                call,
                unit: unit.to_owned(),
                source: Box::new(source),
            })
    }

    /// The unit's state; `LoadState` "not-found" for a unit systemd does not know.
    pub(crate) async fn unit(&self, unit: &str) -> Result<UnitState, BusError> {
        let path: OwnedObjectPath = self
            .manager("LoadUnit", unit, &(unit,))
            .await?
            .body()
            .deserialize()
            .map_err(|source| BusError::Call {
                call: "LoadUnit",
                unit: unit.to_owned(),
                source: Box::new(source),
            })?;
        let common = self.properties(unit, &path, UNIT).await?;
        let mut state = UnitState {
            load_state: string(&common, unit, "LoadState")?,
            active_state: string(&common, unit, "ActiveState")?,
            active_enter_monotonic_us: number(&common, unit, "ActiveEnterTimestampMonotonic")?,
            ..UnitState::default()
        };
        if unit.ends_with(".service") && state.load_state == "loaded" {
            let service = self.properties(unit, &path, SERVICE).await?;
            state.restart = string(&service, unit, "Restart")?;
            state.n_restarts = number(&service, unit, "NRestarts")?;
            state.main_pid = number(&service, unit, "MainPID")?;
        }
        Ok(state)
    }

    async fn properties(
        &self,
        unit: &str,
        path: &OwnedObjectPath,
        interface: &str,
    ) -> Result<HashMap<String, OwnedValue>, BusError> {
        let call_error = |source| BusError::Call {
            call: "GetAll",
            unit: unit.to_owned(),
            source: Box::new(source),
        };
        self.conn
            .call_method(
                Some(DESTINATION),
                path,
                Some(PROPERTIES),
                "GetAll",
                &(interface,),
            )
            .await
            .map_err(call_error)?
            .body()
            .deserialize()
            .map_err(call_error)
    }

    /// `KillUnit(unit, "main", signal)`: only the main process, never the
    /// unit's other processes (shims, containers).
    pub(crate) async fn kill_main(&self, unit: &str, signal: i32) -> Result<(), BusError> {
        self.manager("KillUnit", unit, &(unit, "main", signal))
            .await?;
        Ok(())
    }

    /// `RestartUnit(unit, "replace")`; returns once systemd queued the job.
    pub(crate) async fn restart(&self, unit: &str) -> Result<(), BusError> {
        self.manager("RestartUnit", unit, &(unit, "replace"))
            .await?;
        Ok(())
    }
}

fn property<'a, T>(
    props: &'a HashMap<String, OwnedValue>,
    unit: &str,
    name: &'static str,
    expected: &'static str,
) -> Result<T, BusError>
where
    T: TryFrom<&'a OwnedValue>,
{
    props
        .get(name)
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| BusError::Property {
            unit: unit.to_owned(),
            property: name,
            expected,
        })
}

fn string(
    props: &HashMap<String, OwnedValue>,
    unit: &str,
    name: &'static str,
) -> Result<String, BusError> {
    property::<&str>(props, unit, name, "string").map(str::to_owned)
}

fn number<T>(
    props: &HashMap<String, OwnedValue>,
    unit: &str,
    name: &'static str,
) -> Result<T, BusError>
where
    T: for<'a> TryFrom<&'a OwnedValue>,
{
    property(props, unit, name, "number")
}
