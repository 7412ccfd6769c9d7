//! Gzip-coded upstream bodies, decoded for observation only: the client always gets the upstream's bytes
//! unchanged; this module feeds their decoded form, chunk by chunk, to an inner observer, with a cap on
//! the decoded bytes of one response. A corrupt stream or the cap stops observation, never the relay.
//! Pure over bytes: no I/O, never buffers a whole body (the decoder's window and output buffer are fixed).

use std::io::{self, Write};

use flate2::write::MultiGzDecoder;

/// At most this many decoded bytes of one response are observed: a small compressed body may inflate a
/// thousandfold, and observation must not cost more than the relay. Past it, observation stops.
pub(crate) const MAX_DECODED: usize = 64 * 1024 * 1024;

/// What decoded payload is handed to.
pub(crate) trait Feed {
    fn feed(&mut self, decoded: &[u8]);
}

/// Why observation of a coded body stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// The bytes are not a valid gzip stream (bad header, bad deflate data, bad checksum, trailing bytes).
    Corrupt,
    /// The body ended (or was cut) inside a gzip member.
    Truncated,
    /// More than the decoded-bytes cap.
    Cap,
}

impl Stopped {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stopped::Corrupt => "corrupt",
            Stopped::Truncated => "truncated",
            Stopped::Cap => "decoded size cap",
        }
    }
}

/// Where the decoder writes: the inner observer, until the cap or a stop.
struct Sink<T> {
    inner: T,
    active: bool,
    decoded: usize,
    cap: usize,
    capped: bool,
}

impl<T: Feed> Write for Sink<T> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if !self.active {
            return Ok(data.len());
        }
        if self.decoded + data.len() > self.cap {
            self.capped = true;
            return Err(io::Error::other("decoded size cap"));
        }
        self.decoded += data.len();
        self.inner.feed(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A streaming gzip decoder in front of an observer. Feed it the body's payload as it arrives.
pub(crate) struct Gunzip<T: Feed + Default> {
    decoder: MultiGzDecoder<Sink<T>>,
    stopped: Option<Stopped>,
}

impl<T: Feed + Default> Gunzip<T> {
    /// Decodes for `inner`, observing at most `cap` decoded bytes.
    pub(crate) fn new(inner: T, cap: usize) -> Gunzip<T> {
        let sink = Sink { inner, active: true, decoded: 0, cap, capped: false };
        Gunzip { decoder: MultiGzDecoder::new(sink), stopped: None }
    }

    /// Decodes one piece of the coded body.
    pub(crate) fn on_chunk(&mut self, coded: &[u8]) {
        if self.stopped.is_some() {
            return;
        }
        if self.decoder.write_all(coded).is_err() {
            let why = if self.decoder.get_ref().capped { Stopped::Cap } else { Stopped::Corrupt };
            self.stop(why);
        }
    }

    fn stop(&mut self, why: Stopped) {
        self.decoder.get_mut().active = false;
        self.stopped = Some(why);
        tracing::warn!(observation = "stopped", reason = why.as_str(), "gzip upstream body: observation stopped");
    }

    /// The inner observer, and why observation stopped early if it did.
    pub(crate) fn finish(mut self) -> (T, Option<Stopped>) {
        if self.stopped.is_none() && self.decoder.try_finish().is_err() {
            let why = if self.decoder.get_ref().capped { Stopped::Cap } else { Stopped::Truncated };
            self.stop(why);
        }
        // Whatever the decoder does when dropped goes nowhere.
        let sink = self.decoder.get_mut();
        sink.active = false;
        (std::mem::take(&mut sink.inner), self.stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;

    #[derive(Default)]
    struct Collect(Vec<u8>);
    impl Feed for Collect {
        fn feed(&mut self, decoded: &[u8]) {
            self.0.extend_from_slice(decoded);
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn sample() -> Vec<u8> {
        (0..2000).flat_map(|i| format!("data: {{\"n\":{i}}}\n\n").into_bytes()).collect()
    }

    #[test]
    fn decodes_whole_and_in_every_split() {
        let plain = sample();
        let coded = gzip(&plain);
        for step in [1, 7, 64, coded.len()] {
            let mut g = Gunzip::new(Collect::default(), MAX_DECODED);
            for piece in coded.chunks(step) {
                g.on_chunk(piece);
            }
            let (out, stopped) = g.finish();
            assert_eq!(stopped, None, "step {step}");
            assert_eq!(out.0, plain, "step {step}");
        }
    }

    #[test]
    fn concatenated_members_decode_as_one_body() {
        let mut coded = gzip(b"data: a\n\n");
        coded.extend(gzip(b"data: b\n\n"));
        let mut g = Gunzip::new(Collect::default(), MAX_DECODED);
        g.on_chunk(&coded);
        let (out, stopped) = g.finish();
        assert_eq!((out.0.as_slice(), stopped), (&b"data: a\n\ndata: b\n\n"[..], None));
    }

    #[test]
    fn the_cap_stops_observation_and_keeps_what_came_before() {
        let plain = vec![b'x'; 1 << 20];
        let mut g = Gunzip::new(Collect::default(), 64 * 1024);
        g.on_chunk(&gzip(&plain));
        let (out, stopped) = g.finish();
        assert_eq!(stopped, Some(Stopped::Cap));
        assert!(out.0.len() <= 64 * 1024 && out.0.iter().all(|&b| b == b'x'));
    }

    #[test]
    fn corrupt_and_cut_streams_stop_observation_without_panicking() {
        let coded = gzip(&sample());
        let mut bad_crc = coded.clone();
        let n = bad_crc.len();
        bad_crc[n - 6] ^= 0xff;
        let mut bad_data = coded.clone();
        bad_data[20] ^= 0xff;
        let cases: [(&[u8], &[Stopped]); 5] = [
            (b"not gzip at all", &[Stopped::Corrupt]),
            (&bad_crc, &[Stopped::Corrupt, Stopped::Truncated]),
            (&bad_data, &[Stopped::Corrupt, Stopped::Truncated]),
            (&coded[..coded.len() / 2], &[Stopped::Truncated]),
            (b"", &[Stopped::Truncated]),
        ];
        for (input, expected) in cases {
            let mut g = Gunzip::new(Collect::default(), MAX_DECODED);
            g.on_chunk(input);
            let (_, stopped) = g.finish();
            assert!(stopped.is_some_and(|s| expected.contains(&s)), "{stopped:?} for {} bytes", input.len());
        }
    }

    #[test]
    fn after_a_stop_nothing_more_is_fed() {
        let mut g = Gunzip::new(Collect::default(), MAX_DECODED);
        g.on_chunk(b"not gzip at all");
        g.on_chunk(&gzip(b"data: a\n\n"));
        let (out, stopped) = g.finish();
        assert_eq!((out.0.len(), stopped), (0, Some(Stopped::Corrupt)));
    }

    #[test]
    fn trailing_garbage_after_a_member_is_corrupt() {
        let mut coded = gzip(b"data: a\n\n");
        coded.extend_from_slice(b"garbage!garbage!");
        let mut g = Gunzip::new(Collect::default(), MAX_DECODED);
        g.on_chunk(&coded);
        let (out, stopped) = g.finish();
        assert_eq!(out.0, b"data: a\n\n");
        assert_eq!(stopped, Some(Stopped::Corrupt));
    }
}
