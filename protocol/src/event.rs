//! The validated event: what the collector accepts and the profile store keeps.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::time::Millis;

/// The Segment Spec call types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// A user action, named by `event`.
    Track,
    /// A web page view.
    Page,
    /// A mobile screen view.
    Screen,
    /// Who the user is, with traits.
    Identify,
    /// A group (account, company) the user belongs to.
    Group,
    /// Links a previous identity to a new one.
    Alias,
}

impl EventType {
    /// Reads the `type` field of the wire format.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "track" => Self::Track,
            "page" => Self::Page,
            "screen" => Self::Screen,
            "identify" => Self::Identify,
            "group" => Self::Group,
            "alias" => Self::Alias,
            _ => return None,
        })
    }

    /// The name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Track => "track",
            Self::Page => "page",
            Self::Screen => "screen",
            Self::Identify => "identify",
            Self::Group => "group",
            Self::Alias => "alias",
        }
    }
}

/// An event that passed validation, with the fields the pipeline routes on pulled out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// The call type.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Unique per event, kept across retries: the idempotency key.
    pub message_id: String,
    /// The device-scoped id the tracker keeps in first-party storage.
    pub anonymous_id: Option<String>,
    /// The site's own id for a known user.
    pub user_id: Option<String>,
    /// `event` of a track call, `name` of a page or screen call.
    pub name: Option<String>,
    /// When the event happened, as the client says (or when it was received).
    pub timestamp: Millis,
    /// When the collector received it.
    pub received_at: Millis,
    /// The whole normalised payload, as stored and as returned by the admin API.
    pub body: Map<String, Value>,
}
