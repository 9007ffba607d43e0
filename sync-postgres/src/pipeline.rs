//! Sending several statements in one flight. tokio-postgres sends a request
//! when its future is first polled and matches answers in order, so polling
//! every future once, in order, before waiting for any puts them all on the
//! wire together: one round trip for the lot instead of one each. A
//! statement that fails aborts the transaction, and PostgreSQL answers every
//! later one of the flight with an error (a `COMMIT` with a rollback), so
//! nothing after a failure takes effect.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;

use futures_util::future::{MaybeDone, maybe_done};
use tokio_postgres::Row;

/// One request of a flight: a statement's rows (none for `execute`-like
/// ones), or whatever else a request answers with (a prepared statement).
pub(crate) type Step<'a, T = Vec<Row>> =
    Pin<Box<dyn Future<Output = Result<T, tokio_postgres::Error>> + Send + 'a>>;

/// Boxes a statement's future (its rows, none for `execute`-like ones).
pub(crate) fn step<'a, T>(
    fut: impl Future<Output = Result<T, tokio_postgres::Error>> + Send + 'a,
) -> Step<'a, T> {
    Box::pin(fut)
}

/// Boxes a simple statement without rows (`BEGIN`, `COMMIT`).
pub(crate) fn simple<'a>(client: &'a tokio_postgres::Client, sql: &'a str) -> Step<'a> {
    Box::pin(async move { client.batch_execute(sql).await.map(|()| Vec::new()) })
}

/// Sends `steps` in order in one flight and returns their answers in order,
/// or the first error.
pub(crate) async fn run<T>(steps: Vec<Step<'_, T>>) -> Result<Vec<T>, tokio_postgres::Error> {
    let mut steps: Vec<Pin<Box<MaybeDone<Step<'_, T>>>>> =
        steps.into_iter().map(|s| Box::pin(maybe_done(s))).collect();
    // The first poll of each sends its request; order is the wire order. A
    // request that fails at once without an answer from the server failed
    // before reaching it (it could not be encoded, or the connection is
    // gone): nothing after it is sent, so a `COMMIT` never follows a
    // statement PostgreSQL did not see. The transaction is left open; the
    // caller drops the connection. A request that PostgreSQL already
    // answered with an error (a busy thread can be paused between sending
    // and its first look at the answer) was seen: the rest is sent as
    // usual, and the closing `COMMIT` ends the aborted transaction.
    let sent = poll_fn(|cx| {
        for (i, s) in steps.iter_mut().enumerate() {
            if s.as_mut().poll(cx).is_ready()
                && s.as_mut()
                    .output_mut()
                    .is_some_and(|r| r.as_ref().is_err_and(|e| e.as_db_error().is_none()))
            {
                return Poll::Ready(i);
            }
        }
        Poll::Ready(steps.len())
    })
    .await;
    if let Some(failed) = steps.get_mut(sent)
        && let Some(Err(e)) = failed.as_mut().take_output()
    {
        // The first error in wire order is the one to report: a statement
        // seen failed here may only be answering `25P02` (transaction
        // aborted) because an earlier one failed and its answer was not in
        // yet when that one was polled. The earlier ones were all sent.
        for earlier in steps.iter_mut().take(sent) {
            earlier.as_mut().await;
            if let Some(Err(first)) = earlier.as_mut().take_output() {
                return Err(first);
            }
        }
        return Err(e);
    }
    let mut out = Vec::with_capacity(steps.len());
    for mut s in steps {
        s.as_mut().await;
        // Awaited just above, and taken only here: always there.
        if let Some(answer) = s.as_mut().take_output() {
            out.push(answer?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::task::Context;

    use futures_util::task::noop_waker;

    use super::*;

    /// A statement whose answer is already in when it is first polled, as
    /// when the polling thread was paused between sending it and looking
    /// for the answer.
    fn answered_at_once<'a>(client: &'a tokio_postgres::Client, sql: &'a str) -> Step<'a> {
        let mut inner = Box::pin(async move { client.query(sql, &[]).await });
        Box::pin(poll_fn(move |_| {
            let waker = noop_waker();
            let mut cx = Context::from_waker(&waker);
            loop {
                if let Poll::Ready(r) = inner.as_mut().poll(&mut cx) {
                    return Poll::Ready(r);
                }
                std::thread::yield_now();
            }
        }))
    }

    /// A statement PostgreSQL refused before the flight's later requests
    /// were sent still gets the flight's `COMMIT` after it, which ends the
    /// aborted transaction: the connection is usable at once, not stuck
    /// answering `25P02` to everything.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_error_answered_before_the_flight_is_sent_still_ends_the_transaction() {
        let Some(client) = crate::test_db::connect().await else {
            return;
        };
        let steps = vec![
            simple(&client, "BEGIN"),
            answered_at_once(&client, "SELECT 1 / 0"),
            simple(&client, "COMMIT"),
        ];
        let e = run(steps).await.expect_err("division by zero");
        let code = e.as_db_error().map(|d| d.code().code().to_owned());
        assert_eq!(code.as_deref(), Some("22012"), "{e}");
        let after = client.query("SELECT 1", &[]).await;
        assert!(after.is_ok(), "transaction left open: {after:?}");
    }
}
