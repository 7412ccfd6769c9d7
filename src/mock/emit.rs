//! Writes a streamed response one event at a time: SSE or AWS event-stream framing inside HTTP chunks, one
//! chunk per event written and flushed at once (as providers do), with pacing, send stamps and the
//! reset-after-N fault. Owns no protocol content: the API modules render each event's JSON.

use super::bedrock;
use super::http;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

/// Why a streamed response ended early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EmitError {
    #[error("writing to the client failed: {0}")]
    Io(#[from] std::io::Error),
    /// `x-mock-reset-after` reached: the caller must close the socket with SO_LINGER 0.
    #[error("reset requested after the configured number of events")]
    Reset,
}

/// The framing of the events inside the HTTP chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `text/event-stream`; `event:` lines are written when the event has a name.
    Sse,
    /// `application/vnd.amazon.eventstream` chunk messages (Bedrock); event names are dropped.
    EventStream,
}

/// CLOCK_MONOTONIC now in nanoseconds, comparable across processes on the same machine.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec and CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64)
}

/// Buffers reused across the requests of one connection.
#[derive(Default)]
pub(crate) struct Buffers {
    pub(crate) out: Vec<u8>,
    pub(crate) json: Vec<u8>,
    pub(crate) frame: Vec<u8>,
}

/// One streamed response in progress.
pub(crate) struct Emitter<'a> {
    stream: &'a TcpStream,
    bufs: &'a mut Buffers,
    framing: Framing,
    stamp: bool,
    delay: Duration,
    reset_after: Option<u32>,
    sent: u32,
    /// `x-mock-gzip`: the whole body is one gzip stream, sync-flushed after each event.
    gzip: Option<flate2::write::GzEncoder<Vec<u8>>>,
}

impl<'a> Emitter<'a> {
    /// Writes the response head and returns an emitter for the events.
    pub(crate) fn start(
        stream: &'a TcpStream,
        bufs: &'a mut Buffers,
        framing: Framing,
        stamp: bool,
        delay_ms: u64,
        reset_after: Option<u32>,
        gzip: bool,
    ) -> Result<Emitter<'a>, EmitError> {
        let content_type = match framing {
            Framing::Sse => "text/event-stream",
            Framing::EventStream => "application/vnd.amazon.eventstream",
        };
        // Bedrock names the payload type of the stream's chunks in its own header.
        let mut extra: Vec<(&str, &str)> = match framing {
            Framing::Sse => vec![],
            Framing::EventStream => vec![("X-Amzn-Bedrock-Content-Type", "application/json")],
        };
        if gzip {
            extra.push(("Content-Encoding", "gzip"));
        }
        http::stream_head(&mut bufs.out, content_type, &extra);
        let mut w = stream;
        w.write_all(&bufs.out)?;
        let gzip = gzip.then(|| flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()));
        let delay = Duration::from_millis(delay_ms);
        Ok(Emitter { stream, bufs, framing, stamp, delay, reset_after, sent: 0, gzip })
    }

    fn before_event(&mut self) -> Result<(), EmitError> {
        if self.reset_after == Some(self.sent) {
            return Err(EmitError::Reset);
        }
        if self.sent > 0 && !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        Ok(())
    }

    /// Writes one event whose JSON `render` appends to the buffer it is given.
    pub(crate) fn event(&mut self, name: &str, render: impl FnOnce(&mut Vec<u8>)) -> Result<(), EmitError> {
        self.before_event()?;
        let json = &mut self.bufs.json;
        json.clear();
        render(json);
        if self.stamp && json.last() == Some(&b'}') {
            json.pop();
            let _ = write!(json, ",\"x_mock_sent_ns\":{}}}", monotonic_ns());
        }
        let frame = &mut self.bufs.frame;
        frame.clear();
        match self.framing {
            Framing::Sse => {
                if !name.is_empty() {
                    frame.extend_from_slice(b"event: ");
                    frame.extend_from_slice(name.as_bytes());
                    frame.push(b'\n');
                }
                frame.extend_from_slice(b"data: ");
                frame.extend_from_slice(json);
                frame.extend_from_slice(b"\n\n");
            }
            Framing::EventStream => {
                let mut scratch = std::mem::take(&mut self.bufs.out);
                bedrock::encode_chunk(frame, &mut scratch, json);
                self.bufs.out = scratch;
            }
        }
        self.write_frame()
    }

    /// Writes a raw SSE `data:` line that is not JSON (OpenAI's `[DONE]`).
    pub(crate) fn raw_data(&mut self, data: &str) -> Result<(), EmitError> {
        self.before_event()?;
        let frame = &mut self.bufs.frame;
        frame.clear();
        frame.extend_from_slice(b"data: ");
        frame.extend_from_slice(data.as_bytes());
        frame.extend_from_slice(b"\n\n");
        self.write_frame()
    }

    /// Writes an event-stream exception message (Bedrock mid-stream error).
    pub(crate) fn exception(&mut self, exception_type: &str, message: &str) -> Result<(), EmitError> {
        self.before_event()?;
        self.bufs.frame.clear();
        bedrock::encode_exception(&mut self.bufs.frame, exception_type, message);
        self.write_frame()
    }

    /// Writes pre-framed bytes as one chunk (fixture replay).
    pub(crate) fn raw_chunk(&mut self, bytes: &[u8]) -> Result<(), EmitError> {
        self.before_event()?;
        self.bufs.frame.clear();
        self.bufs.frame.extend_from_slice(bytes);
        self.write_frame()
    }

    fn write_frame(&mut self) -> Result<(), EmitError> {
        let out = &mut self.bufs.out;
        out.clear();
        match self.gzip.as_mut() {
            Some(enc) => {
                enc.write_all(&self.bufs.frame)?;
                enc.flush()?;
                http::push_chunk(out, enc.get_ref());
                enc.get_mut().clear();
            }
            None => http::push_chunk(out, &self.bufs.frame),
        }
        let mut w = self.stream;
        w.write_all(out)?;
        self.sent += 1;
        Ok(())
    }

    /// Ends the HTTP body properly (last chunk), whatever the events said.
    pub(crate) fn finish(self) -> Result<(), EmitError> {
        let mut w = self.stream;
        if let Some(enc) = self.gzip {
            let tail = enc.finish()?;
            let out = &mut self.bufs.out;
            out.clear();
            http::push_chunk(out, &tail);
            w.write_all(out)?;
        }
        w.write_all(http::LAST_CHUNK)?;
        Ok(())
    }
}
