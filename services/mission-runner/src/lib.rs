//! mission-runner: plans users' AI missions when they are due.
//!
//! Layout (the same rooms as persona-runner): [`config`] (settings), [`api`] (the mission
//! calls of auth-internal over runner-kit's client), [`prompts`] (the planner prompt),
//! [`parse`] (the model's answer → validated steps, on either path), [`plan`] (one
//! mission's plan: budget, prompt, LLM, iteration), [`tick`] (claim → stream of plans →
//! write-back → report; runner-kit's `Tick`), [`startup`] (the service, built on
//! `runner-kit`), [`otel`] (each mission's planning is one trace).
//!
//! Rules every module keeps:
//! - Nothing a model proposes is executed here: every step is a proposal the user
//!   approves or rejects in auth-internal, and every step is re-validated against
//!   [`tools::Registry`] (tool exists, is proposable, offered to this mission, params valid
//!   against its JSON schema) before it is written.
//! - An iteration's id is derived from the mission and the slot it was planned for, so a
//!   retried write-back (or a re-plan of the same slot after a lost lease) lands once.
//! - One mission's failure never stops the others; no input makes this crate panic.

pub mod api;
pub mod config;
pub mod otel;
pub mod parse;
pub mod plan;
pub mod prompts;
pub mod startup;
pub mod tick;

pub use api::MissionApi;
pub use config::{MissionSettings, PlanModeSetting, PlannerSettings, Settings, TickSettings};
pub use plan::{PlanOutcome, Planner};
pub use startup::{Application, StartupError};
pub use tick::{MissionTick, TickOutcome};
