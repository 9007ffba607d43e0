//! Presence across nodes (`HubConfig::broker_presence`), as transcripts:
//! local joins and leaves are reported for the broker, other nodes' are
//! announced to local watchers, and a query lists the local subscribers and
//! the broker's other members.

mod support;

use live_core::{Event, HubConfig, PresenceMember};
use support::Harness;

fn config() -> HubConfig {
    let mut c = HubConfig::default();
    c.broker_presence = true;
    c
}

fn changes(h: &mut Harness) -> Vec<(String, String, bool)> {
    h.events()
        .into_iter()
        .filter_map(|e| match e {
            Event::PresenceChange {
                topic,
                member,
                joined,
            } => Some((topic, member.session, joined)),
            _ => None,
        })
        .collect()
}

fn member(session: &str, user: Option<&str>) -> PresenceMember {
    PresenceMember {
        session: session.into(),
        user: user.map(str::to_owned),
    }
}

#[test]
fn local_changes_are_reported_and_remote_ones_announced() {
    let mut h = Harness::with_config(config());
    let a = h.open("a");
    h.text(
        a,
        r#"{"topic":"subscribe","data":{"topic":"room","presence":true}}"#,
    );
    // The server's own subscribe (a client's would wait for the scope's
    // authorization): sync topics stay on the node.
    h.hub.subscribe(a, "sync:doc").unwrap();
    assert_eq!(changes(&mut h), [("room".to_owned(), a.to_string(), true)]);
    h.hub
        .deliver_presence("room", &member("00000000000000ff", Some("bob")), true)
        .unwrap();
    h.hub
        .deliver_presence("room", &member("00000000000000ff", Some("bob")), false)
        .unwrap();
    assert_eq!(
        h.drain(),
        [
            r#"a <- {"topic":"join","data":{"topic":"room","session":"00000000000000ff","user":"bob"}}"#,
            r#"a <- {"topic":"leave","data":{"topic":"room","session":"00000000000000ff","user":"bob"}}"#,
        ]
    );
    // Nobody watches "other": nothing to announce, and no error.
    assert_eq!(
        h.hub.deliver_presence("other", &member("x", None), true),
        Ok(0)
    );
    h.unsubscribe(a, "room");
    assert_eq!(changes(&mut h), [("room".to_owned(), a.to_string(), false)]);
}

#[test]
fn a_query_lists_local_subscribers_then_the_brokers_other_members() {
    let mut h = Harness::with_config(config());
    let a = h.open("a");
    h.subscribe(a, "room");
    h.events();
    h.text(a, r#"{"topic":"presence","data":{"topic":"room"}}"#);
    let request = h
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::PresenceQuery { request, topic } if topic == "room" => Some(request),
            _ => None,
        })
        .expect("the broker is asked");
    assert!(h.drain().is_empty(), "no answer before the broker's");
    h.hub.handle_presence_members(
        request,
        Some(vec![
            member(&a.to_string(), None),
            member("00000000000000ff", Some("bob")),
            member("00000000000000ff", Some("bob")),
        ]),
    );
    assert_eq!(
        h.drain(),
        [format!(
            r#"a <- {{"topic":"presence","data":{{"topic":"room","clients":[{{"session":"{a}","user":null}},{{"session":"00000000000000ff","user":"bob"}}]}}}}"#
        )]
    );
    // The broker unreachable: the local subscribers only.
    h.text(a, r#"{"topic":"presence","data":{"topic":"room"}}"#);
    let request = h
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::PresenceQuery { request, .. } => Some(request),
            _ => None,
        })
        .unwrap();
    h.hub.handle_presence_members(request, None);
    assert_eq!(
        h.drain(),
        [format!(
            r#"a <- {{"topic":"presence","data":{{"topic":"room","clients":[{{"session":"{a}","user":null}}]}}}}"#
        )]
    );
    // A session that closed before the answer gets nothing.
    h.text(a, r#"{"topic":"presence","data":{"topic":"room"}}"#);
    h.hub.handle_transport_closed(h.now, a);
    assert_eq!(h.hub.presence_queries_waiting(), 0);
    h.hub.handle_presence_members(1000, None);
    assert!(h.drain().is_empty());
}
