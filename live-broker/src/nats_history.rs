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
use futures_util::StreamExt;

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

    /// What a read of `topic` needs, to run apart from the link's loop
    /// (reads of many resuming clients go on at once; appends stay in
    /// order in the loop).
    pub(crate) async fn reader(
        &mut self,
        topic: &str,
        limits: &HistoryLimits,
    ) -> Result<Reader, String> {
        Ok(Reader {
            js: self.js.clone(),
            stream: self.stream(limits).await?,
            subject: subject(limits, topic),
            keeps: limits.size > 0,
        })
    }
}

/// One history read.
pub(crate) struct Reader {
    js: jetstream::Context,
    stream: stream::Stream,
    subject: String,
    keeps: bool,
}

impl Reader {
    /// The first message of the subject at or after stream sequence `seq`.
    async fn next_from(
        &self,
        seq: u64,
    ) -> Result<Option<jetstream::message::StreamMessage>, String> {
        match self
            .stream
            .raw_message_builder()
            .sequence(seq)
            .next_by_subject(self.subject.clone())
            .send()
            .await
        {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The offset of a message (0 for one without: the epoch marker).
    fn offset(m: &jetstream::message::StreamMessage) -> u64 {
        numbered(Some(&m.headers)).map_or(0, |(_, o)| o)
    }

    /// The messages of the subject from stream sequence `from` up to
    /// `last`, through a short-lived consumer that hands them over in
    /// batches (one request per batch instead of one per message).
    async fn fetch(&self, from: u64, last: &Last, after: u64) -> Result<Vec<(u64, Bytes)>, String> {
        use jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
        let consumer = self
            .stream
            .create_consumer(pull::Config {
                filter_subject: self.subject.clone(),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: from,
                },
                ack_policy: AckPolicy::None,
                inactive_threshold: Duration::from_secs(10),
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut entries = Vec::new();
        let wanted = usize::try_from(last.offset.saturating_sub(after)).unwrap_or(usize::MAX);
        let result = async {
            loop {
                let mut batch = consumer
                    .fetch()
                    .max_messages(wanted.saturating_sub(entries.len()).clamp(1, 512))
                    .messages()
                    .await
                    .map_err(|e| e.to_string())?;
                let mut got = 0;
                while let Some(m) = batch.next().await {
                    let m = m.map_err(|e| e.to_string())?;
                    got += 1;
                    let seq = m.info().map_err(|e| e.to_string())?.stream_sequence;
                    if seq > last.seq {
                        return Ok(());
                    }
                    if let Some((epoch, offset)) = numbered(m.headers.as_ref())
                        && epoch == last.epoch
                        && offset > after
                    {
                        entries.push((offset, m.payload.clone()));
                    }
                    if seq == last.seq {
                        return Ok(());
                    }
                }
                if got == 0 {
                    return Ok(());
                }
            }
        }
        .await;
        let name = consumer.cached_info().name.clone();
        let _ = self.stream.delete_consumer(&name).await;
        result.map(|()| entries)
    }

    /// The topic's epoch, last offset and the publications after `after`.
    pub(crate) async fn read(self, after: Option<u64>) -> Result<HistoryRead, String> {
        let mut last = History::last_of(&self.stream, &self.subject).await?;
        if last.is_none() {
            // An empty subject: a marker fixes the epoch (losing the race
            // to another node's marker or publication is as good).
            let publish = jetstream::message::PublishMessage::build()
                .payload(Bytes::new())
                .header(EPOCH, crate::fresh_epoch().as_str())
                .header(OFFSET, "0")
                .expected_last_subject_sequence(0);
            let acked = match self.js.send_publish(self.subject.clone(), publish).await {
                Ok(ack) => ack.await.map(|_| ()),
                Err(e) => Err(e),
            };
            match acked {
                Ok(()) => {}
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {}
                Err(e) => return Err(e.to_string()),
            }
            last = History::last_of(&self.stream, &self.subject).await?;
        }
        let Some(last) = last else {
            return Ok(HistoryRead::default());
        };
        let mut entries = Vec::new();
        if let Some(after) = after
            && after < last.offset
            && self.keeps
        {
            // Offsets grow with stream sequences within a subject (it holds
            // one epoch: an epoch ends only when the subject ran empty):
            // find the first message past `after` by bisection, then walk.
            let (mut lo, mut hi) = (1, last.seq);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                match self.next_from(mid).await? {
                    Some(m) if Self::offset(&m) > after => hi = mid,
                    Some(m) => lo = m.sequence + 1,
                    None => break,
                }
            }
            entries = self.fetch(lo, &last, after).await?;
        }
        Ok(HistoryRead {
            epoch: last.epoch,
            last: last.offset,
            entries,
        })
    }
}
