//! The driver's token requests (docs/DESIGN.md, "Retries", "Discovery"):
//! an attempt begins, finds its token endpoint (the stored metadata copy or
//! a metadata GET), signs, sends, reads the answer, and ends in a token, a
//! retry or a failure, as the [`RetryBudget`] says.

use super::retry::{RetryBudget, Step};
use super::{
    issuer_to_ask, unreachable_phase, Awaiting, Driver, Effect, End, Event, Parts, Phase, Role,
    TokenSource, Wait,
};
use crate::clock::Now;
use crate::config::Endpoint;
use crate::discovery;
use crate::error::TokenError;
use crate::request::token_request;
use crate::response::{read_answer, Received, TokenResponse};
use crate::schedule::hold_back_ms;
use crate::shared;

impl Driver {
    #[inline(never)]
    pub(super) fn begin_attempt(&mut self, c: &mut Parts<'_>, now: Now) -> Phase {
        let budget = match &mut self.budget {
            Some(budget) => budget,
            None => {
                c.state.fetching();
                let secret = c.config.auth.secret();
                let redactor = c.state.redactor(&c.config.identity.client_id, secret);
                self.events.push(Event::FetchStart { at: now.wall });
                self.budget
                    .insert(RetryBudget::new(c.config, redactor, now))
            }
        };
        self.attempt_deadline = now.mono + budget.begin_attempt(now);
        self.stale_metadata = false;
        Phase::Endpoint
    }

    /// The token endpoint of this attempt: `tokenUrl`, or the one the
    /// issuer's metadata names (docs/DESIGN.md, "Discovery"); then sign or send.
    #[inline(never)]
    pub(super) fn endpoint(&mut self, c: &mut Parts<'_>, now: Now) -> Phase {
        if c.issuer_to_ask(now.wall).is_some() && !self.stale_metadata {
            return match self.role != Role::Alone && !self.metadata_read {
                true => Phase::ReadMetadata,
                false => Phase::Discover { location: 0 },
            };
        }
        let token_url = match (&c.config.identity.endpoint, c.metadata.as_deref()) {
            (Endpoint::Token(url), _) => url.clone(),
            (Endpoint::Issuer(_), Some(metadata)) => {
                if let Err(error) = metadata.check_method(c.config.auth.name()) {
                    return self.failed(error, None); // before anything is sent
                }
                metadata.token_endpoint(c.config.mutual_tls).to_owned()
            }
            (Endpoint::Issuer(_), None) => return unreachable_phase(),
        };
        match (c.config.asked, c.config.auth.jwt().is_some()) {
            (Some(_), _) => Phase::Ask {
                token_url,
                again: None,
            },
            (None, true) => Phase::Sign { token_url },
            (None, false) => Phase::Send {
                request: token_request(c.config, &token_url, None),
            },
        }
    }

    /// The metadata GET of `location`, or the phase that follows when there is none.
    #[inline(never)]
    pub(super) fn discover(
        &mut self,
        c: &mut Parts<'_>,
        now: Now,
        location: usize,
        rand: f64,
    ) -> Result<Effect, Box<Phase>> {
        let Endpoint::Issuer(issuer) = &c.config.identity.endpoint else {
            return Err(Box::new(unreachable_phase()));
        };
        let url = discovery::locations(issuer)
            .get(location)
            .and_then(|l| (c.parse_url)(l));
        let Some(url) = url else {
            let error = TokenError::config("issuer is not a valid absolute URL");
            return Err(Box::new(self.finish_attempt(c, now, Err(error), rand)));
        };
        self.request = Some(discovery::request(url));
        let timeout_ms = self.time_left(now);
        Ok(self.wait_for(Awaiting::Metadata { location }, Effect::Send { timeout_ms }))
    }

    #[inline(never)]
    pub(super) fn after_metadata(
        &mut self,
        c: &mut Parts<'_>,
        now: Now,
        location: usize,
        answer: Result<Received, TokenError>,
        rand: f64,
    ) -> Phase {
        let issuer = c.issuer_to_ask(now.wall).unwrap_or_default().to_owned();
        let read = answer.and_then(|a| discovery::read(&a, &issuer, now.wall, c.parse_url));
        match read {
            Ok(Some(metadata)) => {
                let copy = metadata.to_copy();
                *c.metadata = Some(Box::new(metadata));
                match self.role {
                    Role::Alone => Phase::Endpoint,
                    _ => Phase::WriteMetadata { copy },
                }
            }
            Ok(None) if location + 1 < discovery::locations(&issuer).len() => Phase::Discover {
                location: location + 1,
            },
            Ok(None) => {
                let error = TokenError::config(
                    "the issuer publishes no metadata (neither /.well-known/openid-configuration \
                     nor /.well-known/oauth-authorization-server)",
                );
                self.finish_attempt(c, now, Err(error), rand)
            }
            // While the issuer cannot answer, the last copy serves a day more at most.
            Err(error)
                if error.retryable
                    && c.metadata
                        .as_ref()
                        .is_some_and(|m| now.wall < m.until + discovery::MAX_KEEP_MS) =>
            {
                self.stale_metadata = true;
                Phase::Endpoint
            }
            Err(error) => self.finish_attempt(c, now, Err(error), rand),
        }
    }

    /// The assertion of the token request to `token_url`, to sign.
    #[inline(never)]
    pub(super) fn sign(&mut self, c: &Parts<'_>, token_url: String) -> Effect {
        let audience = c.config.auth.jwt().and_then(|jwt| jwt.audience.clone());
        self.audience = Some(audience.unwrap_or_else(|| token_url.clone()));
        self.wait_for(Awaiting::Signature { token_url }, Effect::Sign)
    }

    /// The assertion is signed: the token request carries it.
    #[inline(never)]
    pub(super) fn signed(&mut self, c: &Parts<'_>, token_url: &str, assertion: &str) -> Phase {
        if let Some(budget) = self.budget.as_mut() {
            budget.also_redact(assertion);
        }
        let request = token_request(c.config, token_url, Some(assertion));
        Phase::Send { request }
    }

    /// The token endpoint answered (or did not).
    #[inline(never)]
    pub(super) fn answered(
        &mut self,
        c: &mut Parts<'_>,
        now: Now,
        answer: Result<Received, TokenError>,
        rand: f64,
    ) -> Phase {
        let token = answer.and_then(|a| read_answer(&a.token_answer(), now.wall));
        if let Err(refused) = &token {
            if let Some(ask) = self.ask_again(c, refused) {
                return ask; // a rotated secret (credential.rs)
            }
        }
        self.finish_attempt(c, now, token, rand)
    }

    /// What is left of this attempt's time, at least 1 ms.
    pub(super) fn time_left(&self, now: Now) -> f64 {
        (self.attempt_deadline - now.mono).max(1.0)
    }

    /// An attempt's outcome: the token, a retry, or the end.
    #[inline(never)]
    pub(super) fn finish_attempt(
        &mut self,
        c: &mut Parts<'_>,
        now: Now,
        outcome: Result<TokenResponse, TokenError>,
        rand: f64,
    ) -> Phase {
        let one_attempt = c.state.one_attempt(now);
        let Some(budget) = self.budget.as_mut() else {
            return unreachable_phase();
        };
        let attempt = budget.attempts();
        match budget.finish_attempt(now, outcome, one_attempt, rand) {
            Step::Done { token, sent_at } => {
                let lifetime_seconds = token.expires_in;
                match c.state.issued(now, token, sent_at, rand) {
                    Ok(record) => {
                        self.events.push(Event::FetchOk {
                            at: now.wall,
                            lifetime_seconds,
                            attempts: attempt,
                        });
                        let mut steps = Vec::new();
                        if matches!(self.role, Role::Holder | Role::Unleased) {
                            steps.push(Effect::WriteStore {
                                record: record.clone(),
                            });
                        }
                        if self.role == Role::Holder {
                            steps.push(Effect::ReleaseLease);
                        }
                        Phase::Ending {
                            steps,
                            end: End::Token(record, TokenSource::Network),
                        }
                    }
                    Err(error) => self.failed(error, Some((now, attempt, rand))),
                }
            }
            Step::Retry { delay_ms, error } => {
                self.events.push(Event::error(now, &error, attempt));
                self.events.push(Event::Retry {
                    at: now.wall,
                    delay_ms,
                    attempt,
                });
                match self.role {
                    Role::Holder => Phase::Renew { delay_ms },
                    _ => Phase::Sleep {
                        ms: delay_ms,
                        why: Wait::Retry,
                        then: Box::new(Phase::Attempt),
                    },
                }
            }
            Step::Failed(error) => self.failed(error, Some((now, attempt, rand))),
        }
    }

    /// The acquisition fails with `error` (after `attempt`, if one was
    /// made): a holder sets the shared back-off after a retryable failure,
    /// and releases the lease.
    #[inline(never)]
    pub(super) fn failed(&mut self, error: TokenError, attempt: Option<(Now, u32, f64)>) -> Phase {
        let mut steps = Vec::new();
        if let Some((now, attempt, rand)) = attempt {
            self.events.push(Event::error(now, &error, attempt));
            if self.role == Role::Holder && error.retryable {
                let wait = hold_back_ms(1, error.retry_after_seconds, rand, None);
                let until = shared::shared_backoff_until(now.wall, wait);
                steps.push(Effect::SetBackoff { until });
            }
        }
        if self.role == Role::Holder {
            steps.push(Effect::ReleaseLease);
        }
        // Another isolate may have stored a token while this one failed: a
        // caller never gets an error while one is there to take.
        let end = match self.store && attempt.is_some() {
            true => End::ErrorUnlessStored(error),
            false => End::Error(error),
        };
        Phase::Ending { steps, end }
    }
}

/// The stored copy of the issuer's metadata, taken if sound.
#[inline(never)]
pub(super) fn metadata_copy(c: &mut Parts<'_>, now: Now, copy: Option<String>) -> Phase {
    let issuer = issuer_to_ask(c.config, c.metadata.as_deref(), now.wall);
    let parse_url = c.parse_url;
    let taken = issuer.and_then(|issuer| {
        copy.and_then(|copy| discovery::from_copy(&copy, issuer, now.wall, parse_url))
    });
    if taken.is_some() {
        *c.metadata = taken.map(Box::new);
    }
    Phase::Endpoint
}
