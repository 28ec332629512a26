//! The HTTP API's surface in one table: every route, the method it takes and who may
//! call it. The Worker dispatches on what [`resolve`] finds, checks the declared
//! authentication once, and derives `405`'s `Allow` and the CORS rules of a preflight
//! from the same rows, so a new route cannot forget any of them.

use crate::decode::Endpoint;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// An admin token (`Authorization: Bearer …`, role admin), checked before the handler
    /// runs: everything that changes or exports data.
    Admin,
    /// An admin or viewer token: reading profiles, audiences, reports and settings.
    Read,
    /// A source's write key, which the handler reads (from a header, the body or the
    /// path) and refuses when no source has it. Pages call these routes, so their CORS
    /// follows the sources.
    WriteKey,
    /// The admin token, or the write key of the source the resource belongs to; the
    /// handler decides.
    AdminOrWriteKey,
    /// Anyone: answers that hold nothing about a person.
    Public,
}

/// Which report a `GET /v1/reports/{name}` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportName {
    /// Events, profiles, visits and the pipeline's counters.
    Overview,
    /// Conversion through ordered steps.
    Funnel,
    /// Carts started, ordered and abandoned.
    Carts,
    /// Revenue, orders and average order value.
    Revenue,
    /// Visits, orders and revenue by campaign and referrer.
    Campaigns,
    /// Top products and categories.
    Products,
    /// The event names seen (the event schema).
    Events,
}

/// Which view of one profile a `GET /v1/profiles/{id}…` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileView {
    /// `/v1/profiles/{id}`: the profile.
    Profile,
    /// `/v1/profiles/{id}/explain`: why its identifiers belong together.
    Explain,
    /// `/v1/profiles/{id}/events`: its timeline.
    Events,
    /// `/v1/profiles/{id}/export`: everything held, audited.
    Export,
}

/// A route of the API, with what its path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `POST` to a collector path (`/v1/batch`, `/v1/track`, `/v1/t`, …).
    Collect,
    /// `POST /v1/m`: analytics.js's metrics about itself.
    SegmentMetrics,
    /// `GET /v1/projects/{writeKey}/settings`: what a Segment client loads first.
    SegmentSettings { write_key: String },
    /// `GET /v1/profiles/lookup?…`: the profile holding an identifier.
    ProfileLookup,
    /// `GET /v1/profiles?where=…`: profile search.
    ProfileSearch,
    /// `GET /v1/profiles/{id}` and its sub-views.
    Profile { id: String, view: ProfileView },
    /// `DELETE /v1/profiles/{id}`: erasure.
    ProfileErase { id: String },
    /// `POST /v1/profiles/{id}/unmerge`.
    ProfileUnmerge { id: String },
    /// `GET /v1/stats`: the pipeline's counters.
    Stats,
    /// `GET /v1/reports/{name}`: a report over a time range.
    Report { name: ReportName },
    /// `GET /v1/import/{job}`: an offline import's progress.
    ImportProgress { job: String },
    /// `GET /v1/audit`: exports and erasures.
    Audit,
    /// `POST /v1/admin/replay`: re-ingest archived hours.
    Replay,
    /// `POST /v1/admin/faults`: fault injection for tests (local development only).
    Faults,
    /// `GET /v1/admin/dead-letters`.
    DeadLetters,
    /// `POST /v1/admin/dead-letters/replay`.
    DeadLetterReplay,
    /// `GET /v1/audiences`.
    Audiences,
    /// `POST /v1/audiences`.
    AudienceCreate,
    /// `POST /v1/audiences/preview`: size and sample of an unsaved definition.
    AudiencePreview,
    /// `GET /v1/audiences/{key}`.
    Audience { key: String },
    /// `PUT /v1/audiences/{key}`.
    AudienceUpdate { key: String },
    /// `DELETE /v1/audiences/{key}`.
    AudienceDelete { key: String },
    /// `GET /v1/audiences/{key}/members`.
    AudienceMembers { key: String },
    /// `GET /v1/audiences/{key}/sizes`: its size over time.
    AudienceSizes { key: String },
    /// `GET /v1/segment-groups`.
    SegmentGroups,
    /// `POST /v1/segment-groups`.
    SegmentGroupCreate,
    /// `GET /v1/segment-groups/{key}`.
    SegmentGroup { key: String },
    /// `GET /v1/personalize`: a visitor's own audiences, for pages.
    Personalize,
    /// `GET /v1/destinations`.
    Destinations,
    /// `POST /v1/destinations`.
    DestinationCreate,
    /// `GET /v1/destinations/{key}`.
    Destination { key: String },
    /// `PUT /v1/destinations/{key}`.
    DestinationUpdate { key: String },
    /// `DELETE /v1/destinations/{key}`.
    DestinationDelete { key: String },
    /// `GET /v1/destinations/{key}/deliveries`: the delivery log.
    DestinationDeliveries { key: String },
    /// `POST /v1/destinations/{key}/test`: one signed sample.
    DestinationTest { key: String },
    /// `POST /v1/destinations/{key}/replay`: the dead deliveries again.
    DestinationReplay { key: String },
    /// `GET /v1/exports`.
    Exports,
    /// `POST /v1/exports`.
    ExportCreate,
    /// `GET /v1/exports/{key}`.
    Export { key: String },
    /// `PUT /v1/exports/{key}`.
    ExportUpdate { key: String },
    /// `DELETE /v1/exports/{key}`.
    ExportDelete { key: String },
    /// `POST /v1/exports/{key}/run`: a run now.
    ExportRun { key: String },
    /// `GET /v1/exports/{key}/runs`.
    ExportRuns { key: String },
    /// `GET /v1/catalog/kinds`: the catalog's kinds, their settings and item counts.
    CatalogKinds,
    /// `PUT /v1/catalog/kinds/{kind}`: declare a kind or change its settings.
    CatalogKindPut { kind: String },
    /// `GET /v1/catalog/feeds`.
    CatalogFeeds,
    /// `POST /v1/catalog/feeds`.
    CatalogFeedCreate,
    /// `GET /v1/catalog/feeds/{key}`.
    CatalogFeed { key: String },
    /// `PUT /v1/catalog/feeds/{key}`.
    CatalogFeedUpdate { key: String },
    /// `DELETE /v1/catalog/feeds/{key}`.
    CatalogFeedDelete { key: String },
    /// `POST /v1/catalog/feeds/{key}/run`: pull now.
    CatalogFeedRun { key: String },
    /// `GET /v1/catalog/feeds/{key}/runs`: the pulls' log.
    CatalogFeedRuns { key: String },
    /// `GET /v1/catalog/uploads/{job}`: an upload's progress.
    CatalogUpload { job: String },
    /// `PUT /v1/catalog/{kind}`: a file of items.
    CatalogPut { kind: String },
    /// `GET /v1/catalog/{kind}?cursor=`: a page of items.
    CatalogItems { kind: String },
    /// `GET /v1/catalog/{kind}/{id}`.
    CatalogItem { kind: String, id: String },
    /// `DELETE /v1/catalog/{kind}/{id}`.
    CatalogItemDelete { kind: String, id: String },
    /// `GET /v1/exports/{key}/runs/{run}/file`.
    ExportFile { key: String, run: String },
}

/// What a request's method and path find in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// A route, and who may call it.
    Found(Route, Auth),
    /// A CORS preflight for a known path; `for_pages` when pages call it (CORS follows
    /// the sources), otherwise only the dashboard's origins may.
    Preflight { for_pages: bool },
    /// The path exists but not with this method: the methods it takes, for `Allow`.
    WrongMethod { allow: String },
    /// No route has this path.
    NotFound,
}

type Make = fn(&[&str]) -> Route;

/// One row of the table: method, path pattern (`{}` matches one non-empty segment, whose
/// text is passed to `make` in order), authentication and the route it builds.
struct Row {
    method: &'static str,
    pattern: &'static str,
    auth: Auth,
    make: Make,
}

const fn row(method: &'static str, pattern: &'static str, auth: Auth, make: Make) -> Row {
    Row {
        method,
        pattern,
        auth,
        make,
    }
}

fn report(name: ReportName) -> Route {
    Route::Report { name }
}

fn owned(p: &[&str], i: usize) -> String {
    p.get(i).map(|s| (*s).to_owned()).unwrap_or_default()
}

/// Earlier rows win, so fixed paths come before the patterns they would also match.
const ROUTES: &[Row] = &[
    row("POST", "/v1/m", Auth::Public, |_| Route::SegmentMetrics),
    row("GET", "/v1/projects/{}/settings", Auth::WriteKey, |p| {
        Route::SegmentSettings {
            write_key: owned(p, 0),
        }
    }),
    row("GET", "/v1/profiles/lookup", Auth::Read, |_| {
        Route::ProfileLookup
    }),
    row("GET", "/v1/profiles", Auth::Read, |_| Route::ProfileSearch),
    row("GET", "/v1/profiles/{}", Auth::Read, |p| Route::Profile {
        id: owned(p, 0),
        view: ProfileView::Profile,
    }),
    row("DELETE", "/v1/profiles/{}", Auth::Admin, |p| {
        Route::ProfileErase { id: owned(p, 0) }
    }),
    row("GET", "/v1/profiles/{}/explain", Auth::Read, |p| {
        Route::Profile {
            id: owned(p, 0),
            view: ProfileView::Explain,
        }
    }),
    row("GET", "/v1/profiles/{}/events", Auth::Read, |p| {
        Route::Profile {
            id: owned(p, 0),
            view: ProfileView::Events,
        }
    }),
    row("GET", "/v1/profiles/{}/export", Auth::Admin, |p| {
        Route::Profile {
            id: owned(p, 0),
            view: ProfileView::Export,
        }
    }),
    row("POST", "/v1/profiles/{}/unmerge", Auth::Admin, |p| {
        Route::ProfileUnmerge { id: owned(p, 0) }
    }),
    row("GET", "/v1/stats", Auth::Read, |_| Route::Stats),
    row("GET", "/v1/reports/overview", Auth::Read, |_| {
        report(ReportName::Overview)
    }),
    row("GET", "/v1/reports/funnel", Auth::Read, |_| {
        report(ReportName::Funnel)
    }),
    row("GET", "/v1/reports/carts", Auth::Read, |_| {
        report(ReportName::Carts)
    }),
    row("GET", "/v1/reports/revenue", Auth::Read, |_| {
        report(ReportName::Revenue)
    }),
    row("GET", "/v1/reports/campaigns", Auth::Read, |_| {
        report(ReportName::Campaigns)
    }),
    row("GET", "/v1/reports/products", Auth::Read, |_| {
        report(ReportName::Products)
    }),
    row("GET", "/v1/reports/events", Auth::Read, |_| {
        report(ReportName::Events)
    }),
    row("GET", "/v1/import/{}", Auth::AdminOrWriteKey, |p| {
        Route::ImportProgress { job: owned(p, 0) }
    }),
    row("GET", "/v1/audit", Auth::Admin, |_| Route::Audit),
    row("POST", "/v1/admin/replay", Auth::Admin, |_| Route::Replay),
    row("POST", "/v1/admin/faults", Auth::Admin, |_| Route::Faults),
    row("GET", "/v1/admin/dead-letters", Auth::Read, |_| {
        Route::DeadLetters
    }),
    row("POST", "/v1/admin/dead-letters/replay", Auth::Admin, |_| {
        Route::DeadLetterReplay
    }),
    row("GET", "/v1/audiences", Auth::Read, |_| Route::Audiences),
    row("POST", "/v1/audiences", Auth::Admin, |_| {
        Route::AudienceCreate
    }),
    row("POST", "/v1/audiences/preview", Auth::Read, |_| {
        Route::AudiencePreview
    }),
    row("GET", "/v1/audiences/{}", Auth::Read, |p| Route::Audience {
        key: owned(p, 0),
    }),
    row("PUT", "/v1/audiences/{}", Auth::Admin, |p| {
        Route::AudienceUpdate { key: owned(p, 0) }
    }),
    row("DELETE", "/v1/audiences/{}", Auth::Admin, |p| {
        Route::AudienceDelete { key: owned(p, 0) }
    }),
    row("GET", "/v1/audiences/{}/members", Auth::Read, |p| {
        Route::AudienceMembers { key: owned(p, 0) }
    }),
    row("GET", "/v1/audiences/{}/sizes", Auth::Read, |p| {
        Route::AudienceSizes { key: owned(p, 0) }
    }),
    row("GET", "/v1/segment-groups", Auth::Read, |_| {
        Route::SegmentGroups
    }),
    row("POST", "/v1/segment-groups", Auth::Admin, |_| {
        Route::SegmentGroupCreate
    }),
    row("GET", "/v1/segment-groups/{}", Auth::Read, |p| {
        Route::SegmentGroup { key: owned(p, 0) }
    }),
    row("GET", "/v1/personalize", Auth::WriteKey, |_| {
        Route::Personalize
    }),
    row("GET", "/v1/destinations", Auth::Read, |_| {
        Route::Destinations
    }),
    row("POST", "/v1/destinations", Auth::Admin, |_| {
        Route::DestinationCreate
    }),
    row("GET", "/v1/destinations/{}", Auth::Read, |p| {
        Route::Destination { key: owned(p, 0) }
    }),
    row("PUT", "/v1/destinations/{}", Auth::Admin, |p| {
        Route::DestinationUpdate { key: owned(p, 0) }
    }),
    row("DELETE", "/v1/destinations/{}", Auth::Admin, |p| {
        Route::DestinationDelete { key: owned(p, 0) }
    }),
    row("GET", "/v1/destinations/{}/deliveries", Auth::Read, |p| {
        Route::DestinationDeliveries { key: owned(p, 0) }
    }),
    row("POST", "/v1/destinations/{}/test", Auth::Admin, |p| {
        Route::DestinationTest { key: owned(p, 0) }
    }),
    row("POST", "/v1/destinations/{}/replay", Auth::Admin, |p| {
        Route::DestinationReplay { key: owned(p, 0) }
    }),
    row("GET", "/v1/exports", Auth::Read, |_| Route::Exports),
    row("POST", "/v1/exports", Auth::Admin, |_| Route::ExportCreate),
    row("GET", "/v1/exports/{}", Auth::Read, |p| Route::Export {
        key: owned(p, 0),
    }),
    row("PUT", "/v1/exports/{}", Auth::Admin, |p| {
        Route::ExportUpdate { key: owned(p, 0) }
    }),
    row("DELETE", "/v1/exports/{}", Auth::Admin, |p| {
        Route::ExportDelete { key: owned(p, 0) }
    }),
    row("POST", "/v1/exports/{}/run", Auth::Admin, |p| {
        Route::ExportRun { key: owned(p, 0) }
    }),
    row("GET", "/v1/exports/{}/runs", Auth::Read, |p| {
        Route::ExportRuns { key: owned(p, 0) }
    }),
    row("GET", "/v1/exports/{}/runs/{}/file", Auth::Admin, |p| {
        Route::ExportFile {
            key: owned(p, 0),
            run: owned(p, 1),
        }
    }),
    row("GET", "/v1/catalog/kinds", Auth::Read, |_| {
        Route::CatalogKinds
    }),
    row("PUT", "/v1/catalog/kinds/{}", Auth::Admin, |p| {
        Route::CatalogKindPut { kind: owned(p, 0) }
    }),
    row("GET", "/v1/catalog/feeds", Auth::Read, |_| {
        Route::CatalogFeeds
    }),
    row("POST", "/v1/catalog/feeds", Auth::Admin, |_| {
        Route::CatalogFeedCreate
    }),
    row("GET", "/v1/catalog/feeds/{}", Auth::Read, |p| {
        Route::CatalogFeed { key: owned(p, 0) }
    }),
    row("PUT", "/v1/catalog/feeds/{}", Auth::Admin, |p| {
        Route::CatalogFeedUpdate { key: owned(p, 0) }
    }),
    row("DELETE", "/v1/catalog/feeds/{}", Auth::Admin, |p| {
        Route::CatalogFeedDelete { key: owned(p, 0) }
    }),
    row("POST", "/v1/catalog/feeds/{}/run", Auth::Admin, |p| {
        Route::CatalogFeedRun { key: owned(p, 0) }
    }),
    row("GET", "/v1/catalog/feeds/{}/runs", Auth::Read, |p| {
        Route::CatalogFeedRuns { key: owned(p, 0) }
    }),
    row("GET", "/v1/catalog/uploads/{}", Auth::Read, |p| {
        Route::CatalogUpload { job: owned(p, 0) }
    }),
    row("PUT", "/v1/catalog/{}", Auth::Admin, |p| {
        Route::CatalogPut { kind: owned(p, 0) }
    }),
    row("GET", "/v1/catalog/{}", Auth::Read, |p| {
        Route::CatalogItems { kind: owned(p, 0) }
    }),
    row("GET", "/v1/catalog/{}/{}", Auth::Read, |p| {
        Route::CatalogItem {
            kind: owned(p, 0),
            id: owned(p, 1),
        }
    }),
    row("DELETE", "/v1/catalog/{}/{}", Auth::Admin, |p| {
        Route::CatalogItemDelete {
            kind: owned(p, 0),
            id: owned(p, 1),
        }
    }),
];

/// The captured segments when `path` fits `pattern`.
fn fit<'a>(pattern: &str, path: &'a str) -> Option<Vec<&'a str>> {
    let mut pattern_parts = pattern.split('/');
    let mut path_parts = path.split('/');
    let mut captured = Vec::new();
    loop {
        match (pattern_parts.next(), path_parts.next()) {
            (None, None) => return Some(captured),
            (Some("{}"), Some(part)) if !part.is_empty() => captured.push(part),
            (Some(want), Some(part)) if want == part => {}
            _ => return None,
        }
    }
}

/// Every row whose path fits, collector paths first (they are a family the decoder
/// knows, not rows).
fn matching(path: &str) -> impl Iterator<Item = (&'static str, Auth, Route)> + '_ {
    let collector = Endpoint::from_path(path).map(|_| ("POST", Auth::WriteKey, Route::Collect));
    let rows = ROUTES.iter().filter_map(move |r| {
        let parts = fit(r.pattern, path)?;
        Some((r.method, r.auth, (r.make)(&parts)))
    });
    collector.into_iter().chain(rows)
}

/// Looks `method` and `path` up in the table.
pub fn resolve(method: &str, path: &str) -> Resolution {
    let found: Vec<_> = matching(path).collect();
    if found.is_empty() {
        return Resolution::NotFound;
    }
    if method.eq_ignore_ascii_case("OPTIONS") {
        let for_pages = found
            .iter()
            .any(|(_, auth, _)| !matches!(auth, Auth::Admin | Auth::Read));
        return Resolution::Preflight { for_pages };
    }
    if let Some((_, auth, route)) = found
        .iter()
        .find(|(m, _, _)| m.eq_ignore_ascii_case(method))
    {
        return Resolution::Found(route.clone(), *auth);
    }
    let mut allow: Vec<&str> = Vec::new();
    for (m, _, _) in &found {
        if !allow.contains(m) {
            allow.push(m);
        }
    }
    allow.push("OPTIONS");
    Resolution::WrongMethod {
        allow: allow.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(method: &str, path: &str) -> (Route, Auth) {
        match resolve(method, path) {
            Resolution::Found(route, auth) => (route, auth),
            other => panic!("{method} {path}: {other:?}"),
        }
    }

    #[test]
    fn fixed_paths_win_over_patterns() {
        assert_eq!(
            found("GET", "/v1/profiles/lookup"),
            (Route::ProfileLookup, Auth::Read)
        );
        assert_eq!(
            found("GET", "/v1/profiles/p_1").0,
            Route::Profile {
                id: "p_1".into(),
                view: ProfileView::Profile
            }
        );
        assert_eq!(
            found("GET", "/v1/profiles/p_1/events").0,
            Route::Profile {
                id: "p_1".into(),
                view: ProfileView::Events
            }
        );
        // The catalog's fixed names are routes, not kinds or items.
        assert_eq!(found("GET", "/v1/catalog/kinds").0, Route::CatalogKinds);
        assert_eq!(
            found("GET", "/v1/catalog/feeds/nightly").0,
            Route::CatalogFeed {
                key: "nightly".into()
            }
        );
        assert_eq!(
            found("GET", "/v1/catalog/products/stove"),
            (
                Route::CatalogItem {
                    kind: "products".into(),
                    id: "stove".into()
                },
                Auth::Read
            )
        );
        assert_eq!(
            found("PUT", "/v1/catalog/products"),
            (
                Route::CatalogPut {
                    kind: "products".into()
                },
                Auth::Admin
            )
        );
    }

    #[test]
    fn collector_paths_take_write_keys() {
        for path in ["/v1/batch", "/v1/track", "/v1/t", "/v1/b", "/v1/import"] {
            assert_eq!(found("POST", path), (Route::Collect, Auth::WriteKey));
        }
        assert_eq!(
            found("GET", "/v1/projects/wk_1/settings"),
            (
                Route::SegmentSettings {
                    write_key: "wk_1".into()
                },
                Auth::WriteKey
            )
        );
        assert_eq!(found("POST", "/v1/m").1, Auth::Public);
    }

    #[test]
    fn a_viewer_reads_but_never_changes_erases_or_exports() {
        for (method, path) in [
            ("GET", "/v1/profiles/p"),
            ("GET", "/v1/profiles/p/events"),
            ("GET", "/v1/stats"),
            ("GET", "/v1/audiences"),
            ("POST", "/v1/audiences/preview"),
            ("GET", "/v1/destinations/d/deliveries"),
        ] {
            assert_eq!(found(method, path).1, Auth::Read, "{method} {path}");
        }
        for (method, path) in [
            ("GET", "/v1/profiles/p/export"),
            ("DELETE", "/v1/profiles/p"),
            ("POST", "/v1/profiles/p/unmerge"),
            ("POST", "/v1/audiences"),
            ("PUT", "/v1/destinations/d"),
            ("GET", "/v1/exports/e/runs/r/file"),
            ("GET", "/v1/audit"),
        ] {
            assert_eq!(found(method, path).1, Auth::Admin, "{method} {path}");
        }
    }

    #[test]
    fn every_admin_route_needs_the_token() {
        for (method, path) in [
            ("GET", "/v1/profiles"),
            ("DELETE", "/v1/profiles/p"),
            ("POST", "/v1/profiles/p/unmerge"),
            ("GET", "/v1/profiles/p/export"),
            ("GET", "/v1/stats"),
            ("GET", "/v1/audit"),
            ("POST", "/v1/admin/replay"),
            ("GET", "/v1/admin/dead-letters"),
        ] {
            let auth = found(method, path).1;
            assert!(matches!(auth, Auth::Admin | Auth::Read), "{method} {path}");
        }
    }

    #[test]
    fn wrong_method_lists_what_the_path_takes() {
        assert_eq!(
            resolve("PUT", "/v1/profiles/p"),
            Resolution::WrongMethod {
                allow: "GET, DELETE, OPTIONS".into()
            }
        );
        assert_eq!(
            resolve("GET", "/v1/batch"),
            Resolution::WrongMethod {
                allow: "POST, OPTIONS".into()
            }
        );
        assert_eq!(
            resolve("GET", "/v1/import"),
            Resolution::WrongMethod {
                allow: "POST, OPTIONS".into()
            }
        );
    }

    #[test]
    fn unknown_paths_and_empty_segments_are_not_found() {
        assert_eq!(resolve("GET", "/v1/nothing"), Resolution::NotFound);
        assert_eq!(resolve("GET", "/v1/profiles/p/other"), Resolution::NotFound);
        assert_eq!(resolve("GET", "/v1/import/"), Resolution::NotFound);
        assert_eq!(
            resolve("GET", "/v1/projects//settings"),
            Resolution::NotFound
        );
    }

    #[test]
    fn preflight_follows_who_calls() {
        assert_eq!(
            resolve("OPTIONS", "/v1/batch"),
            Resolution::Preflight { for_pages: true }
        );
        assert_eq!(
            resolve("OPTIONS", "/v1/projects/k/settings"),
            Resolution::Preflight { for_pages: true }
        );
        assert_eq!(
            resolve("OPTIONS", "/v1/profiles/p"),
            Resolution::Preflight { for_pages: false }
        );
        assert_eq!(resolve("OPTIONS", "/v1/nothing"), Resolution::NotFound);
        assert_eq!(
            resolve("OPTIONS", "/v1/personalize"),
            Resolution::Preflight { for_pages: true }
        );
    }

    #[test]
    fn audience_routes() {
        assert_eq!(
            found("POST", "/v1/audiences/preview"),
            (Route::AudiencePreview, Auth::Read)
        );
        assert_eq!(
            found("PUT", "/v1/audiences/cart").0,
            Route::AudienceUpdate { key: "cart".into() }
        );
        assert_eq!(
            resolve("PATCH", "/v1/audiences/cart"),
            Resolution::WrongMethod {
                allow: "GET, PUT, DELETE, OPTIONS".into()
            }
        );
        assert_eq!(found("GET", "/v1/personalize").1, Auth::WriteKey);
    }
}
