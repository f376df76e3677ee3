//! A request-head deadline for every request on a connection, not only the first.
//!
//! actix-http starts its head timer (`client_request_timeout`) only for the first request of a
//! connection, and clears the keep-alive timer as soon as a byte of the next request arrives: a client
//! that answers each response with a request head sent one byte every few seconds holds the connection
//! (and one of the per-worker connection slots) for ever. [`HeadDeadline`] wraps the connection's stream
//! (the TCP stream, or the TLS stream above it) and enforces the deadline itself:
//!
//! - the clock starts at the first byte of a request head (the first byte read on the connection, or the
//!   first byte read after our answer to the previous request), and at our answer when bytes of a next
//!   request arrived with the previous one (pipelined, possibly half a head);
//! - it stops at the end of the head (`\r\n\r\n`): the body has its own deadline (`web::body_deadline`),
//!   and a handler may take longer than the header timeout;
//! - when it passes, the next read fails with `TimedOut` and actix-http drops the connection.
//!
//! Only HTTP/1.1 is served (actix-web is built without `http2`, TLS offers `http/1.1` only), so the head
//! is always terminated by an empty line.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

const END_OF_HEAD: &[u8; 4] = b"\r\n\r\n";
/// The interim answer to `Expect: 100-continue`: the request goes on (its body follows), so it does not
/// end the request.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request started: the next byte read starts a head.
    Idle,
    /// Inside a request head: the deadline runs. `matched` bytes of `\r\n\r\n` seen at the end so far.
    Head { matched: usize },
    /// The head is complete; waiting for our answer. `more`: bytes read after the head (a body, or the
    /// start of a pipelined request).
    Request { more: bool },
}

pub struct HeadDeadline<T> {
    io: T,
    timeout: Duration,
    phase: Phase,
    deadline: Pin<Box<Sleep>>,
}

impl<T> HeadDeadline<T> {
    pub fn new(io: T, timeout: Duration) -> Self {
        Self {
            io,
            timeout,
            phase: Phase::Idle,
            deadline: Box::pin(tokio::time::sleep_until(Instant::now() + timeout)),
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.io
    }

    fn start_head(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.timeout);
        self.phase = Phase::Head { matched: 0 };
    }

    /// Advances the phase over `bytes` just read.
    fn saw(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            match self.phase {
                Phase::Idle => self.start_head(),
                Phase::Head { mut matched } => {
                    let mut used = 0;
                    for &b in rest {
                        used += 1;
                        matched = if b == END_OF_HEAD[matched] {
                            matched + 1
                        } else if b == b'\r' {
                            1
                        } else {
                            0
                        };
                        if matched == END_OF_HEAD.len() {
                            break;
                        }
                    }
                    rest = &rest[used..];
                    self.phase = if matched == END_OF_HEAD.len() {
                        Phase::Request {
                            more: !rest.is_empty(),
                        }
                    } else {
                        Phase::Head { matched }
                    };
                    if matches!(self.phase, Phase::Request { .. }) {
                        // Whatever follows in this read is a body or a pipelined request: see `wrote`.
                        return;
                    }
                }
                Phase::Request { .. } => {
                    self.phase = Phase::Request { more: true };
                    return;
                }
            }
        }
    }

    /// We answered: the request is over, unless `written` is only the interim `100 Continue`. Bytes that
    /// came after its head may hold the next head (or part of it), so its clock starts now; otherwise at
    /// its first byte.
    fn wrote(&mut self, written: &[u8]) {
        if written == CONTINUE {
            return;
        }
        match self.phase {
            Phase::Request { more: true } => self.start_head(),
            Phase::Request { more: false } => self.phase = Phase::Idle,
            // An answer before the head was complete (an error such as 400 or 408; the connection
            // closes) or a second write of the same answer: nothing changes.
            Phase::Idle | Phase::Head { .. } => {}
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for HeadDeadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if matches!(this.phase, Phase::Head { .. }) && this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the request head did not arrive within the header timeout",
            )));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        let was_idle = !matches!(this.phase, Phase::Head { .. });
        this.saw(&buf.filled()[before..]);
        if was_idle && matches!(this.phase, Phase::Head { .. }) {
            // Register the waker with the new deadline.
            let _ = this.deadline.as_mut().poll(cx);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HeadDeadline<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let n = ready!(Pin::new(&mut this.io).poll_write(cx, data))?;
        if n > 0 {
            this.wrote(&data[..n]);
        }
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let n = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, bufs))?;
        if n > 0 {
            // Only a lone `100 Continue` in the first buffer counts as interim.
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map(|b| &b[..])
                .unwrap_or(&[]);
            let interim = n == CONTINUE.len() && first == CONTINUE;
            this.wrote(if interim { CONTINUE } else { b"" });
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const T: Duration = Duration::from_millis(300);

    async fn read_some(s: &mut HeadDeadline<tokio::io::DuplexStream>) -> io::Result<Vec<u8>> {
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).await?;
        Ok(buf[..n].to_vec())
    }

    #[test]
    fn phases_follow_heads_bodies_and_answers() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let (_a, b) = tokio::io::duplex(64);
            let mut d = HeadDeadline::new(b, T);
            assert_eq!(d.phase, Phase::Idle);
            d.saw(b"GET / HTTP/1.1\r\nHost: x\r");
            assert_eq!(d.phase, Phase::Head { matched: 1 });
            d.saw(b"\n\r");
            assert_eq!(d.phase, Phase::Head { matched: 3 });
            d.saw(b"\n");
            assert_eq!(d.phase, Phase::Request { more: false });
            d.wrote(b"HTTP/1.1 200 OK\r\n\r\n");
            assert_eq!(d.phase, Phase::Idle);
            // A body in the same read, then the answer: the next head's clock starts at the answer.
            d.saw(b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nab");
            assert_eq!(d.phase, Phase::Request { more: true });
            d.wrote(b"HTTP/1.1 200 OK\r\n\r\n");
            assert_eq!(d.phase, Phase::Head { matched: 0 });
            // `\r\r\n\r\n` still ends a head.
            d.saw(b"GET / HTTP/1.1\r\r\n\r\n");
            assert_eq!(d.phase, Phase::Request { more: false });
            // A body arriving later.
            d.saw(b"xyz");
            assert_eq!(d.phase, Phase::Request { more: true });
            d.wrote(b"HTTP/1.1 200 OK\r\n\r\n");
            d.saw(b"\r\n\r\n");
            assert_eq!(d.phase, Phase::Request { more: false });
            d.wrote(b"HTTP/1.1 200 OK\r\n\r\n");
            // `100 Continue` after a head does not end the request: the body's bytes that follow do not
            // start a head's clock; the final answer does end it.
            d.saw(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
            d.wrote(CONTINUE);
            assert_eq!(d.phase, Phase::Request { more: false });
            d.saw(b"abc");
            assert_eq!(d.phase, Phase::Request { more: true });
            d.wrote(b"HTTP/1.1 200 OK\r\n\r\n");
            assert_eq!(d.phase, Phase::Head { matched: 0 });
            d.saw(b"\r\n\r\n");
            d.wrote(b"HTTP/1.1 200 OK\r\n\r\n");
            assert_eq!(d.phase, Phase::Idle);
            // An answer before the head is complete changes nothing.
            d.saw(b"GET");
            d.wrote(b"HTTP/1.1 200 OK\r\n\r\n");
            assert_eq!(d.phase, Phase::Head { matched: 0 });
        });
    }

    #[test]
    fn a_slow_second_head_fails_the_read_after_the_timeout() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let (mut client, server) = tokio::io::duplex(1024);
            let mut d = HeadDeadline::new(server, T);
            client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
            assert_eq!(read_some(&mut d).await.unwrap().len(), 18);
            // A handler slower than the header timeout is not cut.
            tokio::time::sleep(T * 2).await;
            d.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            // Idle longer than the timeout: still open (keep-alive is actix-http's).
            tokio::time::sleep(T * 2).await;
            let started = Instant::now();
            let reader = tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    match read_some(&mut d).await {
                        Ok(b) if b.is_empty() => return (got, None),
                        Ok(b) => got.extend(b),
                        Err(e) => return (got, Some(e.kind())),
                    }
                }
            });
            for b in b"GET / HTTP/1.1\r\nX: y" {
                if client.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let (got, err) = reader.await.unwrap();
            assert_eq!(err, Some(io::ErrorKind::TimedOut));
            assert!(
                got.len() < 10,
                "{} bytes read before the deadline",
                got.len()
            );
            let took = started.elapsed();
            assert!(took >= T && took < T * 2, "{took:?}");
        });
    }

    #[test]
    fn a_half_pipelined_head_times_out_without_another_byte() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let (mut client, server) = tokio::io::duplex(1024);
            let mut d = HeadDeadline::new(server, T);
            client
                .write_all(b"GET / HTTP/1.1\r\n\r\nGET / HT")
                .await
                .unwrap();
            read_some(&mut d).await.unwrap();
            d.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            let started = Instant::now();
            let err = read_some(&mut d).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::TimedOut);
            let took = started.elapsed();
            assert!(
                took >= T - Duration::from_millis(20) && took < T * 2,
                "{took:?}"
            );
            drop(client);
        });
    }
}
