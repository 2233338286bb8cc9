//! The subscriber: this node's control channel, read by a task of its own that hands each
//! message to the node's inbox and says when a lost subscription is back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use redis::{FromRedisValue, PushKind};

use super::breaker::Breaker;
use super::link::{Conn, Link};
use super::RedisBus;
use crate::bus::{BusError, Control, Inbox};

impl RedisBus {
    /// Connects the subscriber, subscribes to this node's channel and starts handing its
    /// messages to `inbox`.
    pub(super) async fn subscribe_channel(&self, inbox: Arc<dyn Inbox>) -> Result<(), BusError> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        // A breaker of its own: the subscriber's state says nothing to request paths.
        let link = Link::new(
            self.target.connect(self.options.timeout, Some(tx)).await?,
            self.options.timeout,
            Arc::new(Breaker::default()),
        );
        let channel = self.channel(&self.node);
        let subscribing = async {
            match &link.conn {
                Conn::Single(c) => c.clone().subscribe(&channel).await,
                Conn::Cluster(c) => c.clone().ssubscribe(&channel).await,
            }
        };
        match tokio::time::timeout(self.options.timeout, subscribing).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(BusError::unavailable(e)),
            Err(_) => return Err(BusError::unavailable("no answer to SUBSCRIBE")),
        }
        tokio::spawn(receive(rx, inbox));
        let _ = self.subscriber.set(link);
        Ok(())
    }
}

/// Reads pushes from the subscriber connection and hands control messages to the inbox.
async fn receive(mut pushes: tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>, inbox: Arc<dyn Inbox>) {
    let lost = AtomicBool::new(false);
    while let Some(push) = pushes.recv().await {
        match push.kind {
            PushKind::Message | PushKind::SMessage => {
                let payload = push.data.get(1).and_then(|v| Vec::<u8>::from_redis_value(v.clone()).ok());
                if let Some(Ok(msg)) = payload.as_deref().map(serde_json::from_slice::<Control>) {
                    inbox.deliver(msg);
                } else {
                    tracing::warn!("ignoring a malformed control message");
                }
            }
            PushKind::Disconnection if !lost.swap(true, Ordering::Relaxed) => {
                tracing::warn!("bus subscription lost; reconnecting");
            }
            PushKind::Subscribe | PushKind::SSubscribe if lost.swap(false, Ordering::Relaxed) => {
                tracing::info!("bus subscription restored");
                inbox.resubscribed();
            }
            _ => {}
        }
    }
}
