//! [`ToolError`]: why a tool call failed, worded for the model that made the call.
//!
//! Rules: every message says what was wrong and, where there is one, what to do next
//! ("call todo_list to see ids"). Messages never echo large input values.

/// Why a tool call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// No tool has this name.
    #[error("unknown tool `{0}`")]
    UnknownTool(String),
    /// The tool is destructive; `Registry::call` never runs it.
    #[error(
        "tool `{0}` is destructive and cannot be called here; describe the change to the user instead"
    )]
    NotCallable(String),
    /// The arguments do not match the tool's input schema or its rules.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A record the call names does not exist (or is deleted).
    #[error("{0}")]
    NotFound(String),
    /// The record store failed.
    #[error("store error: {0}")]
    Store(String),
}

impl ToolError {
    /// A stable snake_case code for logs, metrics and `ActionRow`s.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownTool(_) => "unknown_tool",
            Self::NotCallable(_) => "not_callable",
            Self::InvalidInput(_) => "invalid_input",
            Self::NotFound(_) => "not_found",
            Self::Store(_) => "store_error",
        }
    }
}
