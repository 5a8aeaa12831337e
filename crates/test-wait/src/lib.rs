//! Waiting, bounded: [`eventually`] (the one polling loop of the tests), the patience multiplier
//! `SLO_GATEWAY_TEST_PATIENCE`, and [`heavy`], the guard that keeps tests which start real
//! processes from running more of them at once than the machine takes.

use std::fmt::Display;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// The factor every [`eventually`] deadline is multiplied by: `SLO_GATEWAY_TEST_PATIENCE`
/// (a positive number, e.g. `3` on a slow or crowded machine), 1 when unset.
///
/// # Panics
///
/// When the variable is set to something that is not a positive number.
pub fn patience() -> f64 {
    static PATIENCE: OnceLock<f64> = OnceLock::new();
    *PATIENCE.get_or_init(|| match std::env::var("SLO_GATEWAY_TEST_PATIENCE") {
        Err(_) => 1.0,
        Ok(text) => match text.trim().parse::<f64>() {
            Ok(factor) if factor.is_finite() && factor > 0.0 => factor,
            _ => panic!("SLO_GATEWAY_TEST_PATIENCE={text:?} is not a positive number"),
        },
    })
}

/// `within` multiplied by [`patience`].
pub fn patient(within: Duration) -> Duration {
    within.mul_f64(patience())
}

/// What one attempt of an [`eventually`] check says: done (with a value) or not yet (with an
/// optional reason, reported when the wait times out).
pub trait Attempt {
    /// What the wait returns once the check succeeds.
    type Value;
    /// `Ok(value)` when done, `Err(reason)` to try again.
    fn outcome(self) -> Result<Self::Value, Option<String>>;
}

impl Attempt for bool {
    type Value = ();
    fn outcome(self) -> Result<(), Option<String>> {
        if self {
            Ok(())
        } else {
            Err(None)
        }
    }
}

impl<T> Attempt for Option<T> {
    type Value = T;
    fn outcome(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: Display> Attempt for Result<T, E> {
    type Value = T;
    fn outcome(self) -> Result<T, Option<String>> {
        self.map_err(|e| Some(e.to_string()))
    }
}

/// Polls `check` until it succeeds: `true`, `Some(value)` or `Ok(value)`.
///
/// Awaiting the result returns the value or panics after the deadline naming `what` and the
/// last `Err` of the check; [`Eventually::try_wait`] returns the failure instead. The deadline
/// ([`Eventually::within`], 10 s unless set) is multiplied by [`patience`]; the check runs
/// every [`Eventually::every`] (10 ms unless set), each attempt awaited in full and at least
/// once. Time is tokio's, so a paused clock advances through the waits.
///
/// ```ignore
/// eventually("one request upstream", || async { upstream.received().len() == 1 })
///     .within(Duration::from_secs(5))
///     .await;
/// ```
pub fn eventually<'a, F, Fut>(what: impl Into<String>, check: F) -> Eventually<'a, F>
where
    F: FnMut() -> Fut + 'a,
    Fut: Future + 'a,
    Fut::Output: Attempt,
{
    Eventually {
        what: what.into(),
        check,
        within: Duration::from_secs(10),
        every: Duration::from_millis(10),
        borrows: PhantomData,
    }
}

/// A wait built by [`eventually`]; await it, or call [`Eventually::try_wait`].
#[must_use = "an eventually does nothing until awaited"]
pub struct Eventually<'a, F> {
    what: String,
    check: F,
    within: Duration,
    every: Duration,
    borrows: PhantomData<&'a ()>,
}

impl<F> std::fmt::Debug for Eventually<'_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Eventually")
            .field("what", &self.what)
            .field("within", &self.within)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl<'a, F, Fut> Eventually<'a, F>
where
    F: FnMut() -> Fut + 'a,
    Fut: Future + 'a,
    Fut::Output: Attempt,
{
    /// Gives up after `within` (times [`patience`]).
    pub fn within(mut self, within: Duration) -> Self {
        self.within = within;
        self
    }

    /// Checks every `every`.
    pub fn every(mut self, every: Duration) -> Self {
        self.every = every;
        self
    }

    /// Polls until the check succeeds (its value) or the deadline passes (a message naming what
    /// was awaited, the deadline and the check's last reason).
    pub async fn try_wait(mut self) -> Result<<Fut::Output as Attempt>::Value, String> {
        let within = patient(self.within);
        let deadline = Instant::now() + within;
        loop {
            let reason = match (self.check)().await.outcome() {
                Ok(value) => return Ok(value),
                Err(reason) => reason,
            };
            if Instant::now() >= deadline {
                let mut message = format!("timed out after {within:?} waiting for {}", self.what);
                if let Some(reason) = reason {
                    message.push_str(": ");
                    message.push_str(&reason);
                }
                return Err(message);
            }
            tokio::time::sleep(self.every).await;
        }
    }
}

impl<'a, F, Fut> IntoFuture for Eventually<'a, F>
where
    F: FnMut() -> Fut + 'a,
    Fut: Future + 'a,
    Fut::Output: Attempt,
    <Fut::Output as Attempt>::Value: 'a,
{
    type Output = <Fut::Output as Attempt>::Value;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            match self.try_wait().await {
                Ok(value) => value,
                Err(message) => panic!("{message}"),
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Heavy tests
// ---------------------------------------------------------------------------------------------

/// How many [`heavy`] slots there are: `SLO_GATEWAY_TEST_HEAVY`, 10 when unset. Tests whose
/// processes mostly wait on the clock (pipelines through outages, the twin) use a few percent
/// of a core: ten of them side by side kept a 2-core machine under a tenth busy.
fn heavy_slots() -> u32 {
    static SLOTS: OnceLock<u32> = OnceLock::new();
    *SLOTS.get_or_init(|| match std::env::var("SLO_GATEWAY_TEST_HEAVY") {
        Err(_) => 10,
        Ok(text) => match text.trim().parse::<u32>() {
            Ok(n) if n > 0 => n,
            _ => panic!("SLO_GATEWAY_TEST_HEAVY={text:?} is not a positive whole number"),
        },
    })
}

fn heavy_semaphore() -> &'static Semaphore {
    static HEAVY: OnceLock<Semaphore> = OnceLock::new();
    HEAVY.get_or_init(|| Semaphore::new(heavy_slots() as usize))
}

/// One CPU-bound test at a time, whatever the slots.
fn cpu_semaphore() -> &'static Semaphore {
    static CPU: Semaphore = Semaphore::const_new(1);
    &CPU
}

/// How much of the machine a heavy test takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// Real processes that mostly wait on the clock (a pipeline, Prometheus, Chromium, the
    /// landscape twin: its two dozen processes use about a twentieth of a core): one slot.
    Processes,
    /// Processes that keep the cores busy for the whole test (a 100,000-series explosion
    /// through debug builds): one slot and the one CPU turn, so two of them never share the
    /// cores.
    Cpu,
}

/// What [`heavy`] hands out: the slot (and the CPU turn) until dropped.
#[derive(Debug)]
#[must_use = "the slot is given back when this is dropped"]
pub struct HeavySlot {
    _slot: SemaphorePermit<'static>,
    _cpu: Option<SemaphorePermit<'static>>,
}

/// Waits for a slot for a test that starts real processes and holds it until dropped: at most
/// `SLO_GATEWAY_TEST_HEAVY` (10 unless set) such tests at once, of them one CPU-bound. Light
/// tests do not take slots and run beside. The slots are fair (first come, first served) and a
/// failing test gives its slot back when it unwinds.
pub async fn heavy(load: Load) -> HeavySlot {
    // The CPU turn first: a CPU-bound test waiting for it holds no slot meanwhile.
    let cpu = match load {
        Load::Processes => None,
        Load::Cpu => Some(cpu_semaphore().acquire().await.expect("never closed")),
    };
    let slot = heavy_semaphore()
        .acquire()
        .await
        .expect("the heavy-test semaphore is never closed");
    HeavySlot {
        _slot: slot,
        _cpu: cpu,
    }
}

/// [`heavy`] for a test without a runtime (a plain `#[test]`).
pub fn heavy_blocking(load: Load) -> HeavySlot {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime")
        .block_on(heavy(load))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn cpu_bound_tests_take_turns_and_process_tests_run_beside() {
        let first = heavy(Load::Cpu).await;
        let beside = tokio::time::timeout(Duration::from_secs(5), heavy(Load::Processes)).await;
        assert!(beside.is_ok(), "a process test runs beside a CPU-bound one");
        let second = tokio::time::timeout(Duration::from_millis(100), heavy(Load::Cpu)).await;
        assert!(
            second.is_err(),
            "a second CPU-bound test waits for the first"
        );
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), heavy(Load::Cpu)).await;
        assert!(second.is_ok(), "and runs once the first is done");
    }

    #[tokio::test(start_paused = true)]
    async fn returns_the_value_once_the_check_succeeds() {
        let start = Instant::now();
        let attempts = Cell::new(0);
        let value = eventually("the third attempt", || {
            attempts.set(attempts.get() + 1);
            std::future::ready((attempts.get() >= 3).then_some(attempts.get()))
        })
        .every(Duration::from_secs(1))
        .await;
        assert_eq!(value, 3);
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(2),
            "two waits of `every` on tokio's clock"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_naming_what_was_awaited_and_the_last_reason() {
        let start = Instant::now();
        let error = eventually("a ready upstream", || async {
            Err::<(), _>("connection refused")
        })
        .within(Duration::from_secs(5))
        .every(Duration::from_secs(1))
        .try_wait()
        .await
        .unwrap_err();
        assert!(
            error.contains("waiting for a ready upstream: connection refused"),
            "{error}"
        );
        assert!(
            start.elapsed() >= patient(Duration::from_secs(5)),
            "gave up at the deadline, not before"
        );
    }
}
