//! The responses a server connection still owes: one entry per message sent (or answered by shardgate
//! itself), in order. Pure bookkeeping that decides, for each backend message, whether the client sees
//! it, and tells when every Sync has been answered. The backend answers messages in order (55.2.3), and
//! after an error in the extended protocol skips everything up to the next Sync.

use std::collections::VecDeque;

use crate::backend::prepared::Prepared;

use crate::protocol::backend::ErrorFields;

/// A reply shardgate gives in the server's place, at its position in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Synthetic {
    ParseComplete,
    BindComplete,
    /// A Describe of a portal that returns no rows (a COPY's).
    NoData,
    CloseComplete,
    /// The end of a command shardgate answered itself (`SET shardgate.shard`).
    CommandComplete(&'static str),
    Error(ErrorFields),
    /// With the transaction status current when it is sent.
    ReadyForQuery,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pending {
    /// A simple Query or FunctionCall; answered through ReadyForQuery.
    Query,
    Sync,
    /// A client's Parse; `id` is the global statement it prepares, if named.
    Parse {
        id: Option<u64>,
    },
    /// A Parse shardgate added so the server has a statement the client prepared elsewhere; its
    /// ParseComplete is not the client's.
    InjectedParse {
        id: u64,
    },
    /// A Close shardgate sent for a statement the server had least recently used, to make room, or
    /// for a stale copy of the statement it prepares next.
    InjectedClose {
        id: u64,
    },
    Bind,
    Describe,
    Execute,
    Close,
    /// Answered by shardgate, not sent.
    Synthetic(Synthetic),
    /// A query shardgate sent on its own (SETs aligning session parameters, a held BEGIN); the
    /// client sees none of its replies.
    InjectedQuery,
    /// The query that makes a held BEGIN's transaction the client's (its modes and settings, see
    /// `HeldBegin`): as an injected query, but an error it meets is kept for the client's next.
    HeldSettings,
    /// A Sync shardgate sent to end a batch of prepares before the client moves to another shard; its
    /// ReadyForQuery is not the client's.
    InjectedSync,
    /// A Parse, Bind and Execute shardgate sent to raise a refusal inside the server's transaction (so
    /// that it aborts as PostgreSQL's would); only the ErrorResponse is the client's.
    Raise,
}

impl Pending {
    /// A Query or Sync, the client's or shardgate's: the server answers it with ReadyForQuery.
    fn ends_in_ready(&self) -> bool {
        matches!(
            self,
            Pending::Query
                | Pending::Sync
                | Pending::InjectedSync
                | Pending::InjectedQuery
                | Pending::HeldSettings
        )
    }

    /// A Query or Sync shardgate sent: its replies, ReadyForQuery too, are not the client's.
    fn is_own_ending(&self) -> bool {
        matches!(
            self,
            Pending::InjectedSync | Pending::InjectedQuery | Pending::HeldSettings
        )
    }
}

/// What to do with one backend message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Forward,
    Swallow,
    /// A ReadyForQuery: forward it unless it ends an injected query.
    Ready {
        forward: bool,
    },
    /// An error of held settings: the client's, in place of the 25P02 its next statement meets.
    Keep,
}

/// What the server was sent since its last Sync or Query: the extended protocol's implicit
/// transaction, which the next Sync ends (55.2.3). A server in an open batch is the client's until then.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Batch {
    #[default]
    Synced,
    /// Only Parse, Describe or Close: nothing ran, and a Sync may end it without the client knowing.
    Prepared,
    /// A Bind or Execute was sent: what the batch did commits or rolls back at the client's Sync, on
    /// this server.
    Open,
    /// An error made the server skip every message up to a Sync the client has yet to send; the
    /// client's messages until then are to be skipped too.
    Failed,
}

#[derive(Debug, Default)]
pub(crate) struct Tracker {
    queue: VecDeque<Pending>,
    batch: Batch,
}

impl Tracker {
    pub(crate) fn push(&mut self, p: Pending) {
        self.batch = match &p {
            Pending::Query | Pending::Sync | Pending::InjectedSync => Batch::Synced,
            Pending::Parse { .. }
            | Pending::InjectedParse { .. }
            | Pending::Describe
            | Pending::Close
            | Pending::InjectedClose { .. } => self.batch.max(Batch::Prepared),
            Pending::Bind | Pending::Execute | Pending::Raise => self.batch.max(Batch::Open),
            Pending::Synthetic(_) | Pending::InjectedQuery | Pending::HeldSettings => self.batch,
        };
        self.queue.push_back(p);
    }

    /// What the server was sent since its last Sync.
    pub(crate) fn batch(&self) -> Batch {
        self.batch
    }

    /// True when the server owes nothing and shardgate has nothing queued.
    pub(crate) fn idle(&self) -> bool {
        self.queue.is_empty()
    }

    /// True when the server owes a ReadyForQuery: its replies come without more client input.
    pub(crate) fn owes_ready(&self) -> bool {
        self.queue.iter().rev().any(Pending::ends_in_ready)
    }

    /// The global statement the next ParseComplete answers for, if it prepares a named one.
    pub(crate) fn head_parse(&self) -> Option<u64> {
        match self.queue.front() {
            Some(Pending::Parse { id: Some(id) } | Pending::InjectedParse { id }) => Some(*id),
            _ => None,
        }
    }

    /// Whether a Close of statement `id` is still to come in what was sent (it was let go to make
    /// room while its Parse was in flight).
    pub(crate) fn closes_later(&self, id: u64) -> bool {
        self.queue
            .iter()
            .any(|p| matches!(p, Pending::InjectedClose { id: c } if *c == id))
    }

    /// The synthetic replies now at the head, which are due before anything the server sends next.
    pub(crate) fn pop_synthetic(&mut self) -> Option<Synthetic> {
        match self.queue.front() {
            Some(Pending::Synthetic(_)) => match self.queue.pop_front() {
                Some(Pending::Synthetic(s)) => Some(s),
                _ => None,
            },
            _ => None,
        }
    }

    /// Accounts for one backend message by its tag. `prepared` is the server's set of global statement
    /// ids: a Parse the server skipped or refused is taken out of it.
    pub(crate) fn on_backend(&mut self, tag: u8, prepared: &mut Prepared) -> Verdict {
        let head = self.queue.front();
        if let Some(p) = head.filter(|p| p.is_own_ending()) {
            return match tag {
                b'Z' => {
                    self.queue.pop_front();
                    Verdict::Ready { forward: false }
                }
                b'E' if *p == Pending::HeldSettings => Verdict::Keep,
                _ => Verdict::Swallow,
            };
        }
        if matches!(head, Some(Pending::Raise)) && matches!(tag, b'1' | b'2') {
            return Verdict::Swallow;
        }
        match tag {
            b'1' => match self.queue.pop_front() {
                Some(Pending::InjectedParse { .. }) => Verdict::Swallow,
                _ => Verdict::Forward,
            },
            b'3' => match self.queue.pop_front() {
                Some(Pending::InjectedClose { .. }) => Verdict::Swallow,
                _ => Verdict::Forward,
            },
            b'2' | b'n' | b's' => {
                self.queue.pop_front();
                Verdict::Forward
            }
            b'T' | b'C' | b'I' => {
                if matches!(head, Some(Pending::Describe | Pending::Execute)) {
                    self.queue.pop_front();
                }
                Verdict::Forward
            }
            b'E' => {
                if !matches!(head, Some(Pending::Query | Pending::Sync) | None) {
                    self.skip_to_sync(prepared);
                }
                Verdict::Forward
            }
            b'Z' => {
                // Everything before the Sync was answered or skipped; drop what remains of it. The
                // ReadyForQuery is the client's unless it ends shardgate's own query or Sync.
                let ends = self.queue.iter().position(Pending::ends_in_ready);
                self.drop_skipped(ends.unwrap_or(self.queue.len()), prepared);
                let ended = self.queue.pop_front();
                let forward = !ended.as_ref().is_some_and(Pending::is_own_ending);
                Verdict::Ready { forward }
            }
            _ => Verdict::Forward,
        }
    }

    /// After an extended-protocol error the server ignores every message up to the next Sync, simple
    /// Queries and function calls too (55.2.3). When that Sync is still to come, the batch has failed.
    fn skip_to_sync(&mut self, prepared: &mut Prepared) {
        let sync = self
            .queue
            .iter()
            .position(|p| matches!(p, Pending::Sync | Pending::InjectedSync));
        if sync.is_none() {
            self.batch = Batch::Failed;
        }
        self.drop_skipped(sync.unwrap_or(self.queue.len()), prepared);
    }

    /// Drops the first `n` entries, which the server skipped, and undoes what they did to its
    /// statements, newest first: a statement a skipped Close would have closed is the server's again,
    /// as of an unknown epoch (it may be the stale copy a skipped Parse was to replace).
    fn drop_skipped(&mut self, n: usize, prepared: &mut Prepared) {
        for p in self.queue.range(..n).rev() {
            match p {
                Pending::Parse { id: Some(id) } | Pending::InjectedParse { id } => {
                    prepared.remove(*id)
                }
                Pending::InjectedClose { id } => prepared.restore(*id),
                _ => {}
            }
        }
        self.queue.drain(..n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes `sent`, feeds `tags` and checks each verdict and the prepared set at the end.
    fn check(
        sent: Vec<Pending>,
        prepared: &[u64],
        tags: &[(u8, Verdict)],
        want_prepared: &[u64],
        want_idle: bool,
    ) {
        let mut t = Tracker::default();
        for p in sent {
            t.push(p);
        }
        let mut set = Prepared::new(100, Default::default());
        for id in prepared {
            set.add(*id);
        }
        for (tag, want) in tags {
            while t.pop_synthetic().is_some() {}
            assert_eq!(t.on_backend(*tag, &mut set), *want, "tag {}", *tag as char);
        }
        while t.pop_synthetic().is_some() {}
        let ids: std::collections::BTreeSet<u64> =
            prepared.iter().chain(want_prepared).copied().collect();
        let got: Vec<_> = ids.into_iter().filter(|id| set.contains(*id)).collect();
        assert_eq!(got, want_prepared);
        assert_eq!(t.idle(), want_idle);
    }

    use Pending::*;
    use Verdict::*;
    const READY: Verdict = Ready { forward: true };

    #[test]
    fn a_raised_refusal_shows_only_its_error() {
        check(
            vec![Parse { id: None }, Raise, Execute, Sync],
            &[],
            &[
                (b'1', Forward),
                (b'1', Swallow),
                (b'2', Swallow),
                (b'E', Forward),
                (b'Z', READY),
            ],
            &[],
            true,
        );
    }

    /// A held BEGIN opened on its server: the BEGIN's replies are swallowed, its settings' error is
    /// kept, and the client's statement is answered as sent.
    #[test]
    fn a_held_begins_settings_keep_their_error() {
        const OWN: Verdict = Ready { forward: false };
        check(
            vec![InjectedQuery, HeldSettings, Query],
            &[],
            &[
                (b'C', Swallow),
                (b'Z', OWN),
                (b'E', Keep),
                (b'Z', OWN),
                (b'E', Forward),
                (b'Z', READY),
            ],
            &[],
            true,
        );
    }

    #[test]
    fn extended_roundtrip() {
        check(
            vec![Parse { id: Some(1) }, Bind, Describe, Execute, Sync],
            &[1],
            &[
                (b'1', Forward),
                (b'2', Forward),
                (b'T', Forward),
                (b'D', Forward),
                (b'C', Forward),
                (b'Z', READY),
            ],
            &[1],
            true,
        );
    }

    #[test]
    fn injected_parse_is_swallowed() {
        check(
            vec![InjectedParse { id: 7 }, Bind, Execute, Sync],
            &[7],
            &[
                (b'1', Swallow),
                (b'2', Forward),
                (b'C', Forward),
                (b'Z', READY),
            ],
            &[7],
            true,
        );
    }

    #[test]
    fn error_skips_to_sync_and_unprepares() {
        check(
            vec![
                Parse { id: Some(1) },
                InjectedParse { id: 2 },
                Bind,
                Execute,
                Sync,
                Bind,
                Execute,
                Sync,
            ],
            &[1, 2],
            &[(b'E', Forward), (b'Z', READY)],
            &[],
            false,
        );
    }

    #[test]
    fn synthetic_after_error_is_dropped() {
        check(
            vec![Bind, Synthetic(super::Synthetic::ParseComplete), Sync],
            &[],
            &[(b'E', Forward), (b'Z', READY)],
            &[],
            true,
        );
    }

    #[test]
    fn simple_query_error_does_not_skip() {
        check(
            vec![Query, Query],
            &[],
            &[
                (b'T', Forward),
                (b'E', Forward),
                (b'Z', READY),
                (b'C', Forward),
                (b'Z', READY),
            ],
            &[],
            true,
        );
    }

    #[test]
    fn injected_query_is_invisible() {
        check(
            vec![InjectedQuery, Query],
            &[],
            &[
                (b'C', Swallow),
                (b'S', Swallow),
                (b'Z', Ready { forward: false }),
                (b'S', Forward),
                (b'Z', READY),
            ],
            &[],
            true,
        );
    }

    #[test]
    fn portal_suspended_and_empty_query() {
        check(
            vec![Execute, Execute, Sync],
            &[],
            &[(b's', Forward), (b'I', Forward), (b'Z', READY)],
            &[],
            true,
        );
    }

    /// The batch state after pushing `sent` and feeding `tags`.
    fn batch_after(sent: Vec<Pending>, tags: &[u8]) -> Batch {
        let mut t = Tracker::default();
        for p in sent {
            t.push(p);
        }
        for tag in tags {
            t.on_backend(*tag, &mut Prepared::new(100, Default::default()));
        }
        t.batch()
    }

    #[test]
    fn a_batch_is_open_from_its_bind_to_its_sync() {
        assert_eq!(
            batch_after(vec![Parse { id: None }, Describe], &[]),
            Batch::Prepared
        );
        assert_eq!(
            batch_after(vec![Parse { id: None }, Bind], &[]),
            Batch::Open
        );
        assert_eq!(batch_after(vec![Bind, Execute, Sync], &[]), Batch::Synced);
        assert_eq!(batch_after(vec![Bind, Execute, Query], &[]), Batch::Synced);
        assert_eq!(
            batch_after(vec![Describe, InjectedSync], &[]),
            Batch::Synced
        );
        // Injected queries and shardgate's own replies change nothing.
        assert_eq!(
            batch_after(vec![Parse { id: None }, InjectedQuery], &[]),
            Batch::Prepared
        );
    }

    #[test]
    fn an_error_before_the_clients_sync_keeps_the_batch_open() {
        // The server now skips to a Sync the client has yet to send.
        assert_eq!(batch_after(vec![Parse { id: None }], b"E"), Batch::Failed);
        assert_eq!(batch_after(vec![Bind, Execute], b"E"), Batch::Failed);
        // The Sync was sent: the error ends with it, and what follows it is a new batch.
        let after = batch_after(vec![Parse { id: None }, Sync, Parse { id: None }], b"E");
        assert_eq!(after, Batch::Prepared);
    }

    #[test]
    fn an_injected_sync_ends_the_servers_skipping_unseen() {
        check(
            vec![Parse { id: Some(3) }, InjectedSync],
            &[3],
            &[(b'E', Forward), (b'Z', Ready { forward: false })],
            &[],
            true,
        );
    }

    #[test]
    fn a_skipping_server_ignores_queries_up_to_the_sync() {
        check(
            vec![Bind, Execute, Query, Sync],
            &[],
            &[(b'E', Forward), (b'Z', READY)],
            &[],
            true,
        );
    }

    #[test]
    fn a_parse_left_unanswered_at_the_sync_is_not_prepared() {
        check(
            vec![Parse { id: Some(4) }, Sync],
            &[4],
            &[(b'Z', READY)],
            &[],
            true,
        );
    }

    #[test]
    fn a_skipped_close_leaves_its_statement_prepared() {
        // The server held 1 and 2; shardgate closed 1 to prepare 3 in a batch that failed first.
        check(
            vec![
                Bind,
                Execute,
                InjectedClose { id: 1 },
                InjectedParse { id: 3 },
                Bind,
                Execute,
                Sync,
            ],
            &[2, 3],
            &[(b'E', Forward), (b'Z', READY)],
            &[1, 2],
            true,
        );
    }
}
