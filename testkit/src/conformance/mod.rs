//! The black-box conformance suite: every case talks to a real server over real
//! sockets (WebSocket + HTTP), so the same cases run against any adapter.
//!
//! An adapter's test file implements [`ServerUnderTest`] for a server started with
//! the [conformance profile](crate::profile), writes an async start function, and
//! invokes [`conformance_suite!`](crate::conformance_suite), which expands into one
//! `#[test]` per case. Each case gets a fresh server.
//!
//! The client side runs on a tokio runtime the suite builds itself; the server may
//! run on any runtime (its start future is polled on that tokio runtime, so a smol
//! server should run its executor on its own threads).

mod history_cases;
mod live_cases;
mod seed_flows;
mod sync_cases;
mod ws_sync_cases;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::profile::Profile;
use crate::sync_client::SyncHttp;
use crate::ws_client::WsClient;

/// A boxed future, as returned by the trait's async hooks.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A running server configured with a [`Profile`]. Dropping it stops the server.
pub trait ServerUnderTest: Send + Sync {
    /// The WebSocket endpoint, e.g. `ws://127.0.0.1:41234/ws`.
    fn ws_url(&self) -> String;
    /// The HTTP origin, e.g. `http://127.0.0.1:41234` (the suite appends the
    /// profile's sync prefix).
    fn http_base(&self) -> String;
    /// Trims the sync log of `scope` with the server's own hook: every change with
    /// a cursor below `before` is dropped, so a pull succeeds iff its cursor is at
    /// least `before - 1`. Resolves once the trim is durable.
    fn trim<'a>(&'a self, scope: &'a str, before: u64) -> BoxFuture<'a, Result<(), String>>;
}

/// Hang guard for a whole case (never a pass/fail timing).
pub const CASE_TIMEOUT: Duration = Duration::from_secs(180);

/// Everything a case needs: the server and the profile it runs with.
pub struct Ctx<'a> {
    /// The server under test.
    pub server: &'a dyn ServerUnderTest,
    /// Its profile.
    pub profile: Profile,
}

impl Ctx<'_> {
    /// A sync HTTP client authenticated as `user` (`None`: no token).
    pub fn http(&self, user: Option<&str>) -> SyncHttp {
        SyncHttp::new(&self.server.http_base(), self.profile.sync_prefix, user)
            .expect("http_base must be http://host:port")
    }

    /// A WebSocket connection as `user`.
    pub async fn ws(&self, user: &str) -> WsClient {
        WsClient::connect_as(&self.server.ws_url(), user).await
    }
}

type CaseFn = for<'a> fn(&'a Ctx<'a>) -> BoxFuture<'a, ()>;

macro_rules! cases {
    ($d:tt; $( $module:ident :: $name:ident ),* $(,)?) => {
        /// Every case of the suite, by name, in the order the macro emits them.
        pub const CASES: &[&str] = &[$(stringify!($name)),*];

        fn lookup(name: &str) -> Option<CaseFn> {
            match name {
                $( stringify!($name) => Some(|cx| Box::pin($module::$name(cx))), )*
                _ => None,
            }
        }

        /// Expands into one `#[test]` per conformance case; the argument is an
        /// async function `fn(Profile) -> impl Future<Output = Box<dyn ServerUnderTest>>`.
        ///
        /// ```text
        /// testkit::conformance_suite!(start);
        /// ```
        #[macro_export]
        macro_rules! conformance_suite {
            ($d start:path) => {
                $(
                    #[test]
                    fn $name() {
                        $d crate::conformance::run_case(stringify!($name), $d start);
                    }
                )*
            };
        }
    };
}

cases! { $;
    live_cases::live_subscribe_publish_reaches_every_subscriber,
    live_cases::live_subscribe_sends_no_confirmation,
    live_cases::live_unsubscribe_stops_delivery,
    live_cases::live_application_message_is_echoed,
    live_cases::live_binary_frame_is_accepted,
    live_cases::live_auth_missing_or_denied_token_is_401,
    live_cases::live_auth_token_from_header_query_or_cookie,
    live_cases::live_origin_not_allowed_is_403,
    live_cases::live_origin_allowed_or_absent_connects,
    live_cases::live_bad_websocket_version_is_426,
    live_cases::live_oversize_frame_closes_1009,
    live_cases::live_malformed_json_gets_error_and_connection_is_kept,
    live_cases::live_invalid_command_gets_error_frame,
    live_cases::live_unknown_reserved_command_gets_error_frame,
    live_cases::live_private_topic_is_owner_only,
    live_cases::live_readonly_topic_refuses_client_publish,
    live_cases::live_slow_consumer_is_closed_while_others_receive_everything,
    history_cases::history_offsets_are_dense_per_topic,
    history_cases::history_subscribed_reply_has_the_documented_shape,
    history_cases::history_plain_subscribe_gets_no_reply,
    history_cases::history_recovery_replays_in_order_then_live_without_duplicates,
    history_cases::history_replay_longer_than_the_queue_finishes_on_a_quiet_topic,
    history_cases::history_wrong_epoch_is_not_recovered_and_sends_nothing_old,
    history_cases::history_trimmed_position_is_not_recovered,
    history_cases::history_malformed_since_gets_an_error_frame,
    history_cases::presence_join_leave_and_query,
    history_cases::presence_and_recovery_need_the_subscribe_right,
    sync_cases::sync_push_pull_snapshot_basics,
    sync_cases::sync_get_forms_of_pull_and_snapshot,
    sync_cases::sync_pull_pagination_has_more_and_next_cursor,
    sync_cases::sync_pull_limit_default_and_cap,
    sync_cases::sync_page_never_splits_a_mutation,
    sync_cases::sync_trim_gives_410_and_snapshot_recovers,
    sync_cases::sync_replay_by_client_seq_returns_original_result,
    sync_cases::sync_replay_by_mutation_id_returns_original_result,
    sync_cases::sync_permanent_error_is_recorded_and_replayed,
    sync_cases::sync_bad_bodies_are_400_invalid_mutation,
    sync_cases::sync_oversize_body_is_413,
    sync_cases::sync_oversize_body_is_discarded_and_the_connection_kept,
    sync_cases::sync_auth_missing_or_denied_token_is_401,
    sync_cases::sync_scope_not_allowed_is_403,
    sync_cases::sync_poke_follows_push,
    sync_cases::sync_topic_subscribe_needs_scope_and_publish_is_forbidden,
    ws_sync_cases::sync_over_websocket_push_pull_snapshot,
    ws_sync_cases::sync_over_websocket_errors_keep_the_connection,
    seed_flows::seed_integration_guide_client_flow,
    seed_flows::seed_mizu_http_transport_flow,
}

/// Runs one case by name against a fresh server from `start`.
///
/// Builds a two-worker tokio runtime, awaits `start(Profile::conformance())`, runs
/// the case under [`CASE_TIMEOUT`], then drops the server inside the runtime.
/// Panics (fails the test) on any violation or on an unknown case name.
pub fn run_case<F, Fut>(name: &str, start: F)
where
    F: FnOnce(Profile) -> Fut,
    Fut: Future<Output = Box<dyn ServerUnderTest>>,
{
    let case = lookup(name).unwrap_or_else(|| panic!("no conformance case named {name}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let profile = Profile::conformance();
        let server = start(profile.clone()).await;
        let cx = Ctx {
            server: &*server,
            profile,
        };
        if tokio::time::timeout(CASE_TIMEOUT, case(&cx)).await.is_err() {
            panic!("case {name} hung for {CASE_TIMEOUT:?}");
        }
        drop(server);
    });
}

/// Asserts a JSON error body `{"code": code, "error": <string>}`.
pub(crate) fn assert_error_body(body: &serde_json::Value, code: &str, what: &str) {
    assert_eq!(body["code"], code, "{what}: error code in {body}");
    assert!(
        body["error"].is_string(),
        "{what}: `error` message missing in {body}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_name_resolves_and_is_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for name in CASES {
            assert!(lookup(name).is_some(), "{name}");
            assert!(seen.insert(*name), "duplicate case {name}");
        }
        assert!(lookup("nope").is_none());
        assert!(CASES.len() >= 30);
    }

    #[test]
    #[should_panic(expected = "no conformance case named nope")]
    fn unknown_case_panics() {
        struct NoServer;
        impl ServerUnderTest for NoServer {
            fn ws_url(&self) -> String {
                "ws://127.0.0.1:9/ws".into()
            }
            fn http_base(&self) -> String {
                "http://127.0.0.1:9".into()
            }
            fn trim<'a>(&'a self, _: &'a str, _: u64) -> BoxFuture<'a, Result<(), String>> {
                Box::pin(async { Err("no server".to_owned()) })
            }
        }
        run_case("nope", |_| async {
            Box::new(NoServer) as Box<dyn ServerUnderTest>
        });
    }
}
