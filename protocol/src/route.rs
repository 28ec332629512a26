//! Which profile an event belongs to.

use crate::event::Event;

/// The name of the profile an event is stored in: its `userId` when it has one, else its
/// `anonymousId`.
///
/// This is the walking skeleton's rule; identity resolution (merging an anonymous
/// visitor into the user who logs in) replaces it with a lookup in the identity index.
pub fn profile_key(event: &Event) -> String {
    match (&event.user_id, &event.anonymous_id) {
        (Some(user), _) => identifier_key("userId", user),
        (None, Some(anon)) => identifier_key("anonymousId", anon),
        // Validation guarantees one of the two; keep a total function all the same.
        (None, None) => identifier_key("messageId", &event.message_id),
    }
}

/// The name under which an identifier of a given kind is addressed, e.g. `anonymousId:abc`.
pub fn identifier_key(kind: &str, value: &str) -> String {
    format!("{kind}:{value}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    fn event(anon: Option<&str>, user: Option<&str>) -> Event {
        Event {
            kind: EventType::Page,
            message_id: "m".into(),
            anonymous_id: anon.map(Into::into),
            user_id: user.map(Into::into),
            name: None,
            timestamp: 0,
            received_at: 0,
            body: Default::default(),
        }
    }

    #[test]
    fn user_id_wins_over_anonymous_id() {
        assert_eq!(profile_key(&event(Some("a"), Some("u"))), "userId:u");
        assert_eq!(profile_key(&event(Some("a"), None)), "anonymousId:a");
    }
}
