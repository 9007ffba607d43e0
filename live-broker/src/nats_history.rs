//! History in NATS JetStream: one stream per history shape,
//! `LIVE_HISTORY_<size>_<ttl ms>`, on subjects `lh.<size>.<ttl ms>.<hex of
//! the topic>`, keeping `size` messages per subject (one more for the epoch
//! marker below) for at most the TTL. Each message carries its topic's epoch
//! and offset in headers (`Live-Epoch`, `Live-Offset`); the offset is taken
//! with an optimistic append (`Nats-Expected-Last-Subject-Sequence` names
//! the subject's last message: two nodes appending at once cannot both
//! succeed, the loser reads the new last message and tries again). The
//! stream republishes what it stored, in its order, on the topic's plain
//! subject `live.<hex>`, which every node with subscribers already follows.
//! A subject with no message (new, or every message expired) starts a new
//! epoch; a read of such a subject stores a marker (offset 0, no data) so
//! that the epoch a subscriber is told exists before the first publication.

use std::collections::BTreeMap;
use std::time::Duration;

use adapter_common::backplane::{HistoryLimits, HistoryRead};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishErrorKind, stream};
use bytes::Bytes;

use crate::nats_subject::hex_topic;

const EPOCH: &str = "Live-Epoch";
const OFFSET: &str = "Live-Offset";
/// Most topics whose last message is remembered between appends.
const REMEMBERED: usize = 10_000;

/// The last message of a topic's subject.
#[derive(Debug, Clone)]
struct Last {
    /// Its stream sequence.
    seq: u64,
    epoch: String,
    offset: u64,
}

/// The link's side of JetStream history.
pub(crate) struct History {
    js: jetstream::Context,
    streams: BTreeMap<(usize, u64), stream::Stream>,
    last: BTreeMap<String, Last>,
}

fn ttl_ms(limits: &HistoryLimits) -> u64 {
    limits.ttl.map_or(0, |t| {
        u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)
    })
}

fn subject(limits: &HistoryLimits, topic: &str) -> String {
    format!("lh.{}.{}.{}", limits.size, ttl_ms(limits), hex_topic(topic))
}

/// The epoch and offset of a message that carries them.
pub(crate) fn numbered(headers: Option<&HeaderMap>) -> Option<(String, u64)> {
    let headers = headers?;
    let epoch = headers.get(EPOCH)?.as_str().to_owned();
    let offset = headers.get(OFFSET)?.as_str().parse().ok()?;
    Some((epoch, offset))
}

impl History {
    pub(crate) fn new(client: async_nats::Client) -> Self {
        Self {
            js: jetstream::new(client),
            streams: BTreeMap::new(),
            last: BTreeMap::new(),
        }
    }

    /// The stream of this history shape, created when missing.
    async fn stream(&mut self, limits: &HistoryLimits) -> Result<stream::Stream, String> {
        let key = (limits.size, ttl_ms(limits));
        if let Some(s) = self.streams.get(&key) {
            return Ok(s.clone());
        }
        let (size, ttl) = key;
        let config = stream::Config {
            name: format!("LIVE_HISTORY_{size}_{ttl}"),
            subjects: vec![format!("lh.{size}.{ttl}.*")],
            max_messages_per_subject: i64::try_from(size.saturating_add(1)).unwrap_or(i64::MAX),
            max_age: Duration::from_millis(ttl),
            republish: Some(stream::Republish {
                source: format!("lh.{size}.{ttl}.*"),
                destination: "live.{{wildcard(1)}}".to_owned(),
                headers_only: false,
            }),
            ..Default::default()
        };
        let s = self
            .js
            .get_or_create_stream(config)
            .await
            .map_err(|e| e.to_string())?;
        self.streams.insert(key, s.clone());
        Ok(s)
    }

    /// The last message of `subject`, if it has any.
    async fn last_of(stream: &stream::Stream, subject: &str) -> Result<Option<Last>, String> {
        match stream.get_last_raw_message_by_subject(subject).await {
            Ok(m) => {
                let (epoch, offset) =
                    numbered(Some(&m.headers)).unwrap_or_else(|| (crate::fresh_epoch(), 0));
                Ok(Some(Last {
                    seq: m.sequence,
                    epoch,
                    offset,
                }))
            }
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Stores a message after `last` (none: the subject is empty) with the
    /// next offset; `Ok(false)` when another node stored one first.
    async fn store(
        &self,
        subject: &str,
        last: &Last,
        offset: u64,
        data: Bytes,
    ) -> Result<Option<u64>, String> {
        let publish = jetstream::message::PublishMessage::build()
            .payload(data)
            .header(EPOCH, last.epoch.as_str())
            .header(OFFSET, offset.to_string().as_str())
            .expected_last_subject_sequence(last.seq);
        let sent = self.js.send_publish(subject.to_owned(), publish).await;
        let acked = match sent {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        match acked {
            Ok(ack) => Ok(Some(ack.sequence)),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Numbers and stores one publication; the stream republishes it to
    /// every node.
    pub(crate) async fn append(
        &mut self,
        topic: &str,
        data: Bytes,
        limits: &HistoryLimits,
    ) -> Result<(), String> {
        let stream = self.stream(limits).await?;
        let subject = subject(limits, topic);
        for _ in 0..16 {
            let last = match self.last.remove(topic) {
                Some(l) => l,
                None => Self::last_of(&stream, &subject)
                    .await?
                    .unwrap_or_else(|| Last {
                        seq: 0,
                        epoch: crate::fresh_epoch(),
                        offset: 0,
                    }),
            };
            let offset = last.offset + 1;
            if let Some(seq) = self.store(&subject, &last, offset, data.clone()).await? {
                if self.last.len() >= REMEMBERED {
                    self.last.clear();
                }
                self.last.insert(
                    topic.to_owned(),
                    Last {
                        seq,
                        epoch: last.epoch,
                        offset,
                    },
                );
                return Ok(());
            }
        }
        Err("other nodes kept appending first".to_owned())
    }

    /// The topic's epoch, last offset and the publications after `after`.
    pub(crate) async fn read(
        &mut self,
        topic: &str,
        after: Option<u64>,
        limits: &HistoryLimits,
    ) -> Result<HistoryRead, String> {
        let stream = self.stream(limits).await?;
        let subject = subject(limits, topic);
        let mut last = Self::last_of(&stream, &subject).await?;
        if last.is_none() {
            // An empty subject: a marker fixes the epoch (losing the race
            // to another node's marker or publication is as good).
            let empty = Last {
                seq: 0,
                epoch: crate::fresh_epoch(),
                offset: 0,
            };
            self.store(&subject, &empty, 0, Bytes::new()).await?;
            last = Self::last_of(&stream, &subject).await?;
        }
        let Some(last) = last else {
            return Ok(HistoryRead::default());
        };
        let mut entries = Vec::new();
        if let Some(after) = after
            && after < last.offset
            && limits.size > 0
        {
            let mut seq = 1;
            while seq <= last.seq {
                let m = match stream
                    .raw_message_builder()
                    .sequence(seq)
                    .next_by_subject(subject.clone())
                    .send()
                    .await
                {
                    Ok(m) => m,
                    Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => break,
                    Err(e) => return Err(e.to_string()),
                };
                if m.sequence > last.seq {
                    break;
                }
                if let Some((epoch, offset)) = numbered(Some(&m.headers))
                    && epoch == last.epoch
                    && offset > after
                {
                    entries.push((offset, m.payload));
                }
                seq = m.sequence + 1;
            }
        }
        Ok(HistoryRead {
            epoch: last.epoch,
            last: last.offset,
            entries,
        })
    }
}
