//! What to answer on one socketmap connection, without I/O: the server hands over each
//! decoded request, the session names the next move.

use super::codec::{CodecError, Reply, Request};

/// What the server got from the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Request(Request),
    Malformed(CodecError),
    /// Shutdown began and no request is in flight.
    ShuttingDown,
}

/// The server's next move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Look up who may send as this address, then call [`Session::on_logins`].
    Lookup(String),
    /// Write this reply and read the next request.
    Reply(Reply),
    /// Hang up without a reply: Postfix reconnects and retries once (between requests, or
    /// after bytes that are no request).
    Close,
}

/// One connection's state: the map name it serves.
#[derive(Debug, Clone)]
pub struct Session {
    map_name: String,
}

impl Session {
    pub fn new(map_name: impl Into<String>) -> Self {
        Self { map_name: map_name.into() }
    }

    pub fn on_input(&self, input: Input) -> Step {
        match input {
            Input::Request(request) if request.name == self.map_name => Step::Lookup(request.key),
            // A name Postfix was not meant to send is a typo in main.cf: PERM makes Postfix log
            // a configuration error (451 4.3.5) instead of refusing every sender as "not owned".
            Input::Request(request) => Step::Reply(Reply::perm(&format!("unknown map name {:?}", request.name))),
            Input::Malformed(_) | Input::ShuttingDown => Step::Close,
        }
    }

    /// The answer to a [`Step::Lookup`]: the logins that may use the address (`None`: nobody
    /// owns it, or only a pending entry covers it), or why the store could not say.
    pub fn on_logins<S: AsRef<str>, E: std::fmt::Display>(&self, logins: Result<Option<&[S]>, E>) -> Reply {
        match logins {
            Ok(Some(logins)) => Reply::found(logins),
            Ok(None) => Reply::NotFound,
            Err(e) => Reply::temp(&format!("sender lookup failed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(name: &str, key: &str) -> Input {
        Input::Request(Request { name: name.into(), key: key.into() })
    }

    #[test]
    fn looks_up_keys_of_its_own_map() {
        let s = Session::new("senders");
        assert_eq!(s.on_input(request("senders", "Ann@Example.com")), Step::Lookup("Ann@Example.com".into()));
    }

    #[test]
    fn another_map_name_is_a_configuration_error() {
        let Step::Reply(reply) = Session::new("senders").on_input(request("sender", "a@b.c")) else { panic!() };
        assert_eq!(reply.status(), "PERM");
    }

    #[test]
    fn malformed_input_and_shutdown_close_the_connection() {
        let s = Session::new("senders");
        assert_eq!(s.on_input(Input::Malformed(CodecError::BadLength)), Step::Close);
        assert_eq!(s.on_input(Input::ShuttingDown), Step::Close);
    }

    #[test]
    fn answers_with_logins_notfound_or_temp() {
        let s = Session::new("senders");
        let logins = ["ann@example.com", "billing@example.com"];
        assert_eq!(
            s.on_logins(Ok::<_, String>(Some(&logins[..]))),
            Reply::Ok("ann@example.com,billing@example.com".into())
        );
        assert_eq!(s.on_logins(Ok::<Option<&[&str]>, String>(None)), Reply::NotFound);
        assert_eq!(s.on_logins(Err::<Option<&[&str]>, _>("database is locked")).status(), "TEMP");
    }
}
