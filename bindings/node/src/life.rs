//! Closing: a store, and each core, drive, cursor or stream, can be closed; closing one closes
//! what was made from it. Waits select on it, so `close()` ends them (no promise stays pending).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;

use crate::error::{Result, closed};

/// The open/closed state of one object, and of its parents.
pub(crate) struct Life {
    what: &'static str,
    me: watch::Sender<bool>,
    parent: Option<Arc<Life>>,
}

impl Life {
    /// A new open object without a parent.
    pub(crate) fn root(what: &'static str) -> Arc<Life> {
        Arc::new(Life {
            what,
            me: watch::channel(false).0,
            parent: None,
        })
    }

    /// A new open object closed along with `self`.
    pub(crate) fn child(self: &Arc<Self>, what: &'static str) -> Arc<Life> {
        Arc::new(Life {
            what,
            me: watch::channel(false).0,
            parent: Some(self.clone()),
        })
    }

    /// Closes this object (and so its children).
    pub(crate) fn close(&self) {
        self.me.send_replace(true);
    }

    /// True once this object or a parent is closed.
    pub(crate) fn is_closed(&self) -> bool {
        *self.me.borrow() || self.parent.as_ref().is_some_and(|p| p.is_closed())
    }

    /// `ECLOSED` if closed.
    pub(crate) fn check(&self) -> Result<()> {
        match self.closed_by() {
            Some(what) => Err(closed(what)),
            None => Ok(()),
        }
    }

    fn closed_by(&self) -> Option<&'static str> {
        match &self.parent {
            Some(p) if p.is_closed() => p.closed_by(),
            _ if *self.me.borrow() => Some(self.what),
            _ => None,
        }
    }

    /// Resolves when this object or a parent closes.
    pub(crate) fn wait(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let mut rx = self.me.subscribe();
        let parent = self.parent.as_ref().map(|p| p.wait());
        Box::pin(async move {
            let me = async move {
                // a dropped sender means the object is gone: as good as closed
                let _ = rx.wait_for(|c| *c).await;
            };
            match parent {
                None => me.await,
                Some(p) => tokio::select! {
                    () = me => {},
                    () = p => {},
                },
            }
        })
    }

    /// Runs `fut` unless this object closes first (`ECLOSED`).
    pub(crate) async fn guard<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        self.check()?;
        let what = self.what;
        tokio::select! {
            r = fut => r,
            () = self.wait() => Err(self.closed_by().map_or_else(|| closed(what), closed)),
        }
    }
}
