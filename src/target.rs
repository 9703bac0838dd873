//! A target: one sky position (with an id and an optional label) that a source fetches.

use serde::Serialize;

/// One position to fetch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub id: String,
    pub ra: f64,
    pub dec: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}
