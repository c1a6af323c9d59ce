//! Newtypes for the two values that must never be printed.

use std::fmt;

/// The OAuth client secret. `Debug` prints `ClientSecret([redacted])`; there
/// is no `Display`, and the value is read only through [`ClientSecret::secret`].
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret.
    pub fn new(secret: String) -> Self {
        Self(secret)
    }

    /// The secret itself, for building the token request.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

/// An access token issued by the authorization server. `Debug` prints
/// `AccessToken([redacted])`; the value is read through [`AccessToken::secret`].
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps a token.
    pub fn new(token: String) -> Self {
        Self(token)
    }

    /// The token itself, for the `Authorization` header.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Takes the token out, consuming the wrapper.
    pub fn into_secret(self) -> String {
        self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_secret_and_token_is_redacted() {
        let secret = ClientSecret::new("canary-secret-5f1c".into());
        let token = AccessToken::new("canary-token-9a2e".into());
        let printed = format!("{secret:?} {token:?} {:#?}", (&secret, &token));
        assert!(!printed.contains("canary"), "{printed}");
        assert_eq!(format!("{secret:?}"), "ClientSecret([redacted])");
        assert_eq!(format!("{token:?}"), "AccessToken([redacted])");
        assert_eq!(secret.secret(), "canary-secret-5f1c");
        assert_eq!(token.secret(), "canary-token-9a2e");
    }
}
