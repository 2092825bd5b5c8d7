//! Newline framing with a hard bound on line length.

/// Why the byte stream cannot be framed any further; the connection should be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A line grew past the limit without a newline.
    #[error("line longer than {limit} bytes")]
    LineTooLong {
        /// The limit in force.
        limit: usize,
    },
}

/// Splits a byte stream into lines, without allocating per line and without ever holding
/// more than `max_line` bytes of an unfinished line.
///
/// `\n` ends a line; a `\r` before it and blank lines are dropped.
#[derive(Debug, Clone)]
pub struct LineBuffer {
    buf: Vec<u8>,
    start: usize,
    max_line: usize,
}

impl LineBuffer {
    /// The default limit: 16 KiB, well above any real Stratum line (a notify with a large
    /// coinbase and a full merkle branch is a few KiB).
    pub const DEFAULT_MAX_LINE: usize = 16 * 1024;

    /// A buffer that rejects lines over `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        LineBuffer {
            buf: Vec::new(),
            start: 0,
            max_line: max_line.max(1),
        }
    }

    /// Appends bytes read from the peer. Fails when the unfinished line exceeds the limit; the
    /// buffer is then unusable and the connection should be closed.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        // Consumed lines are dropped here rather than in `next_line`, which lends out slices.
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
        let pending = &self.buf[self.start..];
        // Only the unfinished tail counts against the limit; complete lines are popped next.
        let tail = match pending.iter().rposition(|&b| b == b'\n') {
            Some(pos) => pending.len() - pos - 1,
            None => pending.len(),
        };
        let longest_complete = pending
            .split(|&b| b == b'\n')
            .rev()
            .skip(1)
            .map(<[u8]>::len)
            .max()
            .unwrap_or(0);
        if tail > self.max_line || longest_complete > self.max_line {
            return Err(FrameError::LineTooLong {
                limit: self.max_line,
            });
        }
        Ok(())
    }

    /// The next complete, non-blank line, without its line ending.
    pub fn next_line(&mut self) -> Option<&[u8]> {
        loop {
            let pending = &self.buf[self.start..];
            let pos = pending.iter().position(|&b| b == b'\n')?;
            let begin = self.start;
            self.start += pos + 1;
            let mut line = &self.buf[begin..begin + pos];
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let end = begin + line.len();
            return Some(&self.buf[begin..end]);
        }
    }

    /// Bytes held for an unfinished line.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }
}

impl Default for LineBuffer {
    fn default() -> Self {
        LineBuffer::new(LineBuffer::DEFAULT_MAX_LINE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_across_reads() {
        let mut b = LineBuffer::new(64);
        b.feed(b"{\"a\":1}\r\n\n{\"b\"").expect("feed");
        assert_eq!(b.next_line(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(b.next_line(), None);
        b.feed(b":2}\n").expect("feed");
        assert_eq!(b.next_line(), Some(&b"{\"b\":2}"[..]));
        assert_eq!(b.next_line(), None);
        assert_eq!(b.pending(), 0);
    }

    #[test]
    fn rejects_an_endless_line() {
        let mut b = LineBuffer::new(16);
        b.feed(&[b'x'; 16]).expect("at the limit");
        assert!(b.feed(b"x").is_err());
        let mut b = LineBuffer::new(16);
        assert!(b.feed(&[b'y'; 40]).is_err());
        let mut b = LineBuffer::new(16);
        let mut long = vec![b'z'; 30];
        long.push(b'\n');
        assert!(
            b.feed(&long).is_err(),
            "a complete but oversized line is refused too"
        );
    }
}
