//! SQS: the messages of a queue fed by a bucket's event notifications, and their deletion
//! once handled (`plan::queue` decides when).

use super::aws::{Aws, unavailable};
use crate::posture::Fetched;

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

pub async fn delete(aws: &Aws, region: &str, url: &str, receipt: &str) -> Fetched<()> {
    aws.sqs(region)
        .delete_message()
        .queue_url(url)
        .receipt_handle(receipt)
        .send()
        .await
        .map_err(|e| unavailable("DeleteMessage", &e))?;
    Ok(())
}
