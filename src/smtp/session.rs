//! The SMTP session state machine: typed inputs in, a [`Step`] naming the server's next move
//! out. It holds the protocol state (greeting, TLS, login, mail transaction) and makes every
//! decision, including what to say on a time-out or at shutdown. It never awaits: AUTH, the
//! TLS handshake and the spool write are requests the server carries out and reports back.

use std::net::IpAddr;
use std::sync::Arc;

use crate::auth::mechanism::MechanismError;
use crate::auth::{Decision, Grant, LoginMechanism};
use crate::config::TlsMode;
use crate::header_from::HeadCapture;
use crate::queue::{EnqueueError, Submission};
use crate::secret::Secret;

use super::codec::{self, AuthResponse, Body, CodecError, Command, MailFrom, Mechanism};
use super::data::DataSummary;
use super::reply::Reply;

/// The per-listener facts a session needs.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub hostname: String,
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub max_errors: u32,
    pub listener: TlsMode,
    /// A certificate is loaded: STARTTLS can be offered.
    pub tls_available: bool,
    /// `[relay] allow_private_destinations`: else RCPT to an address literal in a loopback,
    /// link-local or private range is refused.
    pub allow_private_destinations: bool,
    /// Which addresses an authenticated session may only use if its account owns them.
    pub sender_binding: SenderBinding,
}

/// RFC 1035 §2.3.4 limits a domain name to 255 octets; a longer HELO/EHLO argument is no name
/// and would make the `Received:` header unbounded.
pub const MAX_HELO_NAME: usize = 255;

#[derive(Debug)]
pub enum Input {
    Command(Command),
    AuthResponse(AuthResponse),
    Malformed(CodecError),
    /// No complete command within `command_timeout`.
    Timeout,
    /// `session_timeout` reached.
    SessionExpired,
    ShuttingDown,
}

/// A login to decide: the server asks the login pipeline and reports with [`Session::on_verdict`].
#[derive(Debug)]
pub struct AuthAttempt {
    pub username: String,
    pub secret: Secret,
    pub mechanism: LoginMechanism,
}

/// A response that holds no well-formed credential. Refused, but the server still hands it to
/// the login pipeline, which counts and delays it like a wrong password, then reports the
/// verdict with [`Session::on_verdict`].
#[derive(Debug)]
pub struct CredentialRefusal {
    /// The login name, when the mechanism got as far as one.
    pub username: Option<String>,
    pub mechanism: LoginMechanism,
    pub error: MechanismError,
}

#[derive(Debug)]
pub enum Step {
    /// Write it, read the next input.
    Reply(Reply),
    Authenticate(AuthAttempt),
    RefuseCredentials(CredentialRefusal),
    /// Write 220, drop buffered plaintext, handshake, then [`Session::on_tls_established`].
    StartTls(Reply),
    /// Write 354, read the body with the dot reader, then [`Session::on_data_end`].
    ReceiveData(Reply),
    /// Store the message durably, then [`Session::on_queued`].
    Enqueue(Submission),
    /// Ask the Authenticator whether the session's login still holds (`recheck`), then
    /// [`Session::on_recheck`]. Asked at MAIL, RCPT and DATA of an authenticated session.
    Recheck(Grant),
    /// Count a message against this account's message limits, then
    /// [`Session::on_message_counted`]. Asked at DATA of an authenticated session.
    CountMessage {
        account: String,
    },
    /// Ask the sender directory, then [`Session::on_senders_checked`].
    CheckSenders(SenderQuery),
    /// Write it and hang up.
    Close(Reply),
}

#[derive(Debug)]
enum Phase {
    Command,
    /// After 334 to AUTH PLAIN without initial response.
    AuthPlain,
    AuthLoginUser,
    AuthLoginPassword(String),
    Verifying,
    /// Waiting for [`Step::Recheck`]'s answer before going on with a command.
    Rechecking(Pending),
    /// Waiting for [`Step::CountMessage`]'s answer before 354.
    Counting,
    /// The MAIL FROM address is being checked; the transaction starts if it is allowed.
    CheckingMailFrom(Transaction),
    Data,
    /// The header From: addresses are being checked; the message is queued if they are allowed.
    CheckingHeaderFrom(Submission),
    Queueing,
}

#[derive(Debug, Default)]
struct Transaction {
    sender: Option<String>,
    recipients: Vec<String>,
    smtputf8: bool,
    eight_bit: bool,
}

pub struct Session {
    config: Arc<SessionConfig>,
    client_ip: IpAddr,
    trusted: bool,
    tls: bool,
    phase: Phase,
    helo: Option<(String, bool)>,
    grant: Option<Grant>,
    transaction: Option<Transaction>,
    errors: u32,
}

impl Session {
    /// `trusted`: the client is in `trusted_networks`. `tls`: an implicit-TLS listener.
    pub fn new(config: Arc<SessionConfig>, client_ip: IpAddr, trusted: bool, tls: bool) -> Self {
        Self {
            config,
            client_ip,
            trusted,
            tls,
            phase: Phase::Command,
            helo: None,
            grant: None,
            transaction: None,
            errors: 0,
        }
    }

    pub fn greeting(&self) -> Reply {
        Reply::greeting(&self.config.hostname)
    }

    pub fn grant(&self) -> Option<&Grant> {
        self.grant.as_ref()
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    pub fn helo_name(&self) -> Option<&str> {
        self.helo.as_ref().map(|(h, _)| h.as_str())
    }

    /// Turns a framed line into an input: a command, or an answer to a 334 challenge.
    pub fn parse_line(&self, line: &[u8]) -> Input {
        let parsed = match self.phase {
            Phase::AuthPlain | Phase::AuthLoginUser | Phase::AuthLoginPassword(_) => {
                codec::parse_auth_response(line).map(Input::AuthResponse)
            }
            _ => codec::parse_command(line).map(Input::Command),
        };
        parsed.unwrap_or_else(Input::Malformed)
    }

    pub fn on_input(&mut self, input: Input) -> Step {
        match input {
            Input::Timeout => Step::Close(Reply::command_timeout()),
            Input::SessionExpired => Step::Close(Reply::session_timeout()),
            Input::ShuttingDown => Step::Close(Reply::shutting_down()),
            Input::Malformed(e) => self.on_malformed(e),
            Input::AuthResponse(r) => self.on_auth_response(r),
            Input::Command(c) => self.on_command(c),
        }
    }

    fn on_malformed(&mut self, e: CodecError) -> Step {
        if matches!(self.phase, Phase::AuthPlain | Phase::AuthLoginUser | Phase::AuthLoginPassword(_)) {
            self.phase = Phase::Command;
        }
        let reply = match e {
            CodecError::Http => return Step::Close(Reply::http_refused()),
            CodecError::Empty | CodecError::UnknownCommand => Reply::unrecognized(),
            CodecError::Syntax(verb) => Reply::syntax(usage(verb)),
            CodecError::BadSender => Reply::bad_sender(),
            CodecError::BadRecipient => Reply::bad_recipient(),
            CodecError::BadParameter(_) => Reply::parameter_unsupported(),
            CodecError::LineTooLong => Reply::line_too_long(),
            CodecError::BadBase64 => Reply::bad_base64(),
        };
        self.refuse(reply)
    }

    /// An error reply caused by the client: counted toward `max_errors`.
    fn refuse(&mut self, reply: Reply) -> Step {
        self.errors += 1;
        if self.errors >= self.config.max_errors {
            return Step::Close(Reply::too_many_errors());
        }
        Step::Reply(reply)
    }

    fn on_command(&mut self, cmd: Command) -> Step {
        if !matches!(self.phase, Phase::Command) {
            return self.refuse(Reply::bad_sequence("Command out of sequence"));
        }
        match cmd {
            Command::Helo(name) | Command::Ehlo(name) if name.len() > MAX_HELO_NAME => {
                self.refuse(Reply::syntax("Syntax: EHLO hostname (at most 255 octets)"))
            }
            Command::Helo(name) => {
                self.helo = Some((name, false));
                self.transaction = None;
                Step::Reply(Reply::helo(&self.config.hostname))
            }
            Command::Ehlo(name) => {
                self.helo = Some((name, true));
                self.transaction = None;
                Step::Reply(Reply::ehlo(&self.config.hostname, self.extensions()))
            }
            Command::StartTls => self.on_starttls(),
            Command::Auth { mechanism, initial } => self.on_auth(mechanism, initial),
            Command::Mail(m) => self.on_mail(m),
            Command::Rcpt(r) => self.on_rcpt(r.recipient),
            Command::Data => self.on_data(),
            Command::Rset => {
                self.transaction = None;
                Step::Reply(Reply::ok())
            }
            Command::Noop => Step::Reply(Reply::ok()),
            Command::Quit => Step::Close(Reply::bye()),
            Command::Vrfy(_) => Step::Reply(Reply::cannot_verify()),
            Command::Expn(_) => self.refuse(Reply::not_implemented()),
            Command::Help => Step::Reply(Reply::help()),
        }
    }

    fn auth_allowed_here(&self) -> bool {
        self.tls || self.config.listener == TlsMode::None
    }

    fn extensions(&self) -> Vec<std::borrow::Cow<'static, str>> {
        let mut ext = vec![
            "PIPELINING".into(),
            format!("SIZE {}", self.config.max_message_size).into(),
            "8BITMIME".into(),
            "ENHANCEDSTATUSCODES".into(),
            "SMTPUTF8".into(),
        ];
        if self.config.listener == TlsMode::Starttls && !self.tls && self.config.tls_available {
            ext.push("STARTTLS".into());
        }
        if self.auth_allowed_here() && self.grant.is_none() {
            ext.push("AUTH PLAIN LOGIN".into());
        }
        ext
    }

    fn on_starttls(&mut self) -> Step {
        if self.tls {
            return self.refuse(Reply::bad_sequence("TLS already active"));
        }
        if self.config.listener != TlsMode::Starttls {
            return self.refuse(Reply::not_implemented());
        }
        if !self.config.tls_available {
            return Step::Reply(Reply::tls_unavailable());
        }
        Step::StartTls(Reply::ready_for_tls())
    }

    /// RFC 3207 §4.2: after the handshake the client starts over with EHLO; nothing said in
    /// plaintext (greeting, login, envelope) carries over.
    pub fn on_tls_established(&mut self) {
        self.tls = true;
        self.helo = None;
        self.grant = None;
        self.transaction = None;
        self.phase = Phase::Command;
    }

    fn on_mail(&mut self, mail: MailFrom) -> Step {
        if self.helo.is_none() {
            return self.refuse(Reply::bad_sequence("Send HELO/EHLO first"));
        }
        if self.transaction.is_some() {
            return self.refuse(Reply::bad_sequence("Nested MAIL command"));
        }
        if self.grant.is_none() && !self.trusted {
            return self.refuse(Reply::auth_required());
        }
        if mail.size.is_some_and(|s| s > self.config.max_message_size) {
            return self.refuse(Reply::message_too_big());
        }
        if mail.body == Some(Body::BinaryMime) {
            return self.refuse(Reply::parameter_unsupported());
        }
        self.admit(Pending::Mail(mail))
    }

    /// MAIL passed every check: the transaction starts, once the sender directory agrees that
    /// the login may use the sender (the null sender, for bounces, is never bound).
    fn accept_mail(&mut self, mail: MailFrom) -> Step {
        let tx = Transaction {
            sender: mail.sender,
            recipients: Vec::new(),
            smtputf8: mail.smtputf8,
            eight_bit: mail.body == Some(Body::EightBitMime),
        };
        if let Some(sender) = tx.sender.clone()
            && let Some(query) = self.sender_query(vec![sender])
        {
            self.phase = Phase::CheckingMailFrom(tx);
            return Step::CheckSenders(query);
        }
        self.transaction = Some(tx);
        Step::Reply(Reply::sender_ok())
    }

    fn on_rcpt(&mut self, recipient: String) -> Step {
        let max = self.config.max_recipients;
        let Some(tx) = self.transaction.as_mut() else {
            return self.refuse(Reply::bad_sequence("Need MAIL before RCPT"));
        };
        if tx.recipients.len() >= max {
            return self.refuse(Reply::too_many_recipients());
        }
        if !self.config.allow_private_destinations && is_internal_literal(&recipient) {
            return self.refuse(Reply::private_destination());
        }
        self.admit(Pending::Rcpt(recipient))
    }

    /// RCPT passed every check: the recipient joins the transaction.
    fn accept_rcpt(&mut self, recipient: String) -> Step {
        let Some(tx) = self.transaction.as_mut() else {
            return self.refuse(Reply::bad_sequence("Need MAIL before RCPT"));
        };
        tx.recipients.push(recipient);
        Step::Reply(Reply::recipient_ok())
    }

    fn on_data(&mut self) -> Step {
        match &self.transaction {
            None => self.refuse(Reply::bad_sequence("Need MAIL command")),
            Some(tx) if tx.recipients.is_empty() => self.refuse(Reply::bad_sequence("Need RCPT command")),
            Some(_) => self.admit(Pending::Data),
        }
    }

    /// The message may come: 354, then the body.
    fn start_data(&mut self) -> Step {
        self.phase = Phase::Data;
        Step::ReceiveData(Reply::start_data())
    }

    /// The dot reader found the end of the message; `head` holds its header section.
    pub fn on_data_end(&mut self, summary: DataSummary, head: &HeadCapture) -> Step {
        self.phase = Phase::Command;
        if summary.too_big || summary.line_too_long || summary.nul {
            self.transaction = None;
            let reply = match () {
                _ if summary.too_big => Reply::message_too_big(),
                _ if summary.nul => Reply::nul_in_message(),
                _ => Reply::line_too_long(),
            };
            return self.refuse(reply);
        }
        let Some(tx) = self.transaction.take() else {
            return self.refuse(Reply::bad_sequence("Need MAIL command"));
        };
        let submission = Submission {
            sender: tx.sender,
            recipients: tx.recipients,
            smtputf8: tx.smtputf8,
            eight_bit: tx.eight_bit,
            auth_user: self.grant.as_ref().map(|g| g.username.clone()),
            account_id: self.grant.as_ref().map(|g| g.account_id),
            client_ip: Some(self.client_ip),
        };
        self.check_header_from(submission, head)
    }

    /// The spool's answer: 250 only now, after the message and envelope are on disk.
    pub fn on_queued(&mut self, result: Result<String, EnqueueError>) -> Step {
        self.phase = Phase::Command;
        match result {
            Ok(id) => Step::Reply(Reply::queued(&id)),
            Err(EnqueueError::DiskFull) => Step::Reply(Reply::insufficient_storage()),
            Err(_) => Step::Reply(Reply::local_error()),
        }
    }

    /// The `with` protocol of the `Received:` header (RFC 3848).
    pub fn protocol(&self) -> &'static str {
        match (self.helo.as_ref().is_some_and(|(_, e)| *e), self.tls, self.grant.is_some()) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, false, true) => "ESMTPA",
            (true, true, false) => "ESMTPS",
            (true, true, true) => "ESMTPSA",
        }
    }

    pub fn client_ip(&self) -> IpAddr {
        self.client_ip
    }

    pub fn hostname(&self) -> &str {
        &self.config.hostname
    }
}

/// A recipient at an address literal (`x@[127.0.0.1]`) that leads into the host's own or a
/// private network. Names are checked at delivery, once they are resolved.
fn is_internal_literal(recipient: &str) -> bool {
    crate::mailbox::Mailbox::parse(recipient).ok().and_then(|m| m.literal()).is_some_and(crate::ip_scope::is_internal)
}

fn usage(verb: &'static str) -> &'static str {
    match verb {
        "HELO" => "Syntax: HELO hostname",
        "EHLO" => "Syntax: EHLO hostname",
        "MAIL" => "Syntax: MAIL FROM:<address>",
        "RCPT" => "Syntax: RCPT TO:<address>",
        "AUTH" => "Syntax: AUTH mechanism [initial-response]",
        "VRFY" => "Syntax: VRFY address",
        "EXPN" => "Syntax: EXPN list",
        _ => "Syntax error: no arguments allowed",
    }
}

#[path = "session_auth.rs"]
mod auth;

#[path = "session_admission.rs"]
mod admission;
use admission::Pending;

#[path = "session_senders.rs"]
mod senders;
pub use senders::{SenderAnswer, SenderBinding, SenderQuery};

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "session_senders_tests.rs"]
mod senders_tests;
