//! The byte stream under the CSV parser: decodes the export into UTF-8 a chunk at a time, turns
//! every line break (CRLF, LF, CR) into LF, and follows the CSV syntax alongside the parser to learn
//! what the parser does not say: where an undecodable byte is, whether the file ends inside a
//! quoted value or without a final line break, and which row grows too long to hold.
//!
//! Line breaks are normalised because the `csv` crate counts lines by LF only and reports a CRLF
//! row's line before the LF is consumed; with LF alone, its line count is exact.

use std::fmt;
use std::io::{self, Read};

use encoding_rs::{Decoder, DecoderResult, Encoding};

/// Longest row held in memory. Fields over [`crate::source::rows::MAX_FIELD_BYTES`] are quarantined; a row
/// longer than this ends the read, since the parser would have to hold all of it.
pub(super) const MAX_ROW_BYTES: usize = 64 << 20;

const QUOTE: u8 = b'"';
const INPUT_CHUNK: usize = 16 << 10;
/// Windows-1252 takes at most 3 UTF-8 bytes per input byte; UTF-8 at most 1 (+3 for a sequence
/// left over from the previous chunk).
const DECODED_CHUNK: usize = 3 * INPUT_CHUNK + 4;

/// A failure the stream finds, carried to the reader inside the `csv` crate's `io::Error`.
#[derive(Debug)]
pub(super) enum StreamError {
    Undecodable { encoding: &'static str, line: u64, byte_offset: u64, bytes: Vec<u8> },
    RowTooLong { line: u64 },
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::Undecodable { encoding, line, byte_offset, .. } => {
                write!(f, "invalid {encoding} on line {line}, at byte offset {byte_offset}")
            }
            StreamError::RowTooLong { line } => write!(f, "the row starting on line {line} is too long"),
        }
    }
}

impl std::error::Error for StreamError {}

/// How the file ended, known once the stream is exhausted.
#[derive(Debug, Clone, Copy)]
pub(super) struct StreamEnd {
    /// The line on which a quoted value opened that the file ends inside of.
    pub open_quote_line: Option<u64>,
    /// The last byte is a line break outside quotes: the last row is whole.
    pub ends_with_line_break: bool,
    /// Number of lines in the file.
    pub lines: u64,
}

/// Where the stream is in the CSV syntax, mirroring `csv_core`'s reader with its defaults
/// (quote `"`, doubled quotes as escapes, no comments) so both agree on where rows start and end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syntax {
    /// Between rows: line breaks here are blank lines, which the parser skips.
    StartRecord,
    StartField,
    Unquoted,
    Quoted,
    /// A quote inside a quoted value: the end of the quoting, or the first of a doubled quote.
    QuoteInQuoted,
}

/// Normalises line breaks and follows the syntax of what passes through.
struct Tracker {
    delimiter: u8,
    after_cr: bool,
    syntax: Syntax,
    /// Line breaks passed so far: the current line is one more.
    line_breaks: u64,
    row_start_line: u64,
    row_bytes: usize,
    quote_line: u64,
    last_byte: Option<u8>,
}

impl Tracker {
    fn push(&mut self, byte: u8, out: &mut Vec<u8>) -> Result<(), StreamError> {
        let byte = match byte {
            b'\r' => {
                self.after_cr = true;
                b'\n'
            }
            b'\n' if self.after_cr => {
                self.after_cr = false;
                return Ok(());
            }
            other => {
                self.after_cr = false;
                other
            }
        };
        out.push(byte);
        self.last_byte = Some(byte);
        let follows = self.follow(byte);
        if byte == b'\n' {
            self.line_breaks += 1;
        }
        follows
    }

    /// What [`Tracker::push`] does byte by byte for `run`, none of which is a line break, a
    /// quote or the delimiter.
    fn pass_plain(&mut self, run: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        let Some(&last) = run.last() else { return Ok(()) };
        self.after_cr = false;
        out.extend_from_slice(run);
        self.last_byte = Some(last);
        if self.syntax == Syntax::StartRecord {
            self.syntax = Syntax::StartField;
            self.row_start_line = self.line_breaks + 1;
            self.row_bytes = 0;
        }
        self.row_bytes += run.len();
        if self.row_bytes > MAX_ROW_BYTES {
            return Err(StreamError::RowTooLong { line: self.row_start_line });
        }
        if self.syntax != Syntax::Quoted {
            self.syntax = Syntax::Unquoted;
        }
        Ok(())
    }

    fn follow(&mut self, byte: u8) -> Result<(), StreamError> {
        let line = self.line_breaks + 1;
        if self.syntax == Syntax::StartRecord {
            if byte == b'\n' {
                return Ok(());
            }
            self.syntax = Syntax::StartField;
            self.row_start_line = line;
            self.row_bytes = 0;
        }
        self.row_bytes += 1;
        if self.row_bytes > MAX_ROW_BYTES {
            return Err(StreamError::RowTooLong { line: self.row_start_line });
        }
        self.syntax = match self.syntax {
            Syntax::StartField if byte == QUOTE => {
                self.quote_line = line;
                Syntax::Quoted
            }
            Syntax::Quoted if byte == QUOTE => Syntax::QuoteInQuoted,
            Syntax::Quoted => Syntax::Quoted,
            Syntax::QuoteInQuoted if byte == QUOTE => Syntax::Quoted,
            _ if byte == self.delimiter => Syntax::StartField,
            _ if byte == b'\n' => Syntax::StartRecord,
            _ => Syntax::Unquoted,
        };
        Ok(())
    }

    fn end(&self) -> StreamEnd {
        let open_quote_line = (self.syntax == Syntax::Quoted).then_some(self.quote_line);
        StreamEnd {
            open_quote_line,
            ends_with_line_break: open_quote_line.is_none() && self.last_byte == Some(b'\n'),
            lines: self.line_breaks + u64::from(self.last_byte.is_some_and(|b| b != b'\n')),
        }
    }
}

/// A reader of UTF-8 with LF line breaks over a reader of the export's bytes.
pub(super) struct DecodingReader<R> {
    inner: R,
    decoder: Decoder,
    input: Box<[u8]>,
    input_start: usize,
    input_end: usize,
    input_eof: bool,
    /// Input bytes handed to the decoder so far.
    consumed: u64,
    decoded: Box<[u8]>,
    output: Vec<u8>,
    output_pos: usize,
    finished: bool,
    tracker: Tracker,
}

impl<R: Read> DecodingReader<R> {
    /// `encoding` is the configured one; a byte-order mark at the start overrides it (and is
    /// removed).
    pub(super) fn new(inner: R, encoding: &'static Encoding, delimiter: u8) -> Self {
        DecodingReader {
            inner,
            decoder: encoding.new_decoder(),
            input: vec![0; INPUT_CHUNK].into_boxed_slice(),
            input_start: 0,
            input_end: 0,
            input_eof: false,
            consumed: 0,
            decoded: vec![0; DECODED_CHUNK].into_boxed_slice(),
            output: Vec::with_capacity(DECODED_CHUNK),
            output_pos: 0,
            finished: false,
            tracker: Tracker {
                delimiter,
                after_cr: false,
                syntax: Syntax::StartRecord,
                line_breaks: 0,
                row_start_line: 1,
                row_bytes: 0,
                quote_line: 1,
                last_byte: None,
            },
        }
    }

    /// How the file ended; meaningful once the reader has returned end of file.
    pub(super) fn end(&self) -> StreamEnd {
        self.tracker.end()
    }

    fn fill_input(&mut self) -> io::Result<()> {
        loop {
            match self.inner.read(&mut self.input) {
                Ok(n) => {
                    self.input_start = 0;
                    self.input_end = n;
                    self.input_eof = n == 0;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn decode_chunk(&mut self) -> io::Result<()> {
        if self.input_start == self.input_end && !self.input_eof {
            self.fill_input()?;
        }
        let input = &self.input[self.input_start..self.input_end];
        let (result, read, written) =
            self.decoder.decode_to_utf8_without_replacement(input, &mut self.decoded, self.input_eof);
        let malformed = match result {
            DecoderResult::Malformed(bad, after) => {
                let end = read.saturating_sub(usize::from(after));
                let bytes = input.get(end.saturating_sub(usize::from(bad))..end).unwrap_or_default().to_vec();
                let offset = (self.consumed + read as u64).saturating_sub(u64::from(bad) + u64::from(after));
                Some((bytes, offset))
            }
            DecoderResult::InputEmpty => {
                self.finished = self.input_eof;
                None
            }
            DecoderResult::OutputFull => None,
        };
        self.consumed += read as u64;
        self.input_start += read;
        self.output.clear();
        self.output_pos = 0;
        // Runs of bytes that change nothing but the row's length (neither a line break, a quote
        // nor the delimiter: most of an export) pass in one go; the others one by one.
        let delimiter = self.tracker.delimiter;
        let mut rest = &self.decoded[..written];
        while !rest.is_empty() {
            let plain = rest
                .iter()
                .position(|&b| b == b'\n' || b == b'\r' || b == QUOTE || b == delimiter)
                .unwrap_or(rest.len());
            self.tracker.pass_plain(&rest[..plain], &mut self.output).map_err(io::Error::other)?;
            if let Some(&byte) = rest.get(plain) {
                self.tracker.push(byte, &mut self.output).map_err(io::Error::other)?;
            }
            rest = rest.get(plain + 1..).unwrap_or_default();
        }
        match malformed {
            Some((bytes, byte_offset)) => Err(io::Error::other(StreamError::Undecodable {
                encoding: self.decoder.encoding().name(),
                line: self.tracker.line_breaks + 1,
                byte_offset,
                bytes,
            })),
            None => Ok(()),
        }
    }
}

impl<R: Read> Read for DecodingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.output_pos == self.output.len() {
            if self.finished {
                return Ok(0);
            }
            self.decode_chunk()?;
        }
        let pending = &self.output[self.output_pos..];
        let n = pending.len().min(buf.len());
        buf[..n].copy_from_slice(&pending[..n]);
        self.output_pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tracker fed byte by byte: what the reader's runs must agree with.
    fn byte_by_byte(text: &[u8], delimiter: u8) -> (Vec<u8>, String) {
        let mut tracker = DecodingReader::new(&b""[..], encoding_rs::UTF_8, delimiter).tracker;
        let mut out = Vec::new();
        for &b in text {
            if let Err(e) = tracker.push(b, &mut out) {
                return (out, e.to_string());
            }
        }
        (out, format!("{:?}", tracker.end()))
    }

    fn through_reader(text: &[u8], delimiter: u8) -> (Vec<u8>, String) {
        let mut reader = DecodingReader::new(text, encoding_rs::UTF_8, delimiter);
        let mut out = Vec::new();
        match reader.read_to_end(&mut out) {
            Ok(_) => (out, format!("{:?}", reader.end())),
            Err(e) => (out, e.to_string()),
        }
    }

    /// Runs of plain bytes pass in one go: the output, the line count and how the file ends are
    /// what the byte-by-byte tracker makes, for texts of every mix of quotes, delimiters and line
    /// breaks (a fixed pseudo-random sequence, so a failure repeats).
    #[test]
    fn plain_runs_track_as_byte_by_byte_does() {
        let pieces: [&[u8]; 9] = [b"a", b"bc", b",", b";", b"\"", b"\r", b"\n", b"\r\n", "é".as_bytes()];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for case in 0..3000 {
            let mut text = Vec::new();
            for _ in 0..case % 40 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.extend_from_slice(pieces[(seed % pieces.len() as u64) as usize]);
            }
            for delimiter in [b',', b';'] {
                let expected = byte_by_byte(&text, delimiter);
                assert_eq!(through_reader(&text, delimiter), expected, "{:?}", String::from_utf8_lossy(&text));
            }
        }
    }
}
