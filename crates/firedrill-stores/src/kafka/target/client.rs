//! The workload's producer and the heartbeat producer (librdkafka through
//! `rdkafka`'s `ThreadedProducer`, whose background thread serves delivery
//! reports), and the mapping of a delivery report to a ledger outcome.

use super::super::config::{Acks, Producer};
use firedrill_ledger::Outcome;
use rdkafka::bindings as rdsys;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use std::time::Duration;
use tokio::sync::oneshot;

/// What a delivery report says, as the ledger records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    pub outcome: Outcome,
    pub partition: i32,
    pub offset: i64,
    pub error: Option<String>,
}

/// Routes each delivery report to the write waiting for it.
pub struct Reports;

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<oneshot::Sender<Delivered>>;

    fn delivery(&self, r: &DeliveryResult<'_>, tx: Self::DeliveryOpaque) {
        let d = match r {
            Ok(m) => Delivered {
                outcome: Outcome::Ok,
                partition: m.partition(),
                offset: m.offset(),
                error: None,
            },
            Err((e, m)) => {
                // SAFETY: the message is valid for the duration of the
                // callback, which is where librdkafka allows the status call.
                let status = unsafe { rdsys::rd_kafka_message_status(m.ptr()) };
                Delivered {
                    outcome: outcome_of(e, status),
                    partition: m.partition(),
                    offset: m.offset(),
                    error: Some(e.to_string()),
                }
            }
        };
        let _ = tx.send(d);
    }
}

/// Broker errors that reject a record before the leader appends it: it is
/// definitely not in the log.
fn definitely_rejected(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::NotEnoughReplicas
            | C::MessageSizeTooLarge
            | C::InvalidTopic
            | C::TopicAuthorizationFailed
            | C::InvalidRequiredAcks
            | C::InvalidRecord
            | C::UnknownTopicOrPartition
            | C::QueueFull
            | C::UnknownTopic
            | C::UnknownPartition
    )
}

/// Errors after which the record may be in the log: the leader appended it
/// and then could not confirm the replication (`NOT_ENOUGH_REPLICAS_AFTER_
/// APPEND`, a timeout waiting for followers), or the request was sent and
/// the answer lost.
fn maybe_appended(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::NotEnoughReplicasAfterAppend
            | C::RequestTimedOut
            | C::MessageTimedOut
            | C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::NetworkException
            | C::NotLeaderForPartition
    )
}

/// The ledger outcome of a failed delivery: `fail` when the broker said it
/// rejected the record before appending, or librdkafka knows it never
/// reached a broker (`NOT_PERSISTED`) and the error is not one after which
/// an append is possible; `unknown` otherwise.
pub fn outcome_of(e: &KafkaError, status: rdsys::rd_kafka_msg_status_t) -> Outcome {
    let code = e.rdkafka_error_code();
    if code.is_some_and(definitely_rejected) {
        return Outcome::Fail;
    }
    let not_persisted = status == rdsys::rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_NOT_PERSISTED;
    if not_persisted && !code.is_some_and(maybe_appended) {
        return Outcome::Fail;
    }
    Outcome::Unknown
}

/// A producer as the workload configures it. `retries` are librdkafka's
/// default (until the delivery timeout) unless `kafka_retries` says, so
/// with idempotence off a retried record can be appended twice: the audit
/// counts the duplicates.
pub fn producer(
    bootstrap: &str,
    p: &Producer,
) -> Result<ThreadedProducer<Reports>, String> {
    let mut c = ClientConfig::new();
    let delivery = p.delivery_timeout.max(Duration::from_millis(10));
    c.set("bootstrap.servers", bootstrap)
        .set("acks", p.acks.as_conf())
        .set("enable.idempotence", if p.idempotence { "true" } else { "false" })
        .set("linger.ms", p.linger.as_millis().to_string())
        .set(
            "max.in.flight.requests.per.connection",
            p.max_in_flight.to_string(),
        )
        .set("message.timeout.ms", delivery.as_millis().to_string())
        .set(
            "request.timeout.ms",
            delivery.min(Duration::from_secs(30)).as_millis().to_string(),
        )
        // Find a new leader fast: the RTO should be Kafka's, not the
        // client's backoff.
        .set("retry.backoff.ms", "20")
        .set("retry.backoff.max.ms", "200")
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "200")
        .set("topic.metadata.refresh.interval.ms", "5000")
        .set("socket.connection.setup.timeout.ms", "2000")
        .set("log_level", "3");
    if let Some(r) = p.retries {
        c.set("retries", r.to_string());
    }
    // librdkafka's own debug contexts (e.g. "msg,eos,topic,broker"), for
    // diagnosing a client rather than the store; shown with
    // FIREDRILL_LOG=librdkafka=debug.
    if let Ok(d) = std::env::var("FIREDRILL_KAFKA_DEBUG") {
        c.set("debug", d).set("log_level", "7");
    }
    if p.acks == Acks::Zero {
        // librdkafka refuses idempotence without acks=all.
        c.set("enable.idempotence", "false");
    }
    c.create_with_context(Reports).map_err(|e| e.to_string())
}

/// Sends one record and waits for its report until `limit`.
pub async fn send(
    prod: &ThreadedProducer<Reports>,
    topic: &str,
    partition: Option<i32>,
    key: &[u8],
    payload: &[u8],
    limit: Duration,
) -> Delivered {
    let (tx, rx) = oneshot::channel();
    let mut rec = BaseRecord::with_opaque_to(topic, Box::new(tx))
        .key(key)
        .payload(payload);
    if let Some(p) = partition {
        rec = rec.partition(p);
    }
    if let Err((e, _)) = prod.send(rec) {
        // Never enqueued (queue full, unknown partition): not sent.
        return Delivered {
            outcome: Outcome::Fail,
            partition: -1,
            offset: -1,
            error: Some(e.to_string()),
        };
    }
    match tokio::time::timeout(limit, rx).await {
        Ok(Ok(d)) => d,
        // Still queued or in flight when the deadline passed: librdkafka
        // may deliver it later.
        _ => Delivered {
            outcome: Outcome::Unknown,
            partition: -1,
            offset: -1,
            error: Some("no delivery report by the deadline".into()),
        },
    }
}
