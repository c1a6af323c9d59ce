//! Credentials asked for at each token request (docs/DESIGN.md,
//! "Credentials asked for"): a `clientSecret` function and `clientAssertion`.
//! The driver asks the host for one ([`Effect::Credential`]) just before
//! each token request, checks what it gets, and sends it. After
//! `invalid_client` it asks for the secret once more and, when the secret
//! changed (a rotation), sends again at once; when it did not, the refusal
//! stands.

use super::{Awaiting, Driver, Effect, Event, Parts, Phase};
use crate::clock::Now;
use crate::config::Asked;
use crate::error::{ErrorCode, TokenError};
use crate::request::token_request;
use crate::secret::ClientSecret;

impl Driver {
    /// Asks the host for the credential of the token request to `token_url`;
    /// `again` is the refusal that made it ask once more.
    pub(super) fn ask(&mut self, now: Now, token_url: String, again: Option<TokenError>) -> Effect {
        let timeout_ms = self.time_left(now);
        self.wait_for(
            Awaiting::Credential { token_url, again },
            Effect::Credential { timeout_ms },
        )
    }

    /// The host answered with `read` (`None`: its function threw, gave no
    /// string, or took longer than the attempt may).
    pub(super) fn credential_read(
        &mut self,
        c: &mut Parts<'_>,
        now: Now,
        token_url: String,
        again: Option<TokenError>,
        read: Option<String>,
        rand: f64,
    ) -> Phase {
        let Some(asked) = c.config.asked else {
            return super::unreachable_phase();
        };
        let read = read
            .ok_or_else(|| failed(asked))
            .and_then(|v| checked(asked, v));
        match (again, read) {
            (None, Ok(credential)) => self.send_with(c, token_url, credential),
            (None, Err(error)) => self.finish_attempt(c, now, Err(error), rand),
            (Some(refused), Ok(credential)) if self.sent.as_ref() != Some(&credential) => {
                // A rotation: the refused secret was the old one. Send again at once.
                let attempt = self.budget.as_ref().map_or(0, |b| b.attempts());
                self.events.push(Event::error(now, &refused, attempt));
                self.events.push(Event::Retry {
                    at: now.wall,
                    delay_ms: 0.0,
                    attempt,
                });
                if let Some(budget) = self.budget.as_mut() {
                    self.attempt_deadline = now.mono + budget.begin_attempt(now);
                }
                self.send_with(c, token_url, credential)
            }
            (Some(refused), _) => self.finish_attempt(c, now, Err(refused), rand),
        }
    }

    /// After the token endpoint refused the client: the phase that asks
    /// for the secret once more, when it is asked for and was not yet.
    pub(super) fn ask_again(&mut self, c: &Parts<'_>, refused: &TokenError) -> Option<Phase> {
        let rotating = c.config.asked == Some(Asked::Secret)
            && refused.code == ErrorCode::InvalidClient
            && !self.asked_again;
        let token_url = self.sent_to.take().filter(|_| rotating)?;
        self.asked_again = true;
        Some(Phase::Ask {
            token_url,
            again: Some(refused.clone()),
        })
    }

    /// The token request to `token_url` with `credential`, which the
    /// attempt's errors are cleaned of.
    fn send_with(&mut self, c: &Parts<'_>, token_url: String, credential: ClientSecret) -> Phase {
        let value = credential.secret();
        if let Some(budget) = self.budget.as_mut() {
            match c.config.asked {
                Some(Asked::Secret) => {
                    budget.also_redact_secret(&c.config.identity.client_id, value)
                }
                _ => budget.also_redact(value),
            }
        }
        let request = token_request(c.config, &token_url, Some(value));
        self.sent = Some(credential);
        self.sent_to = Some(token_url);
        Phase::Send { request }
    }
}

/// The error of a host that gave no credential.
fn failed(asked: Asked) -> TokenError {
    TokenError::config(format!(
        "{} gave no credential: the function threw, gave no string, or took longer than timeoutMs",
        name(asked)
    ))
}

/// `value` if it can be sent as the `asked` credential; the error never shows it.
fn checked(asked: Asked, value: String) -> Result<ClientSecret, TokenError> {
    let name = name(asked);
    let problem = match asked {
        _ if value.is_empty() => Some("an empty credential"),
        Asked::Secret if value.trim() != value => {
            Some("a secret with leading or trailing whitespace (a newline from a secrets file?)")
        }
        // A JWT (RFC 7519 §7.2) is visible ASCII, without spaces.
        Asked::Assertion if !value.bytes().all(|b| b.is_ascii_graphic()) => {
            Some("an assertion that is no JWT (it holds spaces or other characters)")
        }
        _ => None,
    };
    match problem {
        Some(problem) => Err(TokenError::config(format!("{name} gave {problem}"))),
        None => Ok(ClientSecret::new(value)),
    }
}

fn name(asked: Asked) -> &'static str {
    match asked {
        Asked::Secret => "clientSecret",
        Asked::Assertion => "clientAssertion",
    }
}
