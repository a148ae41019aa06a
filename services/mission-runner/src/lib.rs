//! mission-runner: plans users' AI missions when they are due.
//!
//! One tick ([`tick::MissionTick`]): claim due missions from auth-internal
//! ([`client::InternalClient`]) → for each, with bounded concurrency and a per-mission
//! deadline: budget check, planner prompt ([`prompt`]), LLM, tolerant parse and strict
//! validation against the tool registry ([`plan`]), a [`types::missions::MissionIteration`]
//! ([`planner`]) → write it back (or release the lease) → a
//! [`types::tick::MissionTickReport`].
//!
//! Rules every module keeps:
//! - Nothing a model proposes is executed here: every step is a proposal the user
//!   approves or rejects in auth-internal, and every step is re-validated against
//!   [`tools::Registry`] (tool exists, is proposable, offered to this mission, params valid
//!   against its JSON schema) before it is written.
//! - An iteration's id is derived from the mission and the slot it was planned for, so a
//!   retried write-back (or a re-plan of the same slot after a lost lease) lands once.
//! - One mission's failure never stops the others; no input makes this crate panic.

pub mod client;
pub mod plan;
pub mod planner;
pub mod prompt;
pub mod settings;
pub mod startup;
pub mod text;
pub mod tick;

pub use client::{ClientError, ClientRetry, InternalClient};
pub use planner::{PlanOutcome, Planner};
pub use settings::{
    MissionSettings, PlanModeSetting, PlannerSettings, SettingsError, TickSettings,
};
pub use startup::{Application, Settings, StartupError};
pub use tick::{MissionTick, StopLevel, StopSignal};
