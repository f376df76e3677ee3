//! A cached document fetched from an identity provider (discovery document, JWKS) with single-flight
//! refreshes: no lock is held across network I/O; concurrent callers that find no fresh value share one
//! request (the first starts it, the others await the same future); a failed fetch is remembered for
//! [`FAILURE_TTL`], so while an IdP hangs or is down each caller waits for at most one timeout and later
//! callers are answered at once. A stale value (fetched earlier) is served when a refresh fails.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use super::ProviderError;

/// How long a failed fetch answers callers before the next attempt.
pub const FAILURE_TTL: Duration = Duration::from_secs(5);

type Flight<T> = Shared<BoxFuture<'static, Result<T, ProviderError>>>;

struct State<T: Clone> {
    value: Option<(T, Instant)>,
    failure: Option<(ProviderError, Instant)>,
    in_flight: Option<Flight<T>>,
}

pub struct SharedFetch<T: Clone> {
    state: Mutex<State<T>>,
}

impl<T: Clone> Default for SharedFetch<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                value: None,
                failure: None,
                in_flight: None,
            }),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> SharedFetch<T> {
    /// The cached value when younger than `max_age` (and `force` is false); otherwise the result of one
    /// shared fetch made by `fetch` (started by the first caller, joined by the others).
    pub async fn get<F, Fut>(
        &self,
        max_age: Duration,
        force: bool,
        fetch: F,
    ) -> Result<T, ProviderError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>> + Send + 'static,
    {
        let flight = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if !force
                && let Some((v, at)) = &s.value
                && at.elapsed() < max_age
            {
                return Ok(v.clone());
            }
            match &s.in_flight {
                Some(f) => f.clone(),
                None => {
                    if let Some((e, at)) = &s.failure
                        && at.elapsed() < FAILURE_TTL
                    {
                        return match &s.value {
                            Some((v, _)) if !force => Ok(v.clone()),
                            _ => Err(e.clone()),
                        };
                    }
                    let f = fetch().boxed().shared();
                    s.in_flight = Some(f.clone());
                    f
                }
            }
        };
        let result = flight.clone().await;
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // The first caller back records the result; later ones of the same flight find it recorded.
        if s.in_flight.as_ref().is_some_and(|f| f.ptr_eq(&flight)) {
            s.in_flight = None;
            match &result {
                Ok(v) => {
                    s.value = Some((v.clone(), Instant::now()));
                    s.failure = None;
                }
                Err(e) => s.failure = Some((e.clone(), Instant::now())),
            }
        }
        match result {
            Ok(v) => Ok(v),
            Err(e) => match &s.value {
                Some((v, _)) if !force => {
                    tracing::warn!(
                        reason = e.code(),
                        "refresh from the identity provider failed; using the cached document"
                    );
                    Ok(v.clone())
                }
                _ => Err(e),
            },
        }
    }

    /// The result of the fetch in flight, if there is one (None otherwise or when it failed).
    pub async fn in_flight(&self) -> Option<T> {
        let flight = {
            let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.in_flight.clone()
        }?;
        flight.await.ok()
    }

    /// The cached value, fresh or not, without fetching.
    pub fn cached(&self) -> Option<T> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.value.as_ref().map(|(v, _)| v.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch_and_a_failure_is_remembered() {
        let cache: Arc<SharedFetch<u32>> = Arc::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = vec![];
        for _ in 0..20 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get(Duration::from_secs(60), false, || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Err::<u32, _>(ProviderError::Discovery("hangs".into()))
                    })
                    .await
            }));
        }
        let started = Instant::now();
        for t in tasks {
            assert!(t.await.unwrap().is_err());
        }
        assert!(started.elapsed() < Duration::from_millis(900));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "one request for all callers"
        );
        // Remembered: no new request within FAILURE_TTL.
        let c = calls.clone();
        let r = cache
            .get(Duration::from_secs(60), false, || async move {
                c.fetch_add(1, Ordering::SeqCst);
                Ok(1)
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_fresh_value_is_served_and_a_stale_one_survives_a_failed_refresh() {
        let cache: SharedFetch<u32> = SharedFetch::default();
        assert_eq!(
            cache
                .get(Duration::from_secs(60), false, || async { Ok(7) })
                .await
                .unwrap(),
            7
        );
        assert_eq!(
            cache
                .get(Duration::from_secs(60), false, || async { Ok(8) })
                .await
                .unwrap(),
            7
        );
        let r = cache
            .get(Duration::ZERO, false, || async {
                Err(ProviderError::Discovery("down".into()))
            })
            .await;
        assert_eq!(r.unwrap(), 7, "stale beats nothing");
        assert!(
            cache
                .get(Duration::ZERO, true, || async { Ok(9) })
                .await
                .is_err(),
            "forced: the failure"
        );
    }
}
