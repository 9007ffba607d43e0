//! State-machine property test: random input sequences drive the hub and the
//! reference model (`live_core::testing::model`) side by side; after every step
//! what each session received must match the model exactly, history replies
//! and replays included.

use live_core::testing::model::{Op, TOPICS, run};
use proptest::prelude::*;

fn op() -> impl Strategy<Value = Op> {
    let s = 0usize..8;
    let t = 0usize..TOPICS.len();
    prop_oneof![
        3 => any::<bool>().prop_map(|p| Op::Open { pre_authenticated: p }),
        2 => (s.clone(), prop::bool::weighted(0.85)).prop_map(|(s, ok)| Op::Auth { s, ok }),
        4 => (s.clone(), t.clone()).prop_map(|(s, t)| Op::Subscribe { s, t }),
        3 => (
            s.clone(),
            t.clone(),
            prop::option::weighted(0.8, (0u8..2, 0u64..8)),
            any::<bool>(),
            prop::bool::weighted(0.4)
        )
            .prop_map(|(s, t, since, history, presence)| Op::SubscribeSince {
                s,
                t,
                since,
                history,
                presence
            }),
        2 => (s.clone(), t.clone()).prop_map(|(s, t)| Op::Presence { s, t }),
        2 => (s.clone(), t.clone()).prop_map(|(s, t)| Op::Unsubscribe { s, t }),
        4 => (s.clone(), t.clone(), 0usize..60).prop_map(|(s, t, size)| Op::Publish { s, t, size }),
        2 => (t, 0usize..60).prop_map(|(t, size)| Op::ServerPublish { t, size }),
        1 => s.clone().prop_map(|s| Op::ServerClose { s }),
        4 => (s.clone(), 0usize..4).prop_map(|(s, n)| Op::Flush { s, n }),
        1 => s.clone().prop_map(|s| Op::Ping { s }),
        1 => s.clone().prop_map(|s| Op::Pong { s }),
        1 => s.clone().prop_map(|s| Op::Garbage { s }),
        1 => s.clone().prop_map(|s| Op::PeerClose { s }),
        1 => s.prop_map(|s| Op::TransportClosed { s }),
        2 => any::<bool>().prop_map(|allow| Op::Answer { allow }),
        3 => (0u64..15_000).prop_map(|ms| Op::Advance { ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn hub_matches_the_reference_model(ops in prop::collection::vec(op(), 1..120)) {
        run(&ops).map_err(TestCaseError::fail)?;
    }
}
