//! Presence in NATS JetStream: a stream `LIVE_PRESENCE` on subjects
//! `lp.<hex of the topic>.<hex of the session>` keeps one message per
//! subject, the member's `{"session","user"}`, for at most [`EXPIRY`]. A
//! node stores its sessions' entries as they join, purges them as they
//! leave and stores them again every [`REFRESH`]; a node that died stops
//! refreshing and its entries expire. A read lists the subjects of the
//! topic and takes each one's message. Joins and leaves also go to the
//! topic's plain subject for the other nodes' watchers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use adapter_common::backplane::{PresenceMember, decode_member, encode_member, encode_presence};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use futures_util::TryStreamExt;

use crate::nats_subject::hex_topic;

/// How often a node stores its sessions' entries again.
pub(crate) const REFRESH: Duration = Duration::from_secs(10);
/// How long an entry lives without being stored again.
const EXPIRY: Duration = Duration::from_secs(30);

fn subject(topic: &str, session: &str) -> String {
    format!("lp.{}.{}", hex_topic(topic), hex_topic(session))
}

/// This node's members per topic, and the stream.
pub(crate) struct Presence {
    js: jetstream::Context,
    stream: Option<stream::Stream>,
    members: BTreeMap<String, BTreeSet<PresenceMember>>,
}

impl Presence {
    pub(crate) fn new(client: async_nats::Client) -> Self {
        Self {
            js: jetstream::new(client),
            stream: None,
            members: BTreeMap::new(),
        }
    }

    async fn stream(&mut self) -> Result<stream::Stream, String> {
        if let Some(s) = &self.stream {
            return Ok(s.clone());
        }
        let s = self
            .js
            .get_or_create_stream(stream::Config {
                name: "LIVE_PRESENCE".to_owned(),
                subjects: vec!["lp.*.*".to_owned()],
                max_messages_per_subject: 1,
                max_age: EXPIRY,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        self.stream = Some(s.clone());
        Ok(s)
    }

    async fn store(&self, topic: &str, member: &PresenceMember) -> Result<(), String> {
        let ack = self
            .js
            .publish(
                subject(topic, &member.session),
                Bytes::from(encode_member(member)),
            )
            .await
            .map_err(|e| e.to_string())?;
        ack.await.map(|_| ()).map_err(|e| e.to_string())
    }

    /// Stores or purges a local member and tells the other nodes on the
    /// topic's plain subject.
    pub(crate) async fn change(
        &mut self,
        client: &async_nats::Client,
        node: &str,
        topic: &str,
        plain_subject: String,
        member: PresenceMember,
        joined: bool,
    ) -> Result<(), String> {
        let stream = self.stream().await?;
        if joined {
            self.store(topic, &member).await?;
        } else {
            stream
                .purge()
                .filter(subject(topic, &member.session))
                .await
                .map_err(|e| e.to_string())?;
        }
        let message = encode_presence(node, joined, &member);
        if joined {
            self.members
                .entry(topic.to_owned())
                .or_default()
                .insert(member);
        } else if let Some(set) = self.members.get_mut(topic) {
            set.remove(&member);
            if set.is_empty() {
                self.members.remove(topic);
            }
        }
        client
            .publish(plain_subject, message.into())
            .await
            .map_err(|e| e.to_string())
    }

    /// Stores every local member again.
    pub(crate) async fn refresh(&mut self) -> Result<(), String> {
        if self.members.is_empty() {
            return Ok(());
        }
        self.stream().await?;
        for (topic, members) in &self.members {
            for m in members {
                self.store(topic, m).await?;
            }
        }
        Ok(())
    }

    /// Every node's members of `topic`.
    pub(crate) async fn read(&mut self, topic: &str) -> Result<Vec<PresenceMember>, String> {
        let stream = self.stream().await?;
        let filter = format!("lp.{}.*", hex_topic(topic));
        let subjects: Vec<(String, usize)> = match stream.info_with_subjects(&filter).await {
            Ok(info) => info.try_collect().await.map_err(|e| e.to_string())?,
            Err(e) => return Err(e.to_string()),
        };
        let mut members = Vec::new();
        for (subject, _) in subjects {
            match stream.get_last_raw_message_by_subject(&subject).await {
                Ok(m) => members.extend(decode_member(&m.payload)),
                Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(members)
    }
}
