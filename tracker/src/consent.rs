//! Whether the tracker may collect: the site's consent policy, the visitor's choice and the
//! browser's privacy signals, decided in one place.

/// What a site asks of the tracker (from its configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Nothing is stored or sent until the visitor grants `category`.
    pub required: bool,
    /// The consent category analytics events need (default `analytics`).
    pub category: String,
    /// Global Privacy Control stops collection (default on; a site may turn it off).
    pub honor_gpc: bool,
    /// Do Not Track stops collection (default off; a site may turn it on).
    pub honor_dnt: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            required: false,
            category: "analytics".into(),
            honor_gpc: true,
            honor_dnt: false,
        }
    }
}

/// What the tracker does with an event now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Store and send.
    Collect,
    /// Keep in memory only, until the visitor decides.
    Hold,
    /// Store nothing, send nothing.
    Refuse,
}

/// Decides, given the visitor's choice for the policy's category (`None`: not asked yet)
/// and the browser's signals.
pub fn decide(policy: &Policy, choice: Option<bool>, gpc: bool, dnt: bool) -> Decision {
    if (policy.honor_gpc && gpc) || (policy.honor_dnt && dnt) {
        return Decision::Refuse;
    }
    match choice {
        Some(true) => Decision::Collect,
        Some(false) => Decision::Refuse,
        None if policy.required => Decision::Hold,
        None => Decision::Collect,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::*;

    #[test]
    fn decides_table() {
        let open = Policy::default();
        let required = Policy {
            required: true,
            ..Policy::default()
        };
        let no_gpc = Policy {
            honor_gpc: false,
            ..Policy::default()
        };
        let dnt = Policy {
            honor_dnt: true,
            ..Policy::default()
        };
        let cases = [
            (&open, None, false, false, Collect),
            (&open, Some(false), false, false, Refuse),
            (&required, None, false, false, Hold),
            (&required, Some(true), false, false, Collect),
            (&required, Some(false), false, false, Refuse),
            (&open, None, true, false, Refuse),
            (&open, Some(true), true, false, Refuse),
            (&no_gpc, None, true, false, Collect),
            (&open, None, false, true, Collect),
            (&dnt, None, false, true, Refuse),
        ];
        for (i, (policy, choice, gpc, dnt_signal, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                decide(policy, choice, gpc, dnt_signal),
                expected,
                "case {i}"
            );
        }
    }
}
