//! One record on disk: a frame of `[payload length: u32 LE][CRC-32 of length and payload:
//! u32 LE][payload: the record's JSON]`. The length finds the next frame; the checksum tells
//! a complete, intact frame from a torn write or a corrupted one.

use crate::usage::UsageRecord;

/// Length and checksum, before the payload.
pub const HEADER: usize = 8;

/// Appends `record`'s frame to `out` and returns the frame's length. On failure `out` is as
/// it was.
pub fn encode(record: &UsageRecord, out: &mut Vec<u8>) -> Result<usize, String> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    let written = serde_json::to_writer(&mut *out, record)
        .map_err(|e| format!("usage record {} as JSON: {e}", record.request_id))
        .and_then(|()| {
            u32::try_from(out.len() - start - HEADER)
                .map_err(|_| format!("usage record {} is over 4 GiB", record.request_id))
        });
    let payload_len = match written {
        Ok(len) => len,
        Err(e) => {
            out.truncate(start);
            return Err(e);
        }
    };
    let len_bytes = payload_len.to_le_bytes();
    let crc = checksum(len_bytes, &out[start + HEADER..]);
    out[start..start + 4].copy_from_slice(&len_bytes);
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
    Ok(out.len() - start)
}

fn checksum(len_bytes: [u8; 4], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len_bytes);
    hasher.update(payload);
    hasher.finalize()
}

/// What the bytes at the start of a buffer hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// An intact frame of `len` bytes in all.
    Frame { payload: &'a [u8], len: usize },
    /// The buffer ends inside the frame (or its header).
    Incomplete,
    /// A complete frame of `len` bytes whose checksum does not match.
    BadChecksum { len: usize },
}

/// Reads the frame at the start of `buf`.
pub fn decode(buf: &[u8]) -> Decoded<'_> {
    let Some((header, rest)) = buf.split_first_chunk::<HEADER>() else {
        return Decoded::Incomplete;
    };
    let len_bytes = [header[0], header[1], header[2], header[3]];
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let Ok(payload_len) = usize::try_from(u32::from_le_bytes(len_bytes)) else {
        return Decoded::Incomplete;
    };
    let Some(payload) = rest.get(..payload_len) else {
        return Decoded::Incomplete;
    };
    let len = HEADER + payload_len;
    if checksum(len_bytes, payload) == crc {
        Decoded::Frame { payload, len }
    } else {
        Decoded::BadChecksum { len }
    }
}

/// A whole segment's frames, checked.
#[derive(Debug, PartialEq, Eq)]
pub struct Scan {
    /// Bytes of intact frames from the start.
    pub valid_len: u64,
    pub frames: u64,
    pub tail: Tail,
}

/// What follows the intact frames of a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum Tail {
    /// Nothing: the segment ends with an intact frame.
    Clean,
    /// A write the process did not finish (it crashed or lost power mid-write): an
    /// incomplete frame, a last frame that fails its checksum, or zeros the file system
    /// left past the data. Safe to cut off: nothing after it was ever acknowledged.
    Torn,
    /// A complete frame that fails its checksum with more data after it: the disk
    /// changed what was written. Frames after it cannot be found (the length is not
    /// trusted), so the rest of the segment is unreadable.
    Corrupt,
}

/// Checks every frame of a segment's bytes.
pub fn scan(bytes: &[u8]) -> Scan {
    let mut offset = 0;
    let mut frames = 0;
    let tail = loop {
        let rest = &bytes[offset..];
        if rest.is_empty() {
            break Tail::Clean;
        }
        match decode(rest) {
            Decoded::Frame { len, .. } => {
                offset += len;
                frames += 1;
            }
            Decoded::Incomplete => break Tail::Torn,
            Decoded::BadChecksum { len } if len == rest.len() => break Tail::Torn,
            Decoded::BadChecksum { .. } if rest.iter().all(|&b| b == 0) => break Tail::Torn,
            Decoded::BadChecksum { .. } => break Tail::Corrupt,
        }
    };
    Scan {
        valid_len: offset as u64,
        frames,
        tail,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::spool::tests::record;

    fn frames(n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            encode(&record(i), &mut out).unwrap();
        }
        out
    }

    #[test]
    fn a_frame_round_trips_and_reports_its_length() {
        let mut out = vec![7];
        let original = record(1);
        let len = encode(&original, &mut out).unwrap();
        assert_eq!(len, out.len() - 1);
        match decode(&out[1..]) {
            Decoded::Frame { payload, len: l } => {
                assert_eq!(l, len);
                let back: UsageRecord = serde_json::from_slice(payload).unwrap();
                assert_eq!(back, original);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_cut_of_a_frame_is_incomplete() {
        let one = frames(1);
        for cut in 0..one.len() {
            assert_eq!(decode(&one[..cut]), Decoded::Incomplete, "cut at {cut}");
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_fails_the_frame() {
        let one = frames(1);
        for at in 0..one.len() {
            let mut bad = one.clone();
            bad[at] ^= 0x10;
            assert!(
                !matches!(decode(&bad), Decoded::Frame { .. }),
                "flip at {at} went unnoticed"
            );
        }
    }

    #[test]
    fn scan_tells_a_torn_tail_from_corruption() {
        let three = frames(3);
        let first_two = {
            let mut out = Vec::new();
            encode(&record(0), &mut out).unwrap();
            encode(&record(1), &mut out).unwrap();
            out.len() as u64
        };
        let clean = scan(&three);
        assert_eq!((clean.frames, clean.tail), (3, Tail::Clean));
        assert_eq!(clean.valid_len, three.len() as u64);

        // cut inside the last frame
        let torn = scan(&three[..three.len() - 5]);
        assert_eq!(
            (torn.valid_len, torn.frames, torn.tail),
            (first_two, 2, Tail::Torn)
        );

        // the last frame complete but its bytes not what was written (size persisted,
        // data not), and zeros past the data
        let mut last_bad = three.clone();
        let end = last_bad.len() - 1;
        last_bad[end] ^= 1;
        assert_eq!(scan(&last_bad).tail, Tail::Torn);
        let mut zeros = three.clone();
        zeros.extend_from_slice(&[0; 100]);
        let zeroed = scan(&zeros);
        assert_eq!((zeroed.frames, zeroed.tail), (3, Tail::Torn));

        // a bad frame with a good one after it
        let mut middle_bad = three.clone();
        middle_bad[first_two as usize - 3] ^= 1;
        let corrupt = scan(&middle_bad);
        assert_eq!((corrupt.frames, corrupt.tail), (1, Tail::Corrupt));
    }
}
