//! SQS: the messages of a queue fed by a bucket's event notifications, and their deletion
//! once handled (`plan::queue` decides when), a receive's worth in one call.

use super::aws::{Aws, unavailable};
use crate::posture::{Fetched, Unavailable};
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;

/// One message as received: what to read, and the handle that deletes it.
#[derive(Debug, Clone)]
pub struct QueueMessage {
    pub id: String,
    pub body: String,
    pub receipt: String,
}

/// Up to ten messages, waiting at most a second for the first: a run drains the queue with
/// short receives rather than holding a poller for 20 seconds.
pub async fn receive(aws: &Aws, region: &str, url: &str) -> Fetched<Vec<QueueMessage>> {
    let out = aws
        .sqs(region)
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .map_err(|e| unavailable("ReceiveMessage", &e))?;
    Ok(out
        .messages()
        .iter()
        .filter_map(|m| {
            Some(QueueMessage {
                id: m.message_id().unwrap_or_default().to_string(),
                body: m.body()?.to_string(),
                receipt: m.receipt_handle()?.to_string(),
            })
        })
        .collect())
}

/// Deletes up to ten messages (SQS's batch limit) in one call. `Ok`: the ones SQS could not
/// delete, each with why (they are handed out again later).
pub async fn delete_batch(
    aws: &Aws,
    region: &str,
    url: &str,
    receipts: &[&str],
) -> Fetched<Vec<Unavailable>> {
    let mut entries = Vec::with_capacity(receipts.len());
    for (i, receipt) in receipts.iter().enumerate() {
        entries.push(
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(*receipt)
                .build()
                .map_err(|e| Unavailable::new(format!("DeleteMessageBatch: {e}")))?,
        );
    }
    let out = aws
        .sqs(region)
        .delete_message_batch()
        .queue_url(url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|e| unavailable("DeleteMessageBatch", &e))?;
    Ok(out
        .failed()
        .iter()
        .map(|f| {
            Unavailable::api_failure(format!(
                "DeleteMessageBatch: message {} of the batch: {}: {}",
                f.id(),
                f.code(),
                f.message().unwrap_or_default()
            ))
        })
        .collect())
}
