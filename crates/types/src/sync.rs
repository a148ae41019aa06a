//! The record store's wire shapes: sync push/pull.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a change does to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    Insert,
    Update,
    Delete,
}

impl ChangeOp {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Insert => "insert",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "insert" => Some(Self::Insert),
            "update" => Some(Self::Update),
            "delete" => Some(Self::Delete),
            _ => None,
        }
    }
}

/// One change a client pushes. Field stamps are hybrid-logical-clock stamps
/// (see `auth_internal::lww::Stamp` for the format); fields without one are
/// stamped by the server on receipt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PushChange {
    pub app_id: String,
    pub table: String,
    pub record_id: String,
    pub op: ChangeOp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // utoipa does not know `serde_json::Map`: document it as a free-form object.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub data: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_stamps: Option<BTreeMap<String, String>>,
    /// Stamp of the change as a whole: used for fields without their own stamp
    /// and for the insert/delete marker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PushRequest {
    pub client_id: String,
    pub changes: Vec<PushChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PushResponse {
    /// Cursor of the last change this push appended (pass it to pull to skip them).
    pub cursor: String,
    pub applied: u32,
    /// Stamps that lay too far in the future and were clamped to the server's clock.
    pub clamped: u32,
}

/// One change in the log, as pull returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PulledChange {
    pub cursor: String,
    pub app_id: String,
    pub table: String,
    pub record_id: String,
    pub op: ChangeOp,
    // utoipa does not know `serde_json::Map`: document it as a free-form object.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub data: Option<serde_json::Map<String, serde_json::Value>>,
    pub field_stamps: BTreeMap<String, String>,
    pub client_id: String,
    pub origin: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PullResponse {
    pub changes: Vec<PulledChange>,
    /// Pass as `since` for the next page; equal to `since` when nothing new.
    pub cursor: String,
    pub has_more: bool,
}
