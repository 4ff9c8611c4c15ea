//! The pool's connections a store keeps between its calls
//! ([`PostgresOptions::keep_connections`](super::PostgresOptions::keep_connections)).
//!
//! sqlx's pool tests every connection given back to it with a round trip (a `Sync`
//! message, whatever `test_before_acquire` says) before another caller can take it, so a
//! statement on a connection taken from the pool costs two round trips. A kept connection
//! goes back to the store instead, untested, and the next call sends its statement at once.
//!
//! The pool still owns every connection: the store takes them from it (lazily, when none of
//! its own is free), and gives one back to it, where the pool's checks run, whenever a call
//! ends in an error or is abandoned midway (its statement may still be in flight), and once
//! the store has held it for [`KEEP_AT_MOST`] (so that the pool's `max_lifetime` and
//! `after_release` still apply, a little late).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool};
use tokio::sync::{Semaphore, SemaphorePermit};

/// How long the store holds one of the pool's connections before it gives it back.
const KEEP_AT_MOST: Duration = Duration::from_secs(60);

/// Up to `limit` of the pool's connections, and the calls using them.
pub(super) struct Kept {
    /// One permit per connection the store may hold: a call holds one while it runs.
    permits: Semaphore,
    /// The kept connections no call is using, the most recently used last.
    idle: Mutex<Vec<KeptConnection>>,
    /// Whether a connection can leave the pool without a task (see `Drop`).
    detachable: bool,
}

struct KeptConnection {
    conn: PoolConnection<Postgres>,
    /// When the store took it from the pool.
    taken: Instant,
}

impl Kept {
    /// Room for `limit` of `pool`'s connections (at least 1).
    pub(super) fn new(limit: usize, pool: &PgPool) -> Self {
        Kept {
            permits: Semaphore::new(limit.max(1)),
            idle: Mutex::new(Vec::with_capacity(limit)),
            detachable: pool.options().get_min_connections() == 0,
        }
    }

    /// A connection for one call: a kept one if one is free, else one from `pool` (when the
    /// store holds fewer than its limit); waits while all of the store's are in use.
    pub(super) async fn lend<'k>(&'k self, pool: &PgPool) -> Result<Lent<'k>, sqlx::Error> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        if pool.is_closed() {
            // Give the kept ones back: the pool closes them.
            drop(std::mem::take(&mut *self.lock()));
            return Err(sqlx::Error::PoolClosed);
        }
        let kept = self.lock().pop();
        let conn = match kept {
            Some(kept) => kept,
            None => KeptConnection {
                conn: pool.acquire().await?,
                taken: Instant::now(),
            },
        };
        Ok(Lent {
            kept: self,
            conn: Some(conn),
            _permit: permit,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<KeptConnection>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(PoisonError::into_inner));
        if tokio::runtime::Handle::try_current().is_ok() {
            // Back to the pool (sqlx does that on a task of its own).
            drop(idle);
            return;
        }
        // Outside a runtime sqlx cannot take a connection back (it would spawn a task, and
        // panic without a runtime; so would `detach` on a pool with `min_connections`):
        // close each one and free its place in the pool, or, where even that would spawn,
        // leave it as it is.
        for kept in idle {
            if self.detachable {
                drop(kept.conn.detach());
            } else {
                std::mem::forget(kept.conn);
            }
        }
    }
}

/// A connection lent to one call. [`done`](Self::done) keeps it for the next call; dropped
/// otherwise (an error, or the call abandoned), it goes back to the pool, which tests it,
/// and so do the idle kept ones: an error is most often the server gone or restarted,
/// which broke them all, and the pool's test weeds out the broken ones in one pass rather
/// than one failed call each.
pub(super) struct Lent<'k> {
    kept: &'k Kept,
    /// Always `Some` until `done` or drop.
    conn: Option<KeptConnection>,
    /// Released after the connection is back among the idle ones.
    _permit: SemaphorePermit<'k>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if self.conn.is_some() {
            drop(std::mem::take(&mut *self.kept.lock()));
        }
    }
}

impl Lent<'_> {
    /// The connection, to run a statement on.
    pub(super) fn connection(&mut self) -> &mut PgConnection {
        match self.conn.as_mut() {
            Some(kept) => &mut kept.conn,
            None => unreachable!("a lent connection is there until it is done or dropped"),
        }
    }

    /// The call's statement ran to its answer: keep the connection for the next call (or
    /// give it back to the pool, when the store has held it long enough).
    pub(super) fn done(mut self) {
        if let Some(conn) = self.conn.take()
            && conn.taken.elapsed() < KEEP_AT_MOST
        {
            self.kept.lock().push(conn);
        }
        // Otherwise dropped here: back to the pool.
    }
}
