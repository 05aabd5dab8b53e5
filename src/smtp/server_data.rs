//! The DATA half of a relay connection: streams the body through the dot reader into a spool
//! file, prepends the `Received:` header, and commits through the [`Outbox`] (fsync) before the
//! session may say 250.

use super::*;
use crate::header_from::HeadCapture;

impl Connection<'_> {
    /// Streams the body into the spool; `None` when the connection is gone.
    pub(super) async fn receive_data<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: &mut Io<S>,
        session: &mut Session,
    ) -> std::io::Result<Option<Step>> {
        // Creating one file is a metadata operation that does not wait for the disk; doing it
        // here saves two thread hand-offs per message. Only the fsyncs go to the blocking pool.
        let mut incoming = self.ctx.outbox.begin(session.grant().is_some());
        let mut reader = DotReader::new(self.config.relay.max_message_size);
        let mut head = HeadCapture::new();
        let mut body = Vec::with_capacity(READ_CHUNK);
        if let Ok(inc) = &incoming {
            body.extend_from_slice(self.trace(session, inc.id()).as_bytes());
        }
        loop {
            let before = body.len();
            let fed = reader.feed(&io.rbuf, &mut body);
            head.feed(&body[before..]);
            match fed {
                Feed::Done { consumed } => {
                    io.rbuf.drain(..consumed);
                    break;
                }
                Feed::More => io.rbuf.clear(),
            }
            if body.len() >= SPOOL_CHUNK {
                incoming = self.spool_write(incoming, std::mem::take(&mut body)).await;
            }
            // A DATA in progress is finished even during shutdown; only the time-out applies.
            match tokio::time::timeout(self.command_timeout(), io.fill()).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) | Ok(Err(_)) => {
                    self.spool_abort(incoming).await;
                    return Ok(None);
                }
                Err(_) => {
                    self.spool_abort(incoming).await;
                    return Ok(Some(session.on_input(Input::Timeout)));
                }
            }
        }
        let mut step = session.on_data_end(reader.summary(), &head);
        loop {
            step = match step {
                Step::CheckSenders(check) => session.on_senders_checked(self.check_senders(&check)),
                Step::Enqueue(submission) => {
                    let result = self.commit(incoming, body, submission).await;
                    return Ok(Some(session.on_queued(result)));
                }
                other => {
                    // Refused after DATA: nothing of the message is kept.
                    self.spool_abort(incoming).await;
                    return Ok(Some(other));
                }
            }
        }
    }

    fn trace(&self, session: &Session, id: &str) -> String {
        Trace {
            helo: session.helo_name().unwrap_or("unknown"),
            client_ip: session.client_ip(),
            hostname: session.hostname(),
            protocol: session.protocol(),
            id,
            single_recipient: None,
            unix_time: crate::queue::spool::unix_now(),
        }
        .header()
    }

    async fn spool_write(
        &self,
        incoming: Result<Incoming, EnqueueError>,
        chunk: Vec<u8>,
    ) -> Result<Incoming, EnqueueError> {
        self.ctx.outbox.write(incoming?, chunk).await
    }

    async fn spool_abort(&self, incoming: Result<Incoming, EnqueueError>) {
        if let Ok(inc) = incoming {
            self.ctx.outbox.abort(inc).await;
        }
    }

    async fn commit(
        &self,
        incoming: Result<Incoming, EnqueueError>,
        rest: Vec<u8>,
        submission: Submission,
    ) -> Result<String, EnqueueError> {
        self.ctx.outbox.enqueue(incoming?, rest, submission, "smtp").await
    }
}
